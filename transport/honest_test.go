package transport_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// These tests pin the breaker accounting that keeps one client's bad
// requests from hurting everyone: only the peer's own faults count.

func otherRoute() transport.ClientRoute {
	return transport.ClientRoute{
		Name: "Other", Method: "GET", Idempotent: true,
		Encode: func(_ context.Context, r *http.Request, _ any) error { return transport.SetPath(r, "other") },
		Decode: transport.DecodeJSONResponse[thing](),
	}
}

func TestUnexpectedAnswersAreNeitherRetriedNorCounted(t *testing.T) {
	consul := testenv.StartConsul(t)
	p := startPeer(t, consul.Addr, "odd")
	consul.WaitPassing("odd", 1, 15*time.Second)
	c := newCaller(t, consul.Addr, "odd", transport.ClientConfig{Breaker: transport.BreakerConfig{ConsecutiveFailures: 2}})
	c.waitInstances(t, 1)
	call := c.endpoint("GET", true)

	for _, mode := range []string{"redirect", "bare_404"} {
		p.mode.Store(mode)
		for i := range 10 {
			before := p.hits.Load()
			_, err := call(context.Background(), nil)
			if errs.KindOf(err) != errs.Internal || errs.CodeOf(err) != "unexpected_response" {
				t.Fatalf("%s call %d: %v, want internal/unexpected_response", mode, i, err)
			}
			var e *errs.Error
			if errors.As(err, &e) && (strings.Contains(e.Detail, "127.0.0.1") || strings.Contains(e.Detail, "http://") || strings.Contains(e.Detail, "page not found")) {
				t.Errorf("%s: detail %q carries the peer's address or body", mode, e.Detail)
			}
			if hits := p.hits.Load() - before; hits != 1 {
				t.Fatalf("%s: one call reached the server %d times; an unexpected answer must not be retried", mode, hits)
			}
		}
	}
	if s := c.remote.BreakerStates()[p.addr+"/Thing"]; s != "closed" {
		t.Errorf("breaker %s after 20 unexpected answers with a trip threshold of 2; want closed", s)
	}
	if got := metricValue(t, c, "glasshouse_client_retries_total", `remote="odd"`); got != 0 {
		t.Errorf("%v retries for unexpected answers", got)
	}

	// With honest accounting switched off (the chaos suite's
	// mechanism-off setting) the same answers trip the breaker.
	dishonest := newCaller(t, consul.Addr, "odd", transport.ClientConfig{CountAllErrors: true, Breaker: transport.BreakerConfig{ConsecutiveFailures: 2}})
	dishonest.waitInstances(t, 1)
	for range 3 {
		dishonest.endpoint("GET", true)(context.Background(), nil)
	}
	if s := dishonest.remote.BreakerStates()[p.addr+"/Thing"]; s != "open" {
		t.Errorf("with CountAllErrors the breaker is %s, want open", s)
	}
}

func TestOpenBreakersAreSkippedWithoutSpendingAttempts(t *testing.T) {
	consul := testenv.StartConsul(t)
	bad, good := startPeer(t, consul.Addr, "half"), startPeer(t, consul.Addr, "half")
	consul.WaitPassing("half", 2, 15*time.Second)
	// One attempt per call: a refused instance must not use it up.
	c := newCaller(t, consul.Addr, "half", transport.ClientConfig{
		MaxAttempts: 2, Breaker: transport.BreakerConfig{ConsecutiveFailures: 3, OpenFor: time.Minute},
		CallTimeout: 5 * time.Second, Deadline: 15 * time.Second,
	})
	c.waitInstances(t, 2)
	call := c.endpoint("GET", true)
	bad.mode.Store("fail")
	testenv.Eventually(t, 10*time.Second, "the failing instance's breaker opens", func() error {
		if _, err := call(context.Background(), nil); err != nil {
			return err // retried on the good one: calls still succeed
		}
		if s := c.remote.BreakerStates()[bad.addr+"/Thing"]; s != "open" {
			return errors.New("breaker " + s)
		}
		return nil
	})
	retries := metricValue(t, c, "glasshouse_client_retries_total", `remote="half"`)
	badHits := bad.hits.Load()
	for i := range 100 {
		resp, err := call(context.Background(), nil)
		if err != nil {
			t.Fatalf("call %d with one breaker open: %v", i, err)
		}
		if got := resp.(thing).ServedBy; got != good.addr {
			t.Fatalf("served by %s, want the healthy %s", got, good.addr)
		}
	}
	if n := bad.hits.Load() - badHits; n != 0 {
		t.Errorf("the open breaker let %d calls through", n)
	}
	if n := metricValue(t, c, "glasshouse_client_retries_total", `remote="half"`) - retries; n != 0 {
		t.Errorf("%v retries spent while one breaker was open; refusals must cost no attempt", n)
	}
}

func TestBreakersArePerEndpoint(t *testing.T) {
	consul := testenv.StartConsul(t)
	p := startPeer(t, consul.Addr, "mixed")
	consul.WaitPassing("mixed", 1, 15*time.Second)
	c := newCaller(t, consul.Addr, "mixed", transport.ClientConfig{MaxAttempts: 1, Breaker: transport.BreakerConfig{ConsecutiveFailures: 3}})
	c.waitInstances(t, 1)
	failing, healthy := c.endpoint("GET", true), c.remote.Factory()(otherRoute())
	p.mode.Store("fail")
	// Successes of a fast healthy endpoint interleaved with a failing
	// one must not reset the failing one's count.
	for range 3 {
		failing(context.Background(), nil)
		if _, err := healthy(context.Background(), nil); err != nil {
			t.Fatalf("healthy endpoint: %v", err)
		}
	}
	states := c.remote.BreakerStates()
	if states[p.addr+"/Thing"] != "open" || states[p.addr+"/Other"] != "closed" {
		t.Errorf("breakers %v, want Thing open and Other closed", states)
	}
}

