package transport_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func newTelemetry(t testing.TB, logs io.Writer) observability.Telemetry {
	t.Helper()
	tel, shutdown, err := observability.Setup(context.Background(), observability.Config{
		ServiceName: "test", Getenv: func(string) string { return "" }, LogOutput: logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(context.Background()) })
	return tel
}

// logLines hands each log line to the test; lines past its buffer are
// dropped rather than blocking the server.
type logLines struct {
	ch chan string
}

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l.ch <- string(p):
	default:
	}
	return len(p), nil
}

func TestListenNamesTheSettingWhenThePortIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = transport.Listen(ln.Addr().String(), "-listen / LISTEN_ADDR")
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "-listen / LISTEN_ADDR") {
		t.Fatalf("err = %v; want it to say the port is in use and name -listen / LISTEN_ADDR", err)
	}
}

func TestPanicBecomesA500ProblemAndALogLine(t *testing.T) {
	logs := logLines{ch: make(chan string, 100)}
	tel := newTelemetry(t, logs)
	router := transport.NewRouter()
	router.Handle("GET", "/boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("kaboom") }))
	srv := startServer(t, tel, router, transport.ServerConfig{})

	resp, err := http.Get("http://" + srv.Addr().String() + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), `"code":"internal"`) {
		t.Fatalf("got %d %s; want a 500 problem", resp.StatusCode, body)
	}
	traceID := resp.Header.Get(transport.TraceIDHeader)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case line := <-logs.ch:
			if strings.Contains(line, "panic serving request") {
				if !strings.Contains(line, `"trace_id":"`+traceID+`"`) || !strings.Contains(line, "kaboom") {
					t.Errorf("panic log line %s lacks trace_id %s or the panic value", line, traceID)
				}
				return
			}
		case <-deadline:
			t.Fatal("no log line for the panic")
		}
	}
}

func startServer(t testing.TB, tel observability.Telemetry, routes http.Handler, cfg transport.ServerConfig) *transport.Server {
	t.Helper()
	ln, err := transport.Listen("127.0.0.1:0", "test")
	if err != nil {
		t.Fatal(err)
	}
	health := observability.NewHealth()
	srv := transport.NewServer(ln, transport.Handler(tel, health, routes, cfg), tel, health, cfg)
	done := make(chan error, 1)
	go func() { done <- srv.Run() }()
	t.Cleanup(func() {
		srv.Stop(nil)
		if err := <-done; err != nil {
			t.Errorf("server run: %v", err)
		}
	})
	return srv
}

func TestStopRunsHooksThenDrainsInFlightRequests(t *testing.T) {
	tel := newTelemetry(t, io.Discard)
	started, release := make(chan struct{}), make(chan struct{})
	router := transport.NewRouter()
	router.Handle("GET", "/slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	}))
	ln, err := transport.Listen("127.0.0.1:0", "test")
	if err != nil {
		t.Fatal(err)
	}
	health := observability.NewHealth()
	srv := transport.NewServer(ln, transport.Handler(tel, health, router, transport.ServerConfig{}), tel, health, transport.ServerConfig{DrainTimeout: 5 * time.Second})
	var hookRan atomic.Bool
	srv.OnShutdown(func(context.Context) error { hookRan.Store(true); return errors.New("deregister failed") })
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run() }()

	url := "http://" + srv.Addr().String()
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-started
	stopped := make(chan struct{})
	go func() { srv.Stop(nil); close(stopped) }()

	// While draining: readiness fails and new connections are refused,
	// but the request in flight is still being served.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := http.Get(url + "/readyz"); err != nil {
			break // listener closed
		}
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after Stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !hookRan.Load() {
		t.Error("shutdown hook did not run before the listener closed")
	}
	close(release)
	if got := <-result; got != "finished" {
		t.Errorf("in-flight request got %q, want it to finish", got)
	}
	<-stopped
	if err := <-runErr; err == nil || !strings.Contains(err.Error(), "deregister failed") {
		t.Errorf("Run returned %v; want the hook's error, not silence", err)
	}
}

func TestTypedEndpointAdapter(t *testing.T) {
	ep := transport.TypedEndpoint(func(_ context.Context, n int) (string, error) { return strings.Repeat("x", n), nil })
	got, err := transport.CallTyped[string](context.Background(), ep, 3)
	if err != nil || got != "xxx" {
		t.Fatalf("Call = %q, %v", got, err)
	}
	_, err = ep(context.Background(), "not an int")
	if errs.KindOf(err) != errs.Internal || !strings.Contains(err.Error(), "expects int, got string") {
		t.Errorf("wrong request type gave %v", err)
	}
}

