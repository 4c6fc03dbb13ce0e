package payments

import (
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/fuzzcheck"
)

// FuzzDecodeRequests runs every request decoder on the input, as a body
// (Charge, the admin fault settings) or as a path value (a charge or
// order ID): each refusal is the caller's fault, a decoded body survives
// the trip from orders (or from an operator's curl), and a path value
// arrives unchanged.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []string{
		`{"order_id":"ord_1","amount_cents":2598,"currency":"EUR","card_number":"4242424242424242"}`,
		`{"order_id":"ord_1","amount_cents":-1,"currency":"","card_number":4242}`,
		`{"order_id":"ord_1","amount_cents":1e30}`,
		`{"error_rate":0.2,"latency":"300ms"}`,
		`{"error_rate":1,"latency":"1.5s"}`,
		`{"latency":300}`,
		`{"latency":"-5s"}`,
		`{"latency":"9999999999h"}`,
		`{"latency":null,"error_rate":null}`,
		`{"latency":"` + strings.Repeat("9", 3000) + `"}`,
		"ch_0123456789abcdef",
		"..",
		"",
	} {
		f.Add([]byte(seed))
	}
	paths := []struct {
		key, method string
		value       func(any) string
	}{
		{"id", "Refund", func(v any) string { return v.(ChargeIDRequest).ChargeID }},
		{"id", "GetCharge", func(v any) string { return v.(ChargeIDRequest).ChargeID }},
		{"orderID", "FindCharge", func(v any) string { return v.(OrderRequest).OrderID }},
		{"orderID", "Void", func(v any) string { return v.(OrderRequest).OrderID }},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		charge := func(b []byte) (ChargeRequest, error) {
			v, err := API.Decode("Charge", fuzzcheck.Request("POST", "/charges", b), nil)
			req, _ := v.(ChargeRequest)
			return req, err
		}
		if req, err := charge(body); err != nil {
			fuzzcheck.CallerError(t, err, errs.Invalid, errs.TooLarge)
		} else {
			fuzzcheck.RoundTrip(t, req, charge)
		}

		faults := func(b []byte) (FaultSettings, error) {
			v, err := AdminAPI.Decode("SetFaults", fuzzcheck.Request("PUT", "/admin/faults", b), nil)
			req, _ := v.(FaultSettings)
			return req, err
		}
		if req, err := faults(body); err != nil {
			fuzzcheck.CallerError(t, err, errs.Invalid, errs.TooLarge)
		} else {
			fuzzcheck.RoundTrip(t, req, faults)
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
