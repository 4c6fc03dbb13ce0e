package orders

import (
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/fuzzcheck"
)

// fuzzAuth accepts one token, as users.Verifier accepts only its own.
func fuzzAuth(token string) (string, error) {
	if token == "good-token" {
		return "user-1", nil
	}
	return "", errs.E(errs.Unauthenticated, "invalid_token", "token is not valid")
}

// FuzzDecodeRequests runs every request decoder on the input: the
// Authorization and Idempotency-Key headers, the body (PlaceOrder), the
// query (ListOrders' page) and a path value (GetOrder). Each refusal is
// the caller's fault; nothing is decoded for a caller without the token.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []struct{ authorization, key, query, body string }{
		{"Bearer good-token", "k-1", "limit=10", `{"items":[{"sku":"GH-MUG-01","quantity":2}],"card_number":"4242424242424242"}`},
		{"Bearer good-token", "", "limit=101&cursor=x", `{"items":[]}`},
		{"Bearer good-token", "\x00\n", "cursor=MTcwMDAwMDAwMDAwMDpvcmRfMQ", `{"items":[{"sku":"..","quantity":-1}]}`},
		{"Bearer good-token", strings.Repeat("k", 300), "limit=1e3&limit=2", `{"items":null,"extra":1}`},
		{"Bearer bad", "k", "", `{}`},
		{"", "", "cursor=" + strings.Repeat("A", 200), ``},
		{"bearer  good-token ", "k", "limit=-1", `[]`},
		{"Bearer good-token", "k", "%zz", "ord_0123456789abcdef"},
	} {
		f.Add(seed.authorization, seed.key, seed.query, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, authorization, key, query string, body []byte) {
		authorized := func(err error) {
			t.Helper()
			scheme, token, _ := strings.Cut(authorization, " ")
			if err == nil && (!strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) != "good-token") {
				t.Fatalf("decoded a request for Authorization %q", authorization)
			}
		}

		place := func(b []byte) (PlaceOrderRequest, error) {
			r := fuzzcheck.Request("POST", "/orders", b)
			r.Header["Authorization"] = []string{authorization}
			r.Header[IdempotencyKeyHeader] = []string{key}
			v, err := API.Decode("PlaceOrder", r, fuzzAuth)
			req, _ := v.(PlaceOrderRequest)
			return req, err
		}
		req, err := place(body)
		authorized(err)
		if err != nil {
			fuzzcheck.CallerError(t, err, errs.Unauthenticated, errs.Invalid, errs.TooLarge)
		} else {
			if req.UserID != "user-1" || req.IdempotencyKey != key {
				t.Fatalf("decoded user %q key %q, want user-1 and %q", req.UserID, req.IdempotencyKey, key)
			}
			fuzzcheck.RoundTrip(t, req, place)
		}

		r := fuzzcheck.Request("GET", "/orders", nil)
		r.URL.RawQuery = query
		r.Header["Authorization"] = []string{authorization}
		// The page is read as ListOrders' Serve reads it: ParsePage.
		v, err := API.Decode("ListOrders", r, fuzzAuth)
		var page Page
		if err == nil {
			req := v.(ListOrdersRequest)
			page, err = ParsePage(req.Limit, req.Cursor)
		}
		authorized(err)
		if err != nil {
			fuzzcheck.CallerError(t, err, errs.Unauthenticated, errs.Invalid)
		} else if page.Limit < 0 || page.Limit > MaxPageLimit || len(page.Cursor) > maxCursorLen {
			t.Fatalf("query %q decoded to page %+v: limit outside 0..%d or cursor over %d bytes", query, page, MaxPageLimit, maxCursorLen)
		}

		r = fuzzcheck.Request("GET", "/orders/x", nil)
		r.SetPathValue("id", string(body))
		r.Header["Authorization"] = []string{authorization}
		v, err = API.Decode("GetOrder", r, fuzzAuth)
		authorized(err)
		if err != nil {
			fuzzcheck.CallerError(t, err, errs.Unauthenticated, errs.Invalid, errs.NotFound)
		} else if got := v.(GetOrderRequest); got.OrderID != string(body) || got.UserID != "user-1" {
			t.Fatalf("decoded %+v from path value %q", got, body)
		}
	})
}
