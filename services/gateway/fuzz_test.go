package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
	"github.com/glasshouse-dev/glasshouse/internal/fuzzcheck"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/users"
)

// FuzzDecodeRequests runs every public route's decoding on the input, and
// the gateway's own checks after it: the Authorization and
// Idempotency-Key headers, the body (sign-up, login, checkout), the query
// (the orders page) and a path value (a SKU, an order ID). The gateway is
// where a stranger's bytes first arrive, so beyond "refusals are the
// caller's fault" it checks the edge's promise: no call leaves with an
// identifier outside the ident grammar or without the caller's valid
// token.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []struct{ authorization, key, query, body string }{
		{"Bearer good-token", "k-1", "limit=10", `{"items":[{"sku":"GH-MUG-01","quantity":2}],"card_number":"4242424242424242"}`},
		{"Bearer good-token", "k-1", "", `{"items":[{"sku":"..","quantity":1}]}`},
		{"Bearer good-token", "k-1", "", `{"items":[{"sku":"GH-MUG-01","quantity":1},{"sku":"` + strings.Repeat("S", 700) + `","quantity":1}]}`},
		{"Bearer good-token", "ключ", "limit=0", `{"items":[{"sku":"a\u202eb","quantity":1}]}`},
		{"Bearer good-token", strings.Repeat("k", 129), "cursor=%00", `{"items":[]}`},
		{"Bearer bad", "k", "", `{"email":"ada@example.com","password":"correct horse","name":"Ada"}`},
		{"", "", "", `{"email":"ada@example.com","password":"correct horse"}`},
		{"Bearer good-token", "k", "limit=100&cursor=MTcwMDAwMDAwMDAwMDpvcmRfMQ", "ord_0123456789abcdef0123456789abcdef"},
		{"Bearer good-token", "k", "", "%2E%2E"},
		{"Bearer good-token", "k", "", "."},
		{"Bearer good-token", "k", "", "-rf"},
	} {
		f.Add(seed.authorization, seed.key, seed.query, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, authorization, key, query string, body []byte) {
		ctx := context.Background()
		b := &backendCalls{}
		gateway := API.Endpoints(NewService(fakeBackends(b), Options{}))
		// passOn calls the gateway's method on a decoded request: a backend
		// is called if, and only if, the gateway accepts the request.
		passOn := func(method string, req any) error {
			t.Helper()
			before, _ := b.seen()
			_, err := gateway[method](ctx, req)
			if after, _ := b.seen(); (len(after) > len(before)) != (err == nil) {
				t.Fatalf("%s: error %v, backend calls %q", method, err, after[len(before):])
			}
			return err
		}
		authorized := func(what string, err error) {
			t.Helper()
			scheme, token, _ := strings.Cut(authorization, " ")
			if err == nil && (!strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) != goodToken) {
				t.Fatalf("%s: decoded a request for Authorization %q", what, authorization)
			}
		}

		signUp := func(b []byte) (users.RegisterRequest, error) {
			v, err := API.Decode("CreateUser", fuzzcheck.Request("POST", "/api/users", b), nil)
			req, _ := v.(users.RegisterRequest)
			return req, err
		}
		if req, err := signUp(body); err != nil {
			fuzzcheck.CallerError(t, err, errs.Invalid, errs.TooLarge)
		} else {
			fuzzcheck.RoundTrip(t, req, signUp)
		}
		login := func(b []byte) (users.LoginRequest, error) {
			v, err := API.Decode("Login", fuzzcheck.Request("POST", "/api/login", b), nil)
			req, _ := v.(users.LoginRequest)
			return req, err
		}
		if req, err := login(body); err != nil {
			fuzzcheck.CallerError(t, err, errs.Invalid, errs.TooLarge)
		} else {
			fuzzcheck.RoundTrip(t, req, login)
		}

		checkout := func(b []byte) (orders.PlaceOrderRequest, error) {
			r := fuzzcheck.Request("POST", "/api/orders", b)
			r.Header["Authorization"] = []string{authorization}
			r.Header[orders.IdempotencyKeyHeader] = []string{key}
			v, err := API.Decode("PlaceOrder", r, testAuth)
			req, _ := v.(orders.PlaceOrderRequest)
			return req, err
		}
		if req, err := checkout(body); err != nil {
			fuzzcheck.CallerError(t, err, errs.Unauthenticated, errs.Invalid, errs.TooLarge)
		} else {
			authorized("checkout", err)
			if req.UserID != "user-1" || req.IdempotencyKey != key {
				t.Fatalf("checkout decoded user %q key %q, want user-1 and %q", req.UserID, req.IdempotencyKey, key)
			}
			fuzzcheck.RoundTrip(t, req, checkout)
			if err := passOn("PlaceOrder", req); err != nil {
				fuzzcheck.CallerError(t, err, errs.Invalid)
			} else {
				for i, item := range req.Items {
					if !ident.Valid(item.SKU) {
						t.Fatalf("checkout passed on items[%d].sku %q", i, item.SKU)
					}
				}
				if len(key) > maxIdempotencyKeyBytes || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
					t.Fatalf("checkout passed on Idempotency-Key %q", key)
				}
			}
		}

		r := fuzzcheck.Request("GET", "/api/orders", nil)
		r.URL.RawQuery = query
		r.Header["Authorization"] = []string{authorization}
		if req, err := API.Decode("ListOrders", r, testAuth); err != nil {
			fuzzcheck.CallerError(t, err, errs.Unauthenticated, errs.Invalid)
		} else {
			authorized("list orders", err)
			if err := passOn("ListOrders", req); err != nil {
				fuzzcheck.CallerError(t, err, errs.Invalid)
			} else if page := b.page; page.Limit < 0 || page.Limit > orders.MaxPageLimit {
				t.Fatalf("query %q decoded to page %+v", query, page)
			}
		}

		r = fuzzcheck.Request("GET", "/api/products/x", nil)
		r.SetPathValue("sku", string(body))
		req, err := API.Decode("GetProduct", r, nil)
		if err != nil {
			t.Fatalf("GET /api/products/{sku} decoding failed: %v", err)
		}
		if err := passOn("GetProduct", req); err != nil {
			if e := fuzzcheck.CallerError(t, err, errs.Invalid); e.Code != "invalid_sku" {
				t.Fatalf("SKU %q refused with %q, want invalid_sku", body, e.Code)
			}
		} else if sku := req.(inventory.ProductRequest).SKU; sku != string(body) || !ident.Valid(sku) {
			t.Fatalf("path value %q decoded to SKU %q", body, sku)
		}

		r = fuzzcheck.Request("GET", "/api/orders/x", nil)
		r.SetPathValue("id", string(body))
		r.Header["Authorization"] = []string{authorization}
		if req, err := API.Decode("GetOrder", r, testAuth); err != nil {
			fuzzcheck.CallerError(t, err, errs.Unauthenticated, errs.Invalid, errs.NotFound)
		} else {
			authorized("get order", err)
			if err := passOn("GetOrder", req); err != nil {
				fuzzcheck.CallerError(t, err, errs.Invalid, errs.NotFound)
			} else if id := req.(orders.GetOrderRequest).OrderID; id != string(body) || !ident.Valid(id) {
				t.Fatalf("path value %q decoded to order ID %q", body, id)
			}
		}
	})
}
