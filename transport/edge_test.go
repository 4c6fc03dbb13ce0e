package transport

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
)

// extractBaggage stands for the tracing middleware in front of the edge:
// it puts the request's W3C baggage into its context.
func extractBaggage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagation.Baggage{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func TestEdgeBaggageKeepsOnlyFaultsAndOnlyWithTheToken(t *testing.T) {
	const secret = "s3cret-chaos-token"
	const sent = "fault.payments=error,fault.inventory.Reserve=delay:10ms,tenant=acme"
	cases := []struct {
		name       string
		configured string // the edge's token; "" when fault injection is off
		header     string // the request's X-Fault-Token, "" for none
		want       []string
	}{
		{"no token configured drops everything", "", "", nil},
		{"no token configured ignores any header", "", secret, nil},
		{"no header", secret, "", nil},
		{"wrong token", secret, "guess", nil},
		{"token prefix", secret, secret[:len(secret)-1], nil},
		{"token with a suffix", secret, secret + "x", nil},
		{"right token keeps only fault members", secret, secret,
			[]string{"fault.inventory.Reserve=delay:10ms", "fault.payments=error"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var tokenSeen string
			h := extractBaggage(EdgeBaggage(tc.configured)(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				for _, m := range baggage.FromContext(r.Context()).Members() {
					got = append(got, m.Key()+"="+m.Value())
				}
				tokenSeen = r.Header.Get(FaultTokenHeader)
			})))
			req := httptest.NewRequest("GET", "/api/products", nil)
			req.Header.Set("Baggage", sent)
			if tc.header != "" {
				req.Header.Set(FaultTokenHeader, tc.header)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("baggage behind the edge = %q, want %q", got, tc.want)
			}
			if tokenSeen != "" {
				t.Errorf("the fault token reached the handler behind the edge: %q", tokenSeen)
			}
		})
	}
}