func TestFaultedRequestsBypassBreakers(t *testing.T) {
	consul := testenv.StartConsul(t)
	p := startPeer(t, consul.Addr, "probe")
	consul.WaitPassing("probe", 1, 15*time.Second)
	c := newCaller(t, consul.Addr, "probe", transport.ClientConfig{Breaker: transport.BreakerConfig{ConsecutiveFailures: 2}})
	c.waitInstances(t, 1)
	call := c.endpoint("GET", true)
	p.mode.Store("fail") // what an injected fault looks like to the caller
	ctx, err := transport.FaultBaggage(context.Background(), "probe", "error")
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := call(ctx, nil); err == nil {
			t.Fatal("a failing peer answered")
		}
	}
	if s := c.remote.BreakerStates()[p.addr+"/Thing"]; s == "open" {
		t.Errorf("calls that asked for faults opened the breaker clean traffic shares")
	}
	p.mode.Store("ok")
	if _, err := call(context.Background(), nil); err != nil {
		t.Errorf("clean call after faulted ones: %v", err)
	}
}

func TestRetriesGoToAnotherInstanceUnderConcurrency(t *testing.T) {
	consul := testenv.StartConsul(t)
	bad, good := startPeer(t, consul.Addr, "busy"), startPeer(t, consul.Addr, "busy")
	consul.WaitPassing("busy", 2, 15*time.Second)
	// The breaker never trips here, so every call meets the failing
	// instance as often as round robin sends it there.
	c := newCaller(t, consul.Addr, "busy", transport.ClientConfig{
		MaxAttempts: 2, Breaker: transport.BreakerConfig{ConsecutiveFailures: 1 << 30},
		// Generous timeouts: this test is about where retries go, and a
		// loaded CI machine must not turn slow answers into failures.
		CallTimeout: 5 * time.Second, Deadline: 15 * time.Second,
	})
	c.waitInstances(t, 2)
	bad.mode.Store("fail")
	call := c.endpoint("GET", true)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
		first  error
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := call(context.Background(), nil); err != nil {
					mu.Lock()
					failed++
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if failed != 0 {
		t.Errorf("%d of 800 concurrent calls failed with one healthy instance (first: %v); a retry must go to an instance not tried yet", failed, first)
	}
	if bad.hits.Load() == 0 || good.hits.Load() < 800 {
		t.Errorf("hits bad=%d good=%d: the test did not exercise retries", bad.hits.Load(), good.hits.Load())
	}
}

func TestCountersExistAtZeroFromTheFirstCall(t *testing.T) {
	consul := testenv.StartConsul(t)
	p := startPeer(t, consul.Addr, "fresh")
	consul.WaitPassing("fresh", 1, 15*time.Second)
	c := newCaller(t, consul.Addr, "fresh", transport.ClientConfig{})
	c.waitInstances(t, 1)
	if _, err := c.endpoint("GET", true)(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for _, series := range []struct{ name, labels string }{
		{"glasshouse_client_retries_total", `endpoint="Thing",remote="fresh"`},
		{"glasshouse_client_breaker_transitions_total", `from="closed",remote="fresh",remote_instance="` + p.addr + `",to="open"`},
		{"glasshouse_client_unavailable_total", `reason="breaker_open"`},
	} {
		if !hasSeries(t, c, series.name, series.labels) {
			t.Errorf("no %s{%s} series after the first call", series.name, series.labels)
		}
	}
}

func hasSeries(t *testing.T, c *caller, name, labels string) bool {
	t.Helper()
	return metricValue(t, c, name, labels) == 0 && metricLines(t, c, name, labels) > 0
}

// An endpoint nobody calls any more (orders calls Void only to
// compensate) must not read "open" forever: the gauge is the state now,
// and a half-open breaker that no call probes for a second is
// closed afresh.
func TestAnIdleBreakerDoesNotReadOpenForever(t *testing.T) {
	consul := testenv.StartConsul(t)
	p := startPeer(t, consul.Addr, "idle")
	consul.WaitPassing("idle", 1, 15*time.Second)
	c := newCaller(t, consul.Addr, "idle", transport.ClientConfig{
		MaxAttempts: 1, Breaker: transport.BreakerConfig{ConsecutiveFailures: 2, OpenFor: time.Second},
	})
	c.waitInstances(t, 1)
	p.mode.Store("fail")
	call := c.endpoint("GET", true)
	for range 2 {
		call(context.Background(), nil)
	}
	labels := `endpoint="Thing",remote="idle"`
	if got := metricValue(t, c, "glasshouse_client_breaker_state", labels); got != 2 {
		t.Fatalf("breaker state %v right after tripping, want 2 (open)", got)
	}
	p.mode.Store("ok")
	testenv.Eventually(t, 5*time.Second, "the idle breaker reads closed", func() error {
		if got := metricValue(t, c, "glasshouse_client_breaker_state", labels); got != 0 {
			return fmt.Errorf("state %v", got)
		}
		return nil
	})
	if _, err := call(context.Background(), nil); err != nil {
		t.Errorf("first call after the reset: %v", err)
	}
}
