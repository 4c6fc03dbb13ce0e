package transport

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

// FaultTokenHeader carries the secret that lets a request through the
// edge with its fault baggage (see EdgeBaggage).
const FaultTokenHeader = "X-Fault-Token"

// EdgeBaggage returns the HTTP middleware with which the platform's edge
// takes ownership of W3C baggage. Baggage sent from outside would travel
// with the request to every service behind the edge, and services started
// with fault injection honour the fault.* members in it (see
// BaggageFaults): any caller could fail the calls that clean traffic
// shares and open breakers for everyone. So the edge drops it.
//
// One exception keeps per-request faults usable by the chaos suite: a
// request whose FaultTokenHeader equals faultToken keeps its fault.*
// members, and only those. An empty faultToken lets no request carry
// faults; the edge passes it only when fault injection is enabled.
//
// It must run after the tracing middleware has extracted the baggage into
// the request's context, i.e. inside it.
func EdgeBaggage(faultToken string) func(http.Handler) http.Handler {
	// Comparing digests keeps the comparison's time independent of the
	// secret's length as well as its content.
	var want [sha256.Size]byte
	if faultToken != "" {
		want = sha256.Sum256([]byte(faultToken))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			incoming := baggage.FromContext(ctx)
			var kept baggage.Baggage
			if faultToken != "" {
				got := sha256.Sum256([]byte(r.Header.Get(FaultTokenHeader)))
				if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
					kept = faultMembers(incoming)
				}
			}
			if dropped := incoming.Len() - kept.Len(); dropped > 0 {
				trace.SpanFromContext(ctx).AddEvent("baggage.dropped",
					trace.WithAttributes(attribute.Int("glasshouse.baggage.dropped_members", dropped)))
			}
			// The secret is for this hop only.
			r.Header.Del(FaultTokenHeader)
			next.ServeHTTP(w, r.WithContext(baggage.ContextWithBaggage(ctx, kept)))
		})
	}
}

// faultMembers returns the fault.* members of bag.
func faultMembers(bag baggage.Baggage) baggage.Baggage {
	var kept []baggage.Member
	for _, m := range bag.Members() {
		if strings.HasPrefix(m.Key(), faultKeyPrefix) {
			kept = append(kept, m)
		}
	}
	// The members come from a valid baggage, so rebuilding cannot fail.
	out, _ := baggage.New(kept...)
	return out
}
