// Package ident is the one grammar for the identifiers that travel
// between glasshouse services: SKUs, order IDs, user IDs. Every hop checks
// an identifier against it before using it (in a path, a query, a log
// line), so a hostile value is refused at the edge with a clear 400 and
// never becomes an upstream call, a redirect or a megabyte in a log.
//
// The grammar is deliberately narrow:
//
//	^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$
//
// It starts with a letter or digit (so never ".", ".." or "-flag"), uses
// only characters that need no escaping in a URL path segment, a Consul
// tag or a Prometheus label, and is at most 64 bytes. The demo catalogue's
// SKUs ("GH-MUG-01"), orders' IDs ("ord_" and 32 hex digits) and users'
// UUIDs all fit.
package ident

import (
	"strconv"

	"github.com/glasshouse-dev/glasshouse/errs"
)

// MaxLen is the longest identifier accepted, in bytes.
const MaxLen = 64

// Valid reports whether s follows the identifier grammar.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Check returns nil when s is a valid identifier, else an Invalid error
// with code "invalid_<what>" (invalid_sku, invalid_order_id, ...). The
// detail quotes at most the first few characters of s, so an echoed
// megabyte never reaches a response or a log.
func Check(what, s string) error {
	if Valid(s) {
		return nil
	}
	return errs.E(errs.Invalid, "invalid_"+what,
		"%s %s is not a valid identifier: 1 to %d letters, digits, '_' or '-', starting with a letter or digit",
		what, Quote(s), MaxLen)
}

// SKU checks a product's SKU (code invalid_sku).
func SKU(s string) error { return Check("sku", s) }

// OrderID checks an order ID (code invalid_order_id).
func OrderID(s string) error { return Check("order_id", s) }

// UserID checks a user ID (code invalid_user_id).
func UserID(s string) error { return Check("user_id", s) }

// quoteMax bounds how much of a rejected value is echoed back.
const quoteMax = 32

// Quote returns s quoted for an error message, cut to a few characters
// with its full length noted when it is long.
func Quote(s string) string {
	if len(s) <= quoteMax {
		return strconv.QuoteToASCII(s)
	}
	return strconv.QuoteToASCII(s[:quoteMax]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}
