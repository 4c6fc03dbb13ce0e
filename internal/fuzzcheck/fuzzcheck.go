// Package fuzzcheck holds the properties that every fuzz target of a
// request decoder asserts, so each service's fuzz_test.go states only
// what is particular to its routes.
//
// A decoder reads bytes a stranger chose. Whatever they are, it must not
// panic, and it either refuses them with a typed error that is the
// caller's fault (never Internal: that would page someone, count against
// a breaker and hide the real cause) or returns a value that survives
// being encoded and decoded again, as it will be on its way to the next
// service.
package fuzzcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
)

// MaxDetail bounds an error detail answered to bad input: a detail may
// quote a few characters of what was wrong, never echo the request.
const MaxDetail = 1024

// BodyLimit is the request body limit the fuzzed requests carry, as the
// server's middleware sets one.
const BodyLimit = 4 << 10

// Request builds a server-side request with body, its body limited to
// BodyLimit as the server's middleware limits it.
func Request(method, target string, body []byte) *http.Request {
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, BodyLimit)
	return r
}

// CallerError fails t unless err is an *errs.Error of one of kinds (the
// caller's fault), with a code and a bounded detail. It returns the error.
func CallerError(t testing.TB, err error, kinds ...errs.Kind) *errs.Error {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *errs.Error", err, err)
	}
	if !slices.Contains(kinds, e.Kind) {
		t.Fatalf("error kind %v (code %q) for bad input; want one of %v: %.300v", e.Kind, e.Code, kinds, err)
	}
	if e.Code == "" {
		t.Fatalf("error %v has no code", err)
	}
	if len(e.Detail) > MaxDetail {
		t.Fatalf("error %q echoes %d bytes of detail (at most %d): %.200q…", e.Code, len(e.Detail), MaxDetail, e.Detail)
	}
	return e
}

// RoundTrip fails t unless v encodes as JSON and decode reads that back
// into an equal value.
func RoundTrip[T any](t testing.TB, v T, decode func(body []byte) (T, error)) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("decoded %T does not re-encode: %v", v, err)
	}
	if len(b) > BodyLimit {
		return // escaping can grow a value past the limit it came in under
	}
	w, err := decode(b)
	if err != nil {
		t.Fatalf("re-encoded %T %s does not decode: %v", v, b, err)
	}
	if !reflect.DeepEqual(v, w) {
		t.Fatalf("round trip changed the %T:\n  %s\n  %+v\n  %+v", v, b, v, w)
	}
}

// Messages is a service's API over gRPC as a fuzz target sees it
// (transport.GRPCAPI): each method's request decoded from bytes as the
// server does, and encoded as the client does.
type Messages interface {
	Decode(method string, body []byte) (any, error)
	Encode(method string, req any) ([]byte, error)
}

// GRPCRequests runs body through the request decoding of each of
// methods: a refusal is an Invalid error (the caller's), and a decoded
// request survives being encoded by a client and decoded again.
func GRPCRequests(t *testing.T, api Messages, methods []string, body []byte) {
	t.Helper()
	for _, method := range methods {
		req, err := api.Decode(method, body)
		if err != nil {
			CallerError(t, err, errs.Invalid)
			continue
		}
		b, err := api.Encode(method, req)
		if err != nil {
			t.Fatalf("%s: decoded %+v does not re-encode: %v", method, req, err)
		}
		again, err := api.Decode(method, b)
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("%s: %+v re-encoded decodes to %+v, %v", method, req, again, err)
		}
	}
}
