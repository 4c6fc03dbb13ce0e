package chaos

import (
	"net/http"
	"testing"

	"github.com/glasshouse-dev/glasshouse/transport"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A stream's fault baggage travels with the run's fault token, without
// which the gateway drops it; a clean stream sends neither.
func TestTapSendsTheFaultTokenWithFaultBaggageOnly(t *testing.T) {
	var got http.Header
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Clone()
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody}, nil
	})
	for _, tc := range []struct {
		baggage, wantToken string
	}{
		{errorBaggage, "s3cret"},
		{"", ""},
	} {
		tp := &tap{base: base, baggage: tc.baggage, faultToken: "s3cret"}
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/api/orders", nil)
		if _, err := tp.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if got.Get("Baggage") != tc.baggage || got.Get(transport.FaultTokenHeader) != tc.wantToken {
			t.Errorf("baggage %q: sent Baggage %q and token %q", tc.baggage, got.Get("Baggage"), got.Get(transport.FaultTokenHeader))
		}
		if req.Header.Get(transport.FaultTokenHeader) != "" {
			t.Error("the tap changed its caller's request")
		}
	}
}
