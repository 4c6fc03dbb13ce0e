package transport_test

// Fuzz targets for everything in transport that reads bytes a stranger
// chose: request bodies, a peer's error answers, path segments and the
// Authorization header. `make fuzz` runs each for a few seconds; a crasher
// that go test writes to testdata/fuzz/ is committed as a regression case.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/fuzzcheck"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// fuzzRequest is shaped like the services' requests: strings, numbers, a
// list of objects and an optional nested value.
type fuzzRequest struct {
	OrderID string `json:"order_id"`
	Items   []struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	} `json:"items"`
	AmountCents int64   `json:"amount_cents"`
	Rate        float64 `json:"rate"`
	Card        *struct {
		Number string `json:"number"`
	} `json:"card,omitempty"`
	Tags map[string]string `json:"tags"`
}

type fuzzLogin struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// decodeCodes are the only codes DecodeJSON may answer with.
var decodeCodes = map[string]errs.Kind{
	"malformed_json": errs.Invalid,
	"invalid_field":  errs.Invalid,
	"unknown_field":  errs.Invalid,
	"body_too_large": errs.TooLarge,
}

func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"order_id":"ord_1","items":[{"sku":"GH-MUG-01","quantity":2}],"amount_cents":1299}`,
		`{"email":"a@example.com","password":"hunter22"}`,
		`{"order_id":1}`,
		`{"items":{}}`,
		`{"nope":true}`,
		`{"card":null,"tags":{"a":"b"}}`,
		`{} {}`,
		`[]`,
		`"x"`,
		``,
		`{"order_id":"\ud800"}`,
		`{"quantity":1e400}`,
		`{"items":[{"quantity":-9223372036854775809}]}`,
		`{"ORDER_ID":"case"}`,
		strings.Repeat(`[`, 600),
		// An unknown field's name is echoed in the detail: it must be cut.
		`{"` + strings.Repeat("a", 3000) + `":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecodeJSON[fuzzRequest](t, body)
		checkDecodeJSON[fuzzLogin](t, body)
		checkDecodeJSON[map[string]any](t, body)
	})
}

// checkDecodeJSON decodes body as a server would and checks that a
// failure is a typed caller error and a success survives a round trip.
func checkDecodeJSON[T any](t *testing.T, body []byte) {
	t.Helper()
	decode := func(b []byte) (T, error) { return transport.DecodeJSON[T](fuzzcheck.Request("POST", "/", b)) }
	v, err := decode(body)
	if err != nil {
		e := fuzzcheck.CallerError(t, err, errs.Invalid, errs.TooLarge)
		if kind, ok := decodeCodes[e.Code]; !ok || e.Kind != kind {
			t.Fatalf("%T: error kind %v code %q is not one of the decode errors: %v", v, e.Kind, e.Code, err)
		}
		if e.Kind == errs.TooLarge && len(body) <= fuzzcheck.BodyLimit {
			t.Fatalf("%T: %d-byte body refused as too large: %v", v, len(body), err)
		}
		return
	}
	if len(body) > fuzzcheck.BodyLimit {
		t.Fatalf("%T: accepted a %d-byte body over the %d-byte limit", v, len(body), fuzzcheck.BodyLimit)
	}
	fuzzcheck.RoundTrip(t, v, decode)
}

// peerURL is where the fuzzed answers come from: no error detail may
// carry it to the caller.
const peerURL = "http://10.9.8.7:8082/products/x"

func FuzzDecodeProblem(f *testing.F) {
	for _, seed := range []struct {
		status      int
		contentType string
		body        string
	}{
		{404, transport.ProblemContentType, `{"type":"x","title":"Not Found","status":404,"code":"not_found","detail":"no such product"}`},
		{503, transport.ProblemContentType + "; charset=utf-8", `{"code":"unavailable","upstream":"payments"}`},
		{409, transport.ProblemContentType, `{"code":"out_of_stock","detail":"` + strings.Repeat("é", 400) + `"}`},
		{400, transport.ProblemContentType, `{"code":""}`},
		{400, transport.ProblemContentType, `{"code":"` + strings.Repeat("c", 65) + `"}`},
		{400, "application/json", `{"code":"invalid"}`},
		{307, "text/html", `<a href="/products/">Temporary Redirect</a>`},
		{500, "text/plain", "panic: runtime error\n" + peerURL},
		{502, "", ""},
		{418, transport.ProblemContentType, `not json`},
		{200, transport.ProblemContentType, `{"code":"ok"}`},
		{599, "text/plain; charset=\x00", "\xff\xfe"},
	} {
		f.Add(seed.status, seed.contentType, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		if status < 100 || status > 999 {
			status = 100 + int(uint(status)%900)
		}
		peer, _ := url.Parse(peerURL)
		resp := &http.Response{
			StatusCode: status,
			Status:     http.StatusText(status),
			Header:     http.Header{"Content-Type": {contentType}},
			Body:       io.NopCloser(bytes.NewReader(body)),
			Request:    &http.Request{Method: "GET", URL: peer},
		}
		err := transport.DecodeProblem(resp)
		var e *errs.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is not an *errs.Error", err)
		}
		if e.Code == "" {
			t.Fatalf("error %v has no code", err)
		}
		if len(e.Code) > 64 || len(e.Detail) > 512+len("…") || len(e.Upstream) > 64+len("…") {
			t.Fatalf("a peer's answer reaches the caller unbounded: code %d, detail %d, upstream %d bytes",
				len(e.Code), len(e.Detail), len(e.Upstream))
		}
		if !bytes.Contains(body, []byte("10.9.8.7")) && strings.Contains(e.Detail, "10.9.8.7") {
			t.Fatalf("detail names the peer's address: %q", e.Detail)
		}
		if status >= 500 && e.Kind != transport.KindOfStatus(status) {
			t.Fatalf("a %d became kind %v, want %v", status, e.Kind, transport.KindOfStatus(status))
		}
		if status < 400 && e.Kind.Business() {
			t.Fatalf("a %d became business error %v: a protocol break would pass as the caller's fault", status, e.Kind)
		}
	})
}

