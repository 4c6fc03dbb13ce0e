package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/stack"
	"github.com/glasshouse-dev/glasshouse/traces"
)

// startStack brings the whole local platform up on random ports, exactly
// as `glasshouse up` does, and takes it down when the test ends.
func startStack(t *testing.T, env map[string][]string) *stack.Stack {
	t.Helper()
	return startStackOn(t, stack.StoreSQLite, env)
}

// startStackOn is startStack with the services' data in store, as
// `glasshouse up --store` does.
func startStackOn(t testing.TB, store stack.Store, env map[string][]string) *stack.Stack {
	t.Helper()
	root := testenv.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := stack.Up(ctx, stack.Config{
		Root:        root,
		RunDir:      runDir(t),
		BinDir:      t.TempDir(),
		ToolsDir:    filepath.Join(root, "bin", "tools"),
		RandomPorts: true,
		Store:       store,
		Env:         env,
		Progress:    testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Down(context.Background()); err != nil {
			t.Errorf("stack down: %v", err)
		}
		for _, p := range s.Procs() {
			if p.Running() {
				t.Errorf("%s still running after down", p.Name)
			}
		}
	})
	return s
}

// runDir is a run directory for a stack, removed when the test ends. Not
// t.TempDir: as root, PostgreSQL runs as the postgres user, who must pass
// through the directories above its data, and t.TempDir's parent is
// private.
func runDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "glasshouse-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// gatewayClient drives the stack's gateway for one test user.
type gatewayClient struct {
	t     *testing.T
	url   string
	token string
}

func newGatewayClient(t *testing.T, gateway, email string) *gatewayClient {
	t.Helper()
	s := &shop{t: t, gateway: &testenv.Service{URL: gateway}}
	return &gatewayClient{t: t, url: gateway, token: s.signUp(email)}
}

// checkout places an order and returns the response and its trace ID.
func (g *gatewayClient) checkout(key string) (int, string) {
	g.t.Helper()
	s := &shop{t: g.t, gateway: &testenv.Service{URL: g.url}}
	r := s.order(g.token, key, approveCard, orders.Item{SKU: "GH-NOTE-01", Quantity: 1})
	return r.status, r.header.Get("X-Trace-Id")
}

// waitTrace polls Jaeger until the trace holds spans from every service
// in want (spans arrive in batches, each service on its own schedule).
func waitTrace(t *testing.T, jaeger *traces.Client, id string, want ...string) *traces.Trace {
	t.Helper()
	var tr *traces.Trace
	testenv.Eventually(t, 30*time.Second, "trace "+id+" complete in Jaeger", func() error {
		var err error
		tr, err = jaeger.Trace(context.Background(), id)
		if err != nil {
			return err
		}
		have := tr.Services()
		for _, svc := range want {
			if !slices.Contains(have, svc) {
				return fmt.Errorf("services so far %v, missing %s", have, svc)
			}
		}
		// Each service exports its spans in batches of its own: a span
		// whose parent has not arrived yet says the trace is not whole.
		if !tr.Complete() {
			return fmt.Errorf("%d spans so far, %d of them orphans", len(tr.Spans), len(tr.Orphans()))
		}
		return nil
	})
	return tr
}

func TestLocalStackTracesLogsAndMetrics(t *testing.T) {
	for _, store := range []stack.Store{stack.StoreSQLite, stack.StorePostgres} {
		t.Run(string(store), func(t *testing.T) { testLocalStack(t, store) })
	}
}

