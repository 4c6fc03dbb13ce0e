package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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

// tableLimiter is a limiter of one request per client per second with no
// burst beyond it, holding at most max clients, on a clock the test moves.
func tableLimiter(t *testing.T, max int) (*RateLimiter, *time.Time) {
	t.Helper()
	m := NewRateLimitMetrics(prometheus.NewRegistry())
	l := m.NewLimiter("client", Limit{PerSecond: 1, Burst: 1}, max, NewClientKeys(nil).limitKey)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	return l, &now
}

func TestRateLimiterHoldsAtMostMaxClients(t *testing.T) {
	l, _ := tableLimiter(t, 100)
	for i := range 10_000 {
		l.allow(fmt.Sprintf("client-%d", i))
		if n := l.Len(); n > 100 {
			t.Fatalf("after %d clients the table holds %d, want at most 100", i+1, n)
		}
	}
	if got := testutil.ToFloat64(l.evicted); got != 10_000-100 {
		t.Errorf("evictions = %v, want %d", got, 10_000-100)
	}
	if got := testutil.ToFloat64(l.tracked); got != 100 {
		t.Errorf("keys gauge = %v, want 100", got)
	}
}

func TestRateLimiterEvictsTheLeastRecentlySeen(t *testing.T) {
	l, _ := tableLimiter(t, 3)
	for _, c := range []string{"a", "b", "c"} {
		if _, ok := l.allow(c); !ok {
			t.Fatalf("first request of %s refused", c)
		}
	}
	// a is seen again (and refused: its one token is spent), so b is now
	// the least recently seen, and the newcomer d pushes b out, not a.
	if _, ok := l.allow("a"); ok {
		t.Fatal("a's second request within the second was allowed")
	}
	l.allow("d")
	if _, ok := l.allow("a"); ok {
		t.Error("a's bucket was reset by an eviction although a was seen recently")
	}
	if _, ok := l.allow("b"); !ok {
		t.Error("b was not the one evicted: its bucket is still empty")
	}
}

func TestAHostileClientResetsItsBucketAtMostOncePerEvictionCycle(t *testing.T) {
	const max = 50
	l, _ := tableLimiter(t, max)
	l.allow("hostile")
	if _, ok := l.allow("hostile"); ok {
		t.Fatal("the limit does not hold to begin with")
	}
	// It takes max-1 newcomers to make the hostile client the least
	// recently seen, and one more to push it out: until then it stays
	// limited, however it interleaves its own requests.
	for i := range max - 1 {
		l.allow(fmt.Sprintf("sybil-%d", i))
	}
	if _, ok := l.allow("hostile"); ok {
		t.Fatalf("bucket reset after only %d newcomers", max-1)
	}
	// Its refused request made it the most recent again: the cycle
	// starts over, and it needs max newcomers more.
	for i := range max - 1 {
		l.allow(fmt.Sprintf("sybil-b-%d", i))
	}
	if _, ok := l.allow("hostile"); ok {
		t.Fatalf("bucket reset after %d newcomers, fewer than one cycle (%d)", max-1, max)
	}
	for i := range max {
		l.allow(fmt.Sprintf("sybil-c-%d", i))
	}
	if _, ok := l.allow("hostile"); !ok {
		t.Error("after a whole cycle of newcomers the hostile client should have been forgotten")
	}
}

func TestIdleBucketsAreForgottenOnceFullAgain(t *testing.T) {
	m := NewRateLimitMetrics(prometheus.NewRegistry())
	l := m.NewLimiter("client", Limit{PerSecond: 2, Burst: 4}, 100, NewClientKeys(nil).limitKey) // full again after 2s
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	for i := range 10 {
		l.allow(fmt.Sprintf("client-%d", i))
	}
	now = now.Add(2 * time.Second)
	l.allow("late")
	if n := l.Len(); n != 11 {
		t.Fatalf("buckets seen 2s ago (not yet full) were forgotten: %d left, want 11", n)
	}
	now = now.Add(time.Millisecond)
	l.allow("later")
	if n := l.Len(); n != 2 {
		t.Errorf("idle full buckets kept: %d left, want 2 (late, later)", n)
	}
	if got := testutil.ToFloat64(l.evicted); got != 0 {
		t.Errorf("forgetting idle buckets counted as %v evictions", got)
	}
}

func TestLimitsConfigRefusesARateWithoutBurst(t *testing.T) {
	good := LimitsConfig{Client: Limit{100, 200}, Auth: Limit{5, 10}, LoginEmail: Limit{1, 5}, MaxKeys: 10}
	if err := good.Validate(); err != nil {
		t.Fatalf("the defaults' shape: %v", err)
	}
	off := LimitsConfig{MaxKeys: 1} // every limit off
	if err := off.Validate(); err != nil {
		t.Errorf("limits switched off: %v", err)
	}
	for name, cfg := range map[string]LimitsConfig{
		"AUTH_RATE_BURST":        {Client: Limit{100, 200}, Auth: Limit{5, 0}, MaxKeys: 10},
		"LOGIN_EMAIL_RATE_BURST": {LoginEmail: Limit{1, 0}, MaxKeys: 10},
		"RATE_LIMIT_CLIENTS":     {MaxKeys: 0},
	} {
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming %s", name, err, name)
		}
	}
}

func TestClientLimitSeesThroughTrustedProxiesOnly(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	limits := NewLimits(LimitsConfig{Client: Limit{1, 1}, MaxKeys: 100, Clients: NewClientKeys(proxies)}, prometheus.NewRegistry())
	h := limits.Client.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	call := func(peer, forwarded string) int {
		r := httptest.NewRequest("GET", "/api/products", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", forwarded)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	// Two customers behind the same load balancer have a bucket each.
	if a, b := call("10.0.0.1:1", "198.51.100.1"), call("10.0.0.1:2", "198.51.100.2"); a != 204 || b != 204 {
		t.Fatalf("two clients behind the proxy: %d, %d; want 204 both", a, b)
	}
	if got := call("10.0.0.1:3", "198.51.100.1"); got != http.StatusTooManyRequests {
		t.Errorf("the first client again: %d, want 429", got)
	}
	// A client talking to the gateway directly cannot buy fresh buckets
	// by writing the header itself.
	if got := call("203.0.113.5:1", "198.51.100.77"); got != 204 {
		t.Fatalf("a direct client's first request: %d", got)
	}
	if got := call("203.0.113.5:1", "198.51.100.78"); got != http.StatusTooManyRequests {
		t.Errorf("a direct client with a forged X-Forwarded-For: %d, want 429", got)
	}
}
