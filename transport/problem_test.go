package transport_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/transport"
)

func TestErrorsSurviveTheWire(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{errs.E(errs.Invalid, "invalid_items", "items[0].quantity must be positive"), 400, "invalid_items"},
		{errs.E(errs.Unauthenticated, "", "token expired"), 401, "unauthenticated"},
		{errs.E(errs.Declined, "card_declined", "card ending 0002 was declined"), 402, "card_declined"},
		{errs.E(errs.Forbidden, "", "not your order"), 403, "forbidden"},
		{errs.E(errs.NotFound, "unknown_product", `no product with sku "X"`), 404, "unknown_product"},
		{errs.E(errs.NotAllowed, "method_not_allowed", "PUT is not allowed"), 405, "method_not_allowed"},
		{errs.E(errs.Conflict, "out_of_stock", "sku A: 3 requested, 1 available"), 409, "out_of_stock"},
		{errs.E(errs.TooLarge, "body_too_large", "request body exceeds 1048576 bytes"), 413, "body_too_large"},
		{errs.E(errs.RateLimited, "", "slow down"), 429, "rate_limited"},
		{errs.E(errs.Internal, "", "disk on fire"), 500, "internal"},
		{errs.E(errs.Unavailable, "", "no healthy payments instance"), 503, "unavailable"},
		{errs.E(errs.Timeout, "", "payments did not answer in 1s"), 504, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			rec := httptest.NewRecorder()
			transport.WriteError(context.Background(), tt.err, rec)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			got := transport.DecodeProblem(rec.Result())
			var e *errs.Error
			if !errors.As(got, &e) {
				t.Fatalf("decoded %T, want *errs.Error", got)
			}
			want := tt.err.(*errs.Error)
			if e.Kind != want.Kind || e.Code != tt.code || e.Detail != want.Detail {
				t.Errorf("round trip = %+v, want %+v", e, want)
			}
			if !errors.Is(got, want) {
				t.Error("errors.Is(decoded, original) = false")
			}
		})
	}
}

func TestUntypedErrorsDoNotLeakDetails(t *testing.T) {
	rec := httptest.NewRecorder()
	transport.WriteError(context.Background(), fmt.Errorf("open /var/lib/secret.db: permission denied"), rec)
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("got %d %s; want a 500 that hides the cause", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	transport.WriteError(context.Background(), context.DeadlineExceeded, rec)
	if rec.Code != 504 || !strings.Contains(rec.Body.String(), `"code":"timeout"`) {
		t.Errorf("deadline exceeded gave %d %s; want 504 timeout", rec.Code, rec.Body)
	}
}

// A 5xx without problem+json is still the peer's failure, of the kind its
// status implies; a 3xx or 4xx without it breaks the protocol between our
// services (unexpected_response, never retried or counted). Either way
// the body stays in the cause, for the log, never in the detail that is
// passed on to callers.
func TestNonProblemResponsesStillBecomeTypedErrors(t *testing.T) {
	tests := []struct {
		status int
		kind   errs.Kind
		code   string
	}{
		{http.StatusBadGateway, errs.Unavailable, "unavailable"},
		{http.StatusTeapot, errs.Internal, "unexpected_response"},
		{http.StatusNotFound, errs.Internal, "unexpected_response"},
		{http.StatusTemporaryRedirect, errs.Internal, "unexpected_response"},
		{599, errs.Internal, "internal"},
		{http.StatusServiceUnavailable, errs.Unavailable, "unavailable"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", "text/html")
		rec.WriteHeader(tt.status)
		rec.WriteString("<html>proxy error</html>")
		err := transport.DecodeProblem(rec.Result())
		if errs.KindOf(err) != tt.kind || errs.CodeOf(err) != tt.code || !strings.Contains(err.Error(), "proxy error") {
			t.Errorf("status %d: got %v (kind %v), want %v/%s with the body in the cause", tt.status, err, errs.KindOf(err), tt.kind, tt.code)
		}
		if p := transport.ProblemFor(context.Background(), err); strings.Contains(p.Detail, "proxy error") {
			t.Errorf("status %d: the detail passed on quotes the peer's body: %q", tt.status, p.Detail)
		}
	}
}

func TestBusinessKinds(t *testing.T) {
	for _, k := range []errs.Kind{errs.Invalid, errs.NotFound, errs.Conflict, errs.Declined, errs.Unauthenticated} {
		if !k.Business() {
			t.Errorf("%v should be a business kind (never retried, never trips a breaker)", k)
		}
	}
	for _, k := range []errs.Kind{errs.Internal, errs.Unavailable, errs.Timeout} {
		if k.Business() {
			t.Errorf("%v must not be a business kind: it is a failure the client may retry", k)
		}
	}
}

func TestBusyAnswersSayWhenToComeBack(t *testing.T) {
	for _, tc := range []struct {
		err  error
		set  string
		want string
	}{
		{errs.E(errs.RateLimited, "auth_busy", "busy"), "", "1"},
		{errs.E(errs.Unavailable, "unavailable", "down"), "", "1"},
		{errs.E(errs.RateLimited, "rate_limited", "slow down"), "7", "7"},
		{errs.E(errs.NotFound, "no_thing", "gone"), "", ""},
	} {
		rec := httptest.NewRecorder()
		if tc.set != "" {
			rec.Header().Set("Retry-After", tc.set)
		}
		transport.WriteError(context.Background(), tc.err, rec)
		if got := rec.Header().Get("Retry-After"); got != tc.want {
			t.Errorf("%v: Retry-After %q, want %q", tc.err, got, tc.want)
		}
	}
}
