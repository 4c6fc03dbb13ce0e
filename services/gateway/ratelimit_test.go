package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRateLimitIsPerClientAndSaysWhenToRetry(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := NewRateLimiter(1, 2, reg) // 1 request/s, bursts of 2
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	call := func(ip string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/api/products", nil)
		req.RemoteAddr = ip + ":40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	for i := range 2 {
		if rec := call("10.0.0.1"); rec.Code != http.StatusNoContent {
			t.Fatalf("request %d within the burst: %d", i, rec.Code)
		}
	}
	rec := call("10.0.0.1")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("over the limit: %d Retry-After %q; want 429 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	var p transport.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != "rate_limited" {
		t.Errorf("429 body %s; want problem code rate_limited", rec.Body)
	}
	if rec := call("10.0.0.2"); rec.Code != http.StatusNoContent {
		t.Errorf("another client was limited too: %d", rec.Code)
	}
	now = now.Add(time.Second)
	if rec := call("10.0.0.1"); rec.Code != http.StatusNoContent {
		t.Errorf("after a second the client is still limited: %d", rec.Code)
	}
	if got := testutil.ToFloat64(l.limited); got != 1 {
		t.Errorf("rate_limited_total = %v, want 1", got)
	}
}

func TestZeroRateDisablesLimiting(t *testing.T) {
	l := NewRateLimiter(0, 0, prometheus.NewRegistry())
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	for range 1000 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("limited with rate 0: %d", rec.Code)
		}
	}
}
