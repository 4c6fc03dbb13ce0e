// Package errs is the one error type that every glasshouse service and
// client understands, in the style of upspin's errors package.
//
// A domain error carries a Kind (what class of failure it is, which decides
// the HTTP status and whether a caller may retry) and a Code (a stable,
// machine-readable name such as "out_of_stock" that clients switch on).
// The transport layer maps kinds to statuses in one table and decodes the
// wire form back into the same *Error, so a caller of a remote service sees
// exactly the error the service returned.
package errs

import (
	"context"
	"errors"
	"fmt"
)

// Kind classifies an error. The set is small on purpose: it is what a caller
// needs to decide between "fix your request", "try again later" and "give up".
type Kind uint8

const (
	// Internal is an unexpected failure inside the service (a bug, a broken
	// disk). It is also the kind of any error that is not an *Error.
	Internal Kind = iota
	// Invalid means the request itself is wrong: bad JSON, a missing field,
	// a non-positive quantity.
	Invalid
	// NotFound means the named thing does not exist (or is not yours).
	NotFound
	// Conflict means the request is well-formed but clashes with current
	// state: out of stock, email already taken, reservation already released.
	Conflict
	// Unauthenticated means credentials are missing, expired or forged.
	Unauthenticated
	// Forbidden means the caller is known but may not do this.
	Forbidden
	// Declined means a payment was refused.
	Declined
	// NotAllowed means the operation does not exist on this resource.
	NotAllowed
	// TooLarge means the request body exceeds the server's limit.
	TooLarge
	// RateLimited means the caller sent too many requests.
	RateLimited
	// Unavailable means a dependency cannot be reached right now (no
	// healthy instance, breaker open); the same request may succeed later.
	Unavailable
	// Timeout means the work did not finish within its deadline.
	Timeout
)

var kindNames = [...]string{
	Internal:        "internal",
	Invalid:         "invalid",
	NotFound:        "not_found",
	Conflict:        "conflict",
	Unauthenticated: "unauthenticated",
	Forbidden:       "forbidden",
	Declined:        "declined",
	NotAllowed:      "not_allowed",
	TooLarge:        "too_large",
	RateLimited:     "rate_limited",
	Unavailable:     "unavailable",
	Timeout:         "timeout",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Business reports whether errors of this kind are the caller's business
// rather than a fault of the callee: they are answers, not failures. They
// never trip a circuit breaker, are never retried, and do not mark a span
// as failed.
func (k Kind) Business() bool {
	switch k {
	case Invalid, NotFound, Conflict, Unauthenticated, Forbidden, Declined, NotAllowed, TooLarge, RateLimited:
		return true
	}
	return false
}

// Error is a typed, coded error.
type Error struct {
	Kind Kind
	// Code is the stable machine-readable name of this error; it defaults
	// to the kind's name.
	Code string
	// Detail is the human explanation of this occurrence.
	Detail string
	// Upstream, on an Unavailable error, names the dependency that could
	// not be reached. A caller that receives such an error from a peer
	// knows the peer itself answered correctly: its breaker does not count
	// it and it does not retry (another instance has the same dependency).
	Upstream string
	// Err is an optional underlying cause. It is never sent over the wire.
	Err error
}

// E builds an *Error of the given kind and code; detail is formatted with
// fmt.Sprintf. An empty code means the kind's name.
func E(kind Kind, code, format string, args ...any) *Error {
	if code == "" {
		code = kind.String()
	}
	return &Error{Kind: kind, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error that keeps err as its cause.
func Wrap(kind Kind, code string, err error, format string, args ...any) *Error {
	e := E(kind, code, format, args...)
	e.Err = err
	return e
}

func (e *Error) Error() string {
	msg := e.Code
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, errs.E(kind, code, "")) match any error with the
// same kind and code, whatever its detail.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Code == e.Code
}

// UpstreamOf returns the unreachable dependency named by err, or "".
func UpstreamOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Upstream
	}
	return ""
}

// KindOf returns the kind of err: Timeout for an expired context deadline,
// Internal for any other error that is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Kind
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	}
	return Internal
}

// CodeOf returns the code of err, or "" for nil.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return KindOf(err).String()
}

// IsBusiness reports whether err is a business answer (see Kind.Business).
func IsBusiness(err error) bool {
	return err != nil && KindOf(err).Business()
}

// ErrorCode and BusinessError let packages that must not depend on errs
// (observability) classify an error through a small interface.
func (e *Error) ErrorCode() string { return e.Code }

// BusinessError reports whether e is a business answer (see Kind.Business).
func (e *Error) BusinessError() bool { return e.Kind.Business() }