// FuzzProblemRoundTrip checks that any typed error a server writes comes
// back to the client as the same kind and code.
func FuzzProblemRoundTrip(f *testing.F) {
	f.Add(uint8(errs.NotFound), "not_found", "no such product")
	f.Add(uint8(errs.Conflict), "out_of_stock", "GH-MUG-01: 2 left")
	f.Add(uint8(errs.Invalid), "invalid_sku", `sku "\u202e" is not valid`)
	f.Add(uint8(errs.Unavailable), "", strings.Repeat("x", 2000))
	f.Add(uint8(errs.Internal), "bad_response", "")
	f.Fuzz(func(t *testing.T, kind uint8, code, detail string) {
		k := errs.Kind(kind % uint8(errs.Timeout+1))
		if !utf8.ValidString(code) || len(code) > 64 {
			// JSON carries only valid UTF-8; our codes are short ASCII.
			return
		}
		sent := errs.E(k, code, "%s", detail)
		rec := httptest.NewRecorder()
		transport.WriteError(context.Background(), sent, rec)
		resp := rec.Result()
		peer, _ := url.Parse(peerURL)
		resp.Request = &http.Request{Method: "GET", URL: peer}
		got := transport.DecodeProblem(resp)
		var e *errs.Error
		if !errors.As(got, &e) {
			t.Fatalf("error %v is not an *errs.Error", got)
		}
		if e.Kind != k || e.Code != sent.Code {
			t.Fatalf("sent %v/%q, received %v/%q (%v)", k, sent.Code, e.Kind, e.Code, got)
		}
	})
}

func FuzzJoinPath(f *testing.F) {
	for _, seed := range [][3]string{
		{"http://10.0.0.1:8082", "products", "GH-MUG-01"},
		{"http://10.0.0.1:8082/", "reservations", "ord_0123"},
		{"http://h/base/", "..", "x"},
		{"http://h", ".", ""},
		{"http://h", "a/b", "%2E%2E"},
		{"http://h/v1%2Fx/", "?q=1", "#frag"},
		{"http://h", "..%2F", "\x00"},
		{"http://h", " ", "ü"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, base, a, b string) {
		u, err := url.Parse(base)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
			// Bases are absolute instance URLs (NewDirectFactory refuses
			// anything else).
			return
		}
		segments := []string{a, b}
		got, err := transport.JoinPath(u, segments...)
		if err != nil {
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.Invalid || e.Code == "" {
				t.Fatalf("refusal %v is not a typed Invalid error", err)
			}
			for _, s := range segments {
				if s == "" || s == "." || s == ".." {
					return
				}
			}
			t.Fatalf("JoinPath refused ordinary segments %q: %v", segments, err)
		}
		for _, s := range segments {
			if s == "" || s == "." || s == ".." {
				t.Fatalf("JoinPath accepted segment %q: %s", s, got)
			}
		}
		if got.Scheme != u.Scheme || got.Host != u.Host || got.RawQuery != u.RawQuery || got.Fragment != u.Fragment {
			t.Fatalf("JoinPath changed more than the path: %s from %s", got, u)
		}
		// The request line carries the escaped path: it must be the base's
		// path plus exactly one escaped segment per argument, none of which
		// a server would clean away or split.
		basePath := strings.TrimRight(u.EscapedPath(), "/")
		escaped := got.EscapedPath()
		if !strings.HasPrefix(escaped, basePath+"/") {
			t.Fatalf("%q does not extend the base path %q", escaped, basePath)
		}
		rest := strings.Split(escaped[len(basePath)+1:], "/")
		if len(rest) != len(segments) {
			t.Fatalf("%q has %d segments after the base, want %d (%q)", escaped, len(rest), len(segments), segments)
		}
		for i, seg := range rest {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("%q: segment %d is %q", escaped, i, seg)
			}
			if back, err := url.PathUnescape(seg); err != nil || back != segments[i] {
				t.Fatalf("%q: segment %d reads back as %q (%v), want %q", escaped, i, back, err, segments[i])
			}
		}
		// What a server routes on after parsing the request line.
		parsed, err := url.ParseRequestURI(escaped)
		if err != nil {
			t.Fatalf("%q is not a valid request path: %v", escaped, err)
		}
		if parsed.EscapedPath() != escaped {
			t.Fatalf("%q re-parses as %q", escaped, parsed.EscapedPath())
		}
	})
}

func FuzzBearerTokenFrom(f *testing.F) {
	for _, seed := range []string{
		"Bearer eyJhbGciOiJFZERTQSJ9.e30.sig",
		"bearer abc",
		"BEARER  padded  ",
		"Bearer ",
		"Basic dXNlcjpwYXNz",
		"Bearer",
		"",
		"Bearer a b",
		"Bearer \t\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{header}
		token, err := transport.BearerTokenFrom(r)
		if err != nil {
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.Unauthenticated || e.Code == "" {
				t.Fatalf("refusal %v is not a typed Unauthenticated error", err)
			}
			if token != "" {
				t.Fatalf("refused the header but returned token %q", token)
			}
			return
		}
		if token == "" || token != strings.TrimSpace(token) {
			t.Fatalf("token %q is empty or padded", token)
		}
		scheme, _, _ := strings.Cut(header, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			t.Fatalf("accepted scheme %q", scheme)
		}
		if !strings.Contains(header, token) {
			t.Fatalf("token %q is not in header %q", token, header)
		}
	})
}
