package transport_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// peer is a real HTTP server registered in a real Consul whose answers the
// test controls: "ok", "fail" (500), "not_found" (404), "conflict" (409)
// "dependency_down" (503 naming its unavailable upstream), "redirect"
// (307) or "bare_404" (404 without problem+json). GET /other always
// answers ok.
type peer struct {
	mode atomic.Value
	hits atomic.Int64
	addr string
}

func startPeer(t *testing.T, consulAddr, service string) *peer {
	t.Helper()
	p := &peer{}
	p.mode.Store("ok")
	tel := newTelemetry(t, io.Discard)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		switch p.mode.Load().(string) {
		case "fail":
			transport.WriteError(r.Context(), errors.New("database on fire"), w)
		case "not_found":
			transport.WriteError(r.Context(), errs.E(errs.NotFound, "no_thing", "no such thing"), w)
		case "conflict":
			transport.WriteError(r.Context(), errs.E(errs.Conflict, "taken", "already taken"), w)
		case "redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		case "bare_404":
			http.Error(w, "404 page not found", http.StatusNotFound)
		case "dependency_down":
			e := errs.E(errs.Unavailable, "unavailable", "no healthy payments instance")
			e.Upstream = "payments"
			transport.WriteError(r.Context(), e, w)
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"served_by":%q}`, p.addr)
		}
	})
	router := transport.NewRouter()
	router.Handle("GET", "/thing", handler)
	router.Handle("POST", "/thing", handler) // for non-idempotent calls
	router.Handle("GET", "/other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"served_by":%q}`, p.addr)
	}))
	srv := startServer(t, tel, router, transport.ServerConfig{})
	p.addr = srv.Addr().String()
	client, err := transport.NewConsulClient(consulAddr)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(p.addr)
	var portNum int
	fmt.Sscan(port, &portNum)
	reg := transport.NewRegistrar(client, transport.Registration{
		Service: service, Address: host, Port: portNum,
		ID: service + "-" + port, CheckInterval: time.Second,
	}, tel.Logger, tel.Registry)
	go reg.Run()
	t.Cleanup(func() { reg.Deregister(context.Background()) })
	return p
}

type thing struct {
	ServedBy string `json:"served_by"`
}

func thingRoute(method string, idempotent bool) transport.ClientRoute {
	return transport.ClientRoute{
		Name: "Thing", Method: method, Idempotent: idempotent,
		Encode: func(_ context.Context, r *http.Request, _ any) error {
			if err := transport.SetPath(r, "thing"); err != nil {
				return err
			}
			return nil
		},
		Decode: transport.DecodeJSONResponse[thing](),
	}
}

type caller struct {
	remote *transport.Remote
	tel    observability.Telemetry
	spans  *tracetest.SpanRecorder
}

func newCaller(t *testing.T, consulAddr, service string, cfg transport.ClientConfig) *caller {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	tel, shutdown, err := observability.Setup(context.Background(), observability.Config{
		ServiceName: "caller", Getenv: func(string) string { return "" }, LogOutput: io.Discard,
		SpanProcessors: []sdktrace.SpanProcessor{spans},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(context.Background()) })
	client, err := transport.NewConsulClient(consulAddr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Service = service
	remote := transport.NewRemote(client, cfg, tel)
	t.Cleanup(remote.Close)
	return &caller{remote: remote, tel: tel, spans: spans}
}

// endpoint is the remote's resilient endpoint for the route, inside its
// client span (named after the remote service: "once.Thing").
func (c *caller) endpoint(method string, idempotent bool) endpoint.Endpoint {
	return c.remote.Factory()(thingRoute(method, idempotent))
}

func (c *caller) waitInstances(t *testing.T, n int) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("caller sees %d instances", n), func() error {
		if got := c.remote.Instances(); len(got) != n {
			return fmt.Errorf("sees %v", got)
		}
		return nil
	})
}

// metricLines counts the series of name whose labels contain labels.
func metricLines(t *testing.T, c *caller, name, labels string) int {
	t.Helper()
	text, err := testutil.CollectAndFormat(c.tel.Registry, expfmt.TypeTextPlain, name)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, name) && strings.Contains(line, labels) {
			n++
		}
	}
	return n
}

func metricValue(t *testing.T, c *caller, name, labels string) float64 {
	t.Helper()
	text, err := testutil.CollectAndFormat(c.tel.Registry, expfmt.TypeTextPlain, name)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, name) && strings.Contains(line, labels) {
			var v float64
			fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v)
			sum += v
		}
	}
	return sum
}