// get sends GET url and returns the status, the Content-Type and the body.
func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// startAdmin serves AdminHandler on a loopback port.
func startAdmin(t *testing.T, tel observability.Telemetry, health *observability.Health, admin http.Handler) *transport.Server {
	t.Helper()
	ln, err := transport.Listen("127.0.0.1:0", "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := transport.ServerConfig{Name: "admin"}
	srv := transport.NewServer(ln, transport.AdminHandler(tel, health, admin), tel, health, cfg)
	done := make(chan error, 1)
	go func() { done <- srv.Run() }()
	t.Cleanup(func() {
		srv.Stop(nil)
		if err := <-done; err != nil {
			t.Errorf("admin server run: %v", err)
		}
	})
	return srv
}

func TestPublicHandlerServesOnlyTheAPI(t *testing.T) {
	tel := newTelemetry(t, io.Discard)
	router := transport.NewRouter()
	router.Handle("GET", "/products", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "[]") }))
	ln, err := transport.Listen("127.0.0.1:0", "test")
	if err != nil {
		t.Fatal(err)
	}
	health := observability.NewHealth()
	srv := transport.NewServer(ln, transport.PublicHandler(tel, router, transport.ServerConfig{Public: true}), tel, health, transport.ServerConfig{})
	go srv.Run()
	t.Cleanup(func() { srv.Stop(nil) })
	base := "http://" + srv.Addr().String()

	if status, _, body := get(t, base+"/products"); status != 200 || body != "[]" {
		t.Fatalf("GET /products = %d %q; the API must still be served", status, body)
	}
	// Internal surfaces answer like any unknown route: a 404 problem.
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/debug/pprof/", "/debug/pprof/goroutine", "/debug/pprof/cmdline", "/admin/faults"} {
		status, ctype, body := get(t, base+path)
		if status != http.StatusNotFound || ctype != "application/problem+json" || !strings.Contains(body, `"code":"no_route"`) {
			t.Errorf("public GET %s = %d %s %s; want a 404 no_route problem", path, status, ctype, body)
		}
	}
}

func TestAdminHandlerServesHealthMetricsProfilesAndAdminRoutes(t *testing.T) {
	tel := newTelemetry(t, io.Discard)
	health := observability.NewHealth()
	admin := transport.NewRouter()
	admin.Handle("GET", "/admin/knobs", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "knobs") }))
	srv := startAdmin(t, tel, health, admin)
	base := "http://" + srv.Addr().String()

	for path, want := range map[string]string{
		"/healthz":                       `"status":"ok"`,
		"/readyz":                        `"status":"ok"`,
		"/metrics":                       "go_goroutines",
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
		"/debug/pprof/cmdline":           "transport.test",
		"/admin/knobs":                   "knobs",
	} {
		status, _, body := get(t, base+path)
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("admin GET %s = %d, body lacks %q:\n%.300s", path, status, want, body)
		}
	}
	status, ctype, body := get(t, base+"/products")
	if status != http.StatusNotFound || ctype != "application/problem+json" {
		t.Errorf("admin GET /products = %d %s %s; the API is not on the admin listener", status, ctype, body)
	}
}

func TestAdminHandlerWithoutAdminRoutesAnswers404Problems(t *testing.T) {
	tel := newTelemetry(t, io.Discard)
	srv := startAdmin(t, tel, observability.NewHealth(), nil)
	status, ctype, _ := get(t, "http://"+srv.Addr().String()+"/admin/faults")
	if status != http.StatusNotFound || ctype != "application/problem+json" {
		t.Errorf("GET /admin/faults on an admin listener without admin routes = %d %s; want a 404 problem", status, ctype)
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := transport.Listen("127.0.0.1:0", "test")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestAdminRoutesAreTracedByTheirPatternAndProbesAreNot(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tel, shutdown, err := observability.Setup(context.Background(), observability.Config{
		ServiceName: "test", Getenv: func(string) string { return "" }, LogOutput: io.Discard,
		SpanProcessors: []sdktrace.SpanProcessor{rec},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(context.Background()) })
	admin := transport.NewRouter()
	admin.Handle("GET", "/admin/knobs", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "knobs") }))
	srv := startAdmin(t, tel, observability.NewHealth(), admin)
	base := "http://" + srv.Addr().String()
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/debug/pprof/", "/admin/knobs"} {
		if status, _, _ := get(t, base+path); status != 200 {
			t.Fatalf("GET %s = %d", path, status)
		}
	}
	var names []string
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindServer {
			names = append(names, s.Name())
		}
	}
	if len(names) != 1 || names[0] != "GET /admin/knobs" {
		t.Errorf("server spans %v; want only GET /admin/knobs (named by its route, not \"/\")", names)
	}
}
