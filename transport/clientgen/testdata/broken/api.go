// Package broken is replaced, case by case, by clientgen's tests with a
// declared API that clientgen must refuse.
package broken
