package inventory

import (
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/fuzzcheck"
)

// FuzzDecodeRequests runs every request decoder on the input, as the
// Reserve body or as a path value (a SKU, an order ID): each refusal is
// the caller's fault, a decoded reservation survives the trip from
// orders, and a path value arrives unchanged.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []string{
		`{"order_id":"ord_0123456789abcdef0123456789abcdef","items":[{"sku":"GH-MUG-01","quantity":2}]}`,
		`{"order_id":"ord_1","items":[{"sku":"GH-MUG-01","quantity":100},{"sku":"GH-MUG-01","quantity":100}]}`,
		`{"order_id":"..","items":[{"sku":"/","quantity":9223372036854775807}]}`,
		`{"order_id":"ord_1","items":[{"sku":"a","quantity":1.5}]}`,
		`{"order_id":"ord_1","items":[{"sku":"a","qty":1}]}`,
		`{"order_id":"` + strings.Repeat("o", 3000) + `"}`,
		"GH-MUG-01",
		"%2E%2E",
		"",
	} {
		f.Add([]byte(seed))
	}
	paths := []struct {
		key, method string
		value       func(any) string
	}{
		{"sku", "GetProduct", func(v any) string { return v.(ProductRequest).SKU }},
		{"orderID", "Commit", func(v any) string { return v.(OrderRequest).OrderID }},
		{"orderID", "Release", func(v any) string { return v.(OrderRequest).OrderID }},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reserve := func(b []byte) (ReserveRequest, error) {
			v, err := API.Decode("Reserve", fuzzcheck.Request("POST", "/reservations", b), nil)
			req, _ := v.(ReserveRequest)
			return req, err
		}
		if req, err := reserve(body); err != nil {
			fuzzcheck.CallerError(t, err, errs.Invalid, errs.TooLarge)
		} else {
			fuzzcheck.RoundTrip(t, req, reserve)
		}

		for _, p := range paths {
			r := fuzzcheck.Request("GET", "/x", nil)
			r.SetPathValue(p.key, string(body))
			v, err := API.Decode(p.method, r, nil)
			if err != nil {
				fuzzcheck.CallerError(t, err, errs.Invalid, errs.NotFound)
			} else if got := p.value(v); got != string(body) {
				t.Fatalf("%T: decoded %q from path value %q", v, got, body)
			}
		}
	})
}
