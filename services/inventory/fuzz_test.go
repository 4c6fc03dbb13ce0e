package inventory

import (
	"context"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/fuzzcheck"
	httptransport "github.com/go-kit/kit/transport/http"
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
		key    string
		decode httptransport.DecodeRequestFunc
		value  func(any) string
	}{
		{"sku", decodeGetProduct, func(v any) string { return v.(GetProductRequest).SKU }},
		{"orderID", decodeCommit, func(v any) string { return v.(CommitRequest).OrderID }},
		{"orderID", decodeRelease, func(v any) string { return v.(ReleaseRequest).OrderID }},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := context.Background()
		reserve := func(b []byte) (ReserveRequest, error) {
			v, err := decodeReserve(ctx, fuzzcheck.Request("POST", "/reservations", b))
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
			v, err := p.decode(ctx, r)
			if err != nil {
				fuzzcheck.CallerError(t, err, errs.Invalid, errs.NotFound)
			} else if got := p.value(v); got != string(body) {
				t.Fatalf("%T: decoded %q from path value %q", v, got, body)
			}
		}
	})
}