func testLocalStack(t *testing.T, store stack.Store) {
	s := startStackOn(t, store, nil)
	system := map[stack.Store]string{stack.StoreSQLite: "sqlite", stack.StorePostgres: "postgresql"}[store]

	// A short open-loop load, so every service has traffic and metrics.
	rep, err := loadgen.Run(context.Background(), loadgen.Config{
		Target: s.GatewayURL, Rate: 20, Duration: 5 * time.Second, Users: 3, MaxInFlight: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.Requests == 0 || rep.Total.OK < rep.Total.Requests*99/100 {
		t.Errorf("load: %d requests, %d ok, errors %v; want ≥ 99%% ok", rep.Total.Requests, rep.Total.OK, rep.Total.Errors)
	}

	g := newGatewayClient(t, s.GatewayURL, "tracer@example.com")
	status, traceID := g.checkout("traced-1")
	if status != 201 || len(traceID) != 32 {
		t.Fatalf("checkout: %d, trace %q", status, traceID)
	}
	jaeger := traces.NewClient(s.JaegerURL, nil)
	tr := waitTrace(t, jaeger, traceID, "gateway", "orders", "inventory", "payments")

	// orders' client spans are the parents of inventory's and payments'
	// server spans: the call crossed the wire inside one trace.
	servers := tr.Find(func(sp traces.Span) bool {
		return (sp.Service == "inventory" || sp.Service == "payments") && sp.Kind == "server"
	})
	if len(servers) < 3 { // reserve, charge, commit at least
		t.Errorf("%d inventory/payments server spans, want ≥ 3", len(servers))
	}
	// The saga calls them over gRPC: each server span is otelgrpc's,
	// named after the rpc, the child of orders' client span of the same
	// rpc, and the parent of the endpoint span the HTTP side has too.
	contract := map[string]string{"inventory": "glasshouse.inventory.v1.Inventory/", "payments": "glasshouse.payments.v1.Payments/"}
	for _, sp := range servers {
		parent, ok := tr.Span(sp.ParentID)
		if !ok || parent.Service != "orders" || parent.Kind != "client" {
			t.Errorf("%s %q: parent %+v, want an orders client span", sp.Service, sp.Operation, parent)
		}
		if !strings.HasPrefix(sp.Operation, contract[sp.Service]) || parent.Operation != sp.Operation {
			t.Errorf("%s server span %q (parent %q); want the gRPC call %s<Method> on both sides", sp.Service, sp.Operation, parent.Operation, contract[sp.Service])
		}
		method := strings.TrimPrefix(sp.Operation, contract[sp.Service])
		if eps := tr.Find(func(c traces.Span) bool { return c.ParentID == sp.ID && c.Operation == sp.Service+"."+method }); len(eps) != 1 {
			t.Errorf("%s %q has %d endpoint spans %s.%s as children; want 1", sp.Service, sp.Operation, len(eps), sp.Service, method)
		}
	}
	// Database work shows under each service that owns data, marked
	// with the database it went to.
	for _, svc := range []string{"orders", "inventory", "payments"} {
		db := tr.Find(func(sp traces.Span) bool { return sp.Service == svc && sp.Tags["db.system.name"] == system })
		if len(db) == 0 {
			t.Errorf("no %s spans from %s in the checkout trace", system, svc)
		}
	}
	if orphans := tr.Orphans(); len(orphans) != 0 {
		t.Errorf("%d orphan spans, e.g. %+v", len(orphans), orphans[0])
	}

	// The checkout's event crosses NATS: its PRODUCER span is in the
	// checkout's trace, and recommendations' CONSUMER span, in a trace of
	// its own, links back to it. glasshouse trace shows the link.
	producers := tr.Find(func(sp traces.Span) bool { return sp.Kind == "producer" && sp.Operation == "create orders.confirmed" })
	if len(producers) != 1 || producers[0].Tags["messaging.message.id"] == "" || producers[0].Tags["messaging.system"] != "nats" {
		t.Fatalf("the checkout trace holds %d PRODUCER spans create orders.confirmed, want 1 with messaging.system nats and the event ID: %+v", len(producers), producers)
	}
	producer := producers[0]
	eventID := producer.Tags["messaging.message.id"]
	var consumer traces.Span
	testenv.Eventually(t, 30*time.Second, "recommendations' CONSUMER span of the checkout's event is in Jaeger", func() error {
		linked, err := jaeger.Linked(context.Background(), "recommendations", "messaging.message.id", eventID, time.Hour)
		if err != nil {
			return err
		}
		for _, lt := range linked {
			for _, sp := range lt.Spans {
				if sp.Kind == "consumer" && slices.Contains(sp.Links, traces.Link{TraceID: traceID, SpanID: producer.ID}) {
					consumer = sp
					return nil
				}
			}
		}
		return fmt.Errorf("%d traces of recommendations with event %s, none with a CONSUMER span linked to span %s of %s", len(linked), eventID, producer.ID, traceID)
	})
	for key, want := range map[string]string{
		"messaging.system": "nats", "messaging.destination.name": "orders.confirmed", "messaging.message.id": eventID,
		"messaging.message.conversation_id": producer.Tags["messaging.message.conversation_id"],
	} {
		if got := consumer.Tags[key]; got != want || want == "" {
			t.Errorf("the CONSUMER span's %s = %q, want %q", key, got, want)
		}
	}
	out, err := exec.Command(testenv.Binary(t, "glasshouse"), "trace", "-jaeger", s.JaegerURL, traceID).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "linked traces") || !strings.Contains(string(out), eventID) {
		t.Errorf("glasshouse trace %s (%v) does not list the consumer's linked trace:\n%s", traceID, err, out)
	}

	// Every service on the path logged with this trace ID.
	for _, svc := range []string{"gateway", "orders", "inventory", "payments"} {
		found := false
		for _, p := range s.Instances(svc) {
			b, _ := os.ReadFile(p.LogPath)
			found = found || strings.Contains(string(b), `"trace_id":"`+traceID+`"`)
		}
		if !found {
			t.Errorf("no %s log line carries trace_id %s", svc, traceID)
		}
	}

	// A checkout that needed a retry shows it on its span: one payments
	// instance fails every charge, so a charge sent there is retried on
	// the other.
	setFaults(t, &testenv.Service{AdminURL: "http://" + s.Instances("payments")[0].AdminAddr}, `{"error_rate":1,"latency":"0s"}`)
	var retried *traces.Trace
	for i := 0; i < 6 && retried == nil; i++ {
		status, id := g.checkout(fmt.Sprintf("retried-%d", i))
		if status != 201 {
			t.Fatalf("checkout with one failing payments instance: %d (the retry should hide it)", status)
		}
		tr := waitTrace(t, jaeger, id, "gateway", "orders", "payments")
		if len(tr.Find(func(sp traces.Span) bool { return hasEvent(sp, "retry") })) > 0 {
			retried = tr
		}
	}
	if retried == nil {
		t.Error("no checkout trace shows a retry event, though one payments instance failed every charge")
	}
	setFaults(t, &testenv.Service{AdminURL: "http://" + s.Instances("payments")[0].AdminAddr}, `{"error_rate":0,"latency":"0s"}`)

	// Prometheus found every instance through Consul and scrapes it.
	instances := 0
	for _, svc := range services.All() {
		instances += len(s.Instances(svc.Name))
	}
	testenv.Eventually(t, 60*time.Second, "Prometheus scrapes every instance", func() error {
		res, err := promQuery(s.PrometheusURL, `up{job=~"`+strings.Join(services.Names(), "|")+`"} == 1`)
		if err != nil {
			return err
		}
		if len(res) != instances {
			return fmt.Errorf("%d of %d targets up", len(res), instances)
		}
		return nil
	})
	// The RED histogram tells the transports apart: inventory and payments
	// count gRPC calls (the saga's) and HTTP ones (the gateway's
	// catalogue reads, for inventory).
	testenv.Eventually(t, 60*time.Second, "Prometheus sees calls by transport", func() error {
		res, err := promQuery(s.PrometheusURL, `sum by (service, transport) (glasshouse_endpoint_request_duration_seconds_count)`)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, r := range res {
			seen[r.Metric["service"]+"/"+r.Metric["transport"]] = true
		}
		for _, want := range []string{"inventory/grpc", "payments/grpc", "inventory/http", "gateway/http", "orders/http", "users/http"} {
			if !seen[want] {
				return fmt.Errorf("no series for %s; have %v", want, seen)
			}
		}
		return nil
	})
	// Those scrapes reach the admin listeners: on every public port the
	// internal surfaces are unknown routes, on the admin port they answer.
	for _, p := range s.Procs() {
		if p.Service == "" {
			continue
		}
		for _, path := range []string{"/metrics", "/healthz", "/readyz", "/debug/pprof/"} {
			if code := getStatus(t, "http://"+p.Addr+path); code != http.StatusNotFound {
				t.Errorf("%s: public GET %s = %d, want 404", p.Name, path, code)
			}
			if code := getStatus(t, "http://"+p.AdminAddr+path); code != http.StatusOK {
				t.Errorf("%s: admin GET %s = %d, want 200", p.Name, path, code)
			}
		}
	}
	testenv.Eventually(t, 60*time.Second, "the RED histogram of every service", func() error {
		res, err := promQuery(s.PrometheusURL, `count by (job) (glasshouse_endpoint_request_duration_seconds_count)`)
		if err != nil {
			return err
		}
		var jobs []string
		for _, r := range res {
			jobs = append(jobs, r.Metric["job"])
		}
		for _, svc := range services.Names() {
			if !slices.Contains(jobs, svc) {
				return fmt.Errorf("jobs with the histogram: %v; missing %s", jobs, svc)
			}
		}
		return nil
	})
}

func hasEvent(sp traces.Span, name string) bool {
	for _, ev := range sp.Events {
		if ev.Name == name {
			return true
		}
	}
	return false
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

// promQuery runs an instant query against Prometheus' HTTP API.
func promQuery(base, query string) ([]promSample, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, errors.New(body.Error)
	}
	return body.Data.Result, nil
}

// getStatus is the status of GET url, failing the test if there is none.
func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