func TestBreakerOpensFailsFastAndRecovers(t *testing.T) {
	consul := testenv.StartConsul(t)
	a, b := startPeer(t, consul.Addr, "flaky"), startPeer(t, consul.Addr, "flaky")
	consul.WaitPassing("flaky", 2, 15*time.Second)
	// Open long enough for the tripping calls' retries, the 50 fast
	// failures and the metric reads on a slow machine.
	c := newCaller(t, consul.Addr, "flaky", transport.ClientConfig{
		Breaker: transport.BreakerConfig{ConsecutiveFailures: 3, OpenFor: 3 * time.Second},
	})
	c.waitInstances(t, 2)
	call := c.endpoint("GET", true)
	ctx := context.Background()

	a.mode.Store("fail")
	b.mode.Store("fail")
	// Each call tries up to 3 times across the two instances; after 3
	// failures on each, both breakers are open.
	for i := 0; i < 4; i++ {
		if _, err := call(ctx, nil); errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("call %d against failing instances: %v, want unavailable", i, err)
		}
	}
	states := c.remote.BreakerStates()
	if len(states) != 2 || states[a.addr+"/Thing"] != "open" || states[b.addr+"/Thing"] != "open" {
		t.Fatalf("breaker states %v, want both open", states)
	}

	hitsBefore := a.hits.Load() + b.hits.Load()
	var latencies []time.Duration
	for range 50 {
		start := time.Now()
		_, err := call(ctx, nil)
		latencies = append(latencies, time.Since(start))
		if errs.CodeOf(err) != "unavailable" || !strings.Contains(err.Error(), "breaker is open") {
			t.Fatalf("with breakers open: %v, want a fast unavailable", err)
		}
	}
	if hits := a.hits.Load() + b.hits.Load() - hitsBefore; hits != 0 {
		t.Errorf("open breakers let %d requests through", hits)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	t.Logf("MEASURED fast-fail latency with every breaker open: median %s, max %s (50 calls)", latencies[25], latencies[49])
	if got := metricValue(t, c, "glasshouse_client_breaker_state", `remote="flaky"`); got != 4 {
		t.Errorf("breaker_state gauge sums to %v, want 4 (two instances × open=2)", got)
	}
	if got := metricValue(t, c, "glasshouse_client_unavailable_total", `reason="breaker_open"`); got < 50 {
		t.Errorf("unavailable{reason=breaker_open} = %v, want ≥ 50", got)
	}

	a.mode.Store("ok")
	b.mode.Store("ok")
	testenv.Eventually(t, 10*time.Second, "calls succeed after recovery", func() error {
		_, err := call(ctx, nil)
		return err
	})
	testenv.Eventually(t, 10*time.Second, "both breakers closed", func() error {
		_, _ = call(ctx, nil)
		if s := c.remote.BreakerStates(); s[a.addr+"/Thing"] != "closed" || s[b.addr+"/Thing"] != "closed" {
			return fmt.Errorf("states %v", s)
		}
		return nil
	})
	for _, to := range []string{`to="open"`, `from="open",remote="flaky",remote_instance="` + a.addr + `",to="half-open"`, `from="half-open",remote="flaky",remote_instance="` + a.addr + `",to="closed"`} {
		if metricValue(t, c, "glasshouse_client_breaker_transitions_total", to) == 0 {
			t.Errorf("no breaker transition %s counted", to)
		}
	}
}

func TestBusinessErrorsPassThroughUntouched(t *testing.T) {
	consul := testenv.StartConsul(t)
	p := startPeer(t, consul.Addr, "strict")
	consul.WaitPassing("strict", 1, 15*time.Second)
	c := newCaller(t, consul.Addr, "strict", transport.ClientConfig{Breaker: transport.BreakerConfig{ConsecutiveFailures: 2}})
	c.waitInstances(t, 1)
	call := c.endpoint("GET", true)

	for _, tt := range []struct {
		mode, code string
		kind       errs.Kind
	}{
		{"not_found", "no_thing", errs.NotFound},
		{"conflict", "taken", errs.Conflict},
		// A peer reporting that its own dependency is down is healthy.
		{"dependency_down", "unavailable", errs.Unavailable},
	} {
		p.mode.Store(tt.mode)
		for range 5 {
			before := p.hits.Load()
			_, err := call(context.Background(), nil)
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != tt.kind || e.Code != tt.code {
				t.Fatalf("%s: got %v, want %v/%s unchanged", tt.mode, err, tt.kind, tt.code)
			}
			if tt.mode == "dependency_down" && e.Upstream != "payments" {
				t.Errorf("upstream %q lost on the way, want payments", e.Upstream)
			}
			if hits := p.hits.Load() - before; hits != 1 {
				t.Errorf("%s: server saw %d requests for one call; business errors must not be retried", tt.mode, hits)
			}
		}
	}
	if s := c.remote.BreakerStates()[p.addr+"/Thing"]; s != "closed" {
		t.Errorf("breaker %s after 15 answers with a trip threshold of 2; want closed", s)
	}
	if got := metricValue(t, c, "glasshouse_client_retries_total", `remote="strict"`); got != 0 {
		t.Errorf("%v retries counted for business errors", got)
	}
}

