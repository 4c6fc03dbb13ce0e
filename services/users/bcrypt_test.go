package users

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/go-kit/kit/endpoint"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/crypto/bcrypt"
)

// gated is a users service on a real store whose bcrypt calls are
// counted, with slots bcrypt slots and a wait for one of wait.
type gated struct {
	*service
	reg              *prometheus.Registry
	hashes, compares atomic.Int32
}

func newGated(t *testing.T, slots int, wait time.Duration) *gated {
	t.Helper()
	ctx := context.Background()
	store, err := OpenStore(ctx, filepath.Join(t.TempDir(), "users.db"), noop.NewTracerProvider())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g := &gated{reg: prometheus.NewRegistry()}
	b, err := NewBcrypt(Options{
		BcryptCost: bcrypt.MinCost, BcryptConcurrency: slots, BcryptWait: wait, Registerer: g.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	g.service = NewService(store, NewIssuer(key, time.Hour, nil), b).(*service)
	hash, compare := g.hash, g.compare
	g.hash = func(pw []byte, cost int) ([]byte, error) { g.hashes.Add(1); return hash(pw, cost) }
	g.compare = func(h, pw []byte) error { g.compares.Add(1); return compare(h, pw) }
	return g
}

// hold takes every slot, as n slow bcrypt calls in flight would, and
// returns the function that frees them.
func (g *gated) hold(t *testing.T) func() {
	t.Helper()
	var releases []func()
	for range cap(g.gate.slots) {
		release, err := g.gate.acquire(context.Background(), "login")
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	return func() {
		for _, r := range releases {
			r()
		}
	}
}

const pw = "correct horse battery staple"

func TestFullBcryptSlotsAnswerAuthBusyWithoutHashing(t *testing.T) {
	g := newGated(t, 2, 10*time.Millisecond)
	ctx := context.Background()
	if _, err := g.Register(ctx, "ada@example.com", pw, "Ada"); err != nil {
		t.Fatal(err)
	}
	hashes, compares := g.hashes.Load(), g.compares.Load()

	free := g.hold(t)
	if got := testutil.ToFloat64(g.gate.inUse); got != 2 {
		t.Errorf("bcrypt in use = %v with every slot held; want 2", got)
	}
	_, err := g.Login(ctx, "ada@example.com", pw)
	if errs.KindOf(err) != errs.RateLimited || errs.CodeOf(err) != CodeAuthBusy {
		t.Fatalf("Login with every slot taken = %v; want rate_limited/auth_busy", err)
	}
	// A business answer: the gateway neither retries it nor counts it
	// against this instance's breaker.
	if !errs.IsBusiness(err) {
		t.Errorf("auth_busy must be a business answer, is %v", errs.KindOf(err))
	}
	if _, err := g.Register(ctx, "bob@example.com", pw, "Bob"); errs.CodeOf(err) != CodeAuthBusy {
		t.Fatalf("Register with every slot taken = %v; want auth_busy", err)
	}
	if g.hashes.Load() != hashes || g.compares.Load() != compares {
		t.Errorf("refused calls ran bcrypt: %d hashes, %d comparisons more", g.hashes.Load()-hashes, g.compares.Load()-compares)
	}
	if n, _ := g.store.CountUsers(ctx); n != 1 {
		t.Errorf("%d users after a refused sign-up; want 1", n)
	}
	for op, want := range map[string]float64{"login": 1, "register": 1} {
		if got := testutil.ToFloat64(g.gate.rejected.WithLabelValues(op)); got != want {
			t.Errorf("rejected{op=%s} = %v; want %v", op, got, want)
		}
	}

	free()
	if got := testutil.ToFloat64(g.gate.inUse); got != 0 {
		t.Errorf("bcrypt in use = %v after freeing; want 0", got)
	}
	if _, err := g.Login(ctx, "ada@example.com", pw); err != nil {
		t.Errorf("Login once slots are free: %v", err)
	}
	if g.compares.Load() != compares+1 {
		t.Errorf("%d comparisons for the login that got a slot; want 1", g.compares.Load()-compares)
	}
}

func TestAWaitingLoginTakesTheNextFreeSlot(t *testing.T) {
	// A wait far longer than the test: the login must get the slot when
	// it is freed, not time out.
	g := newGated(t, 1, time.Minute)
	ctx := context.Background()
	if _, err := g.Register(ctx, "ada@example.com", pw, "Ada"); err != nil {
		t.Fatal(err)
	}
	free := g.hold(t)
	done := make(chan error, 1)
	go func() { _, err := g.Login(ctx, "ada@example.com", pw); done <- err }()
	free()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("queued login = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the queued login never got the freed slot")
	}
}

func TestAWaitingLoginGivesUpWithItsCaller(t *testing.T) {
	g := newGated(t, 1, time.Minute)
	defer g.hold(t)()
	// The wait is a minute, but the caller's deadline has passed: the
	// queued call returns with it instead of holding a goroutine.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	if _, err := g.gate.acquire(ctx, "login"); errs.KindOf(err) != errs.Timeout {
		t.Errorf("acquire past its caller's deadline = %v; want timeout", err)
	}
	if got := testutil.ToFloat64(g.gate.rejected.WithLabelValues("login")); got != 0 {
		t.Errorf("a caller that gave up counted as rejected (%v): it was not refused", got)
	}
}

func TestAuthBusyIsA429OverHTTP(t *testing.T) {
	g := newGated(t, 1, time.Millisecond)
	defer g.hold(t)()
	noMiddleware := func(string) endpoint.Middleware { return func(e endpoint.Endpoint) endpoint.Endpoint { return e } }
	srv := httptest.NewServer(API.Server(g.service, noMiddleware))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/login", "application/json", strings.NewReader(`{"email":"ada@example.com","password":"`+pw+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"code":"auth_busy"`) {
		t.Errorf("login with every slot taken: %d %s; want 429 auth_busy", resp.StatusCode, body)
	}
}

func TestMetricsOfTheBcryptGateStartAtZero(t *testing.T) {
	g := newGated(t, 3, time.Millisecond)
	want := `
# HELP glasshouse_users_bcrypt_rejected_total Logins and registrations refused with auth_busy because every bcrypt slot stayed taken, by operation.
# TYPE glasshouse_users_bcrypt_rejected_total counter
glasshouse_users_bcrypt_rejected_total{op="login"} 0
glasshouse_users_bcrypt_rejected_total{op="register"} 0
# HELP glasshouse_users_bcrypt_slots bcrypt hashes and comparisons allowed at once (-bcrypt-concurrency).
# TYPE glasshouse_users_bcrypt_slots gauge
glasshouse_users_bcrypt_slots 3
`
	if err := testutil.GatherAndCompare(g.reg, strings.NewReader(want), "glasshouse_users_bcrypt_rejected_total", "glasshouse_users_bcrypt_slots"); err != nil {
		t.Error(err)
	}
}

func TestNewBcryptRejectsBadLimits(t *testing.T) {
	for _, opts := range []Options{{BcryptConcurrency: -1}, {BcryptWait: -time.Second}} {
		opts.BcryptCost = bcrypt.MinCost
		if _, err := NewBcrypt(opts); err == nil {
			t.Errorf("NewBcrypt(%+v) succeeded; want an error", opts)
		}
	}
}