func TestOnlyIdempotentCallsAreRetried(t *testing.T) {
	consul := testenv.StartConsul(t)
	p := startPeer(t, consul.Addr, "once")
	consul.WaitPassing("once", 1, 15*time.Second)
	c := newCaller(t, consul.Addr, "once", transport.ClientConfig{})
	c.waitInstances(t, 1)
	p.mode.Store("fail")

	before := p.hits.Load()
	_, err := c.endpoint("POST", false)(context.Background(), nil)
	if errs.CodeOf(err) != "unavailable" {
		t.Fatalf("non-idempotent call to a failing peer: %v, want unavailable", err)
	}
	if hits := p.hits.Load() - before; hits != 1 {
		t.Errorf("non-idempotent call reached the server %d times, want exactly 1", hits)
	}

	before = p.hits.Load()
	ctx, span := c.tel.Tracer("test").Start(context.Background(), "root")
	_, err = c.endpoint("GET", true)(ctx, nil)
	span.End()
	if errs.CodeOf(err) != "unavailable" {
		t.Fatalf("idempotent call to a failing peer: %v", err)
	}
	if hits := p.hits.Load() - before; hits != 3 {
		t.Errorf("idempotent call reached the server %d times, want 3 attempts", hits)
	}
	// The retries are events, numbered, on the client call's span.
	var attempts []int64
	for _, s := range c.spans.Ended() {
		if s.Name() != "once.Thing" || s.Parent().SpanID() != span.SpanContext().SpanID() {
			continue
		}
		for _, ev := range s.Events() {
			if ev.Name == "retry" {
				for _, a := range ev.Attributes {
					if a.Key == "glasshouse.retry.attempt" {
						attempts = append(attempts, a.Value.AsInt64())
					}
				}
			}
		}
	}
	if !slices.Equal(attempts, []int64{2, 3}) {
		t.Errorf("retry events carry attempts %v, want [2 3]", attempts)
	}
}

func TestNoInstancesIsATypedUnavailableError(t *testing.T) {
	consul := testenv.StartConsul(t)
	c := newCaller(t, consul.Addr, "ghost", transport.ClientConfig{})
	start := time.Now()
	_, err := c.endpoint("GET", true)(context.Background(), nil)
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Unavailable || e.Code != "unavailable" || !strings.Contains(e.Detail, "no healthy ghost instance") {
		t.Fatalf("got %v, want unavailable naming the service", err)
	}
	t.Logf("MEASURED no-instance failure in %s", time.Since(start))
	if got := metricValue(t, c, "glasshouse_client_unavailable_total", `reason="no_instances"`); got != 1 {
		t.Errorf("unavailable{reason=no_instances} = %v, want 1", got)
	}

	// At the edge it becomes a 503 problem with code unavailable.
	srv := newEdge(t, c.endpoint("GET", true))
	resp, err := http.Get(srv)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p transport.Problem
	json.NewDecoder(resp.Body).Decode(&p)
	if resp.StatusCode != 503 || p.Code != "unavailable" {
		t.Errorf("edge answered %d %+v, want 503 unavailable", resp.StatusCode, p)
	}
}

// newEdge serves ep at /edge through the standard server stack.
func newEdge(t *testing.T, ep endpoint.Endpoint) string {
	t.Helper()
	router := transport.NewRouter()
	router.Handle("GET", "/edge", httptransport.NewServer(ep, func(context.Context, *http.Request) (any, error) { return nil, nil },
		transport.EncodeJSON(200), httptransport.ServerErrorEncoder(transport.WriteError)))
	srv := startServer(t, newTelemetry(t, io.Discard), router, transport.ServerConfig{})
	return (&url.URL{Scheme: "http", Host: srv.Addr().String(), Path: "/edge"}).String()
}
