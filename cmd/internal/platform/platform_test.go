package platform_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/platform"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/transport"
)

var client = &http.Client{Timeout: 5 * time.Second}

// start parses args as a service's main would and starts the process.
func start(t *testing.T, args ...string) (*platform.Process, error) {
	t.Helper()
	f := config.NewFlags("adminsvc", func(string) string { return "" }, io.Discard)
	common := platform.CommonFlags(f, "gateway")
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return common.Start(context.Background(), "adminsvc", "test", func(string) string { return "" }, io.Discard)
}

func status(url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func TestAdminListenDefaultsToThePublicPortPlus1000(t *testing.T) {
	for listen, want := range map[string]string{
		":8084":          ":9084",
		"127.0.0.1:8182": "127.0.0.1:9182",
		"127.0.0.1:0":    "127.0.0.1:0",
	} {
		if got, err := platform.AdminListenAddr(listen); err != nil || got != want {
			t.Errorf("AdminListenAddr(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
	if _, err := platform.AdminListenAddr(":65000"); err == nil || !strings.Contains(err.Error(), "-admin-listen / ADMIN_LISTEN_ADDR") {
		t.Errorf("a public port past 64535 gave %v; want an error naming -admin-listen / ADMIN_LISTEN_ADDR", err)
	}
}

func TestATakenAdminPortNamesItsSetting(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	public, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	publicAddr := public.Addr().String()
	public.Close()

	_, err = start(t, "-listen", publicAddr, "-admin-listen", taken.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "-admin-listen / ADMIN_LISTEN_ADDR") {
		t.Fatalf("Start with a taken admin port = %v; want an error naming -admin-listen / ADMIN_LISTEN_ADDR", err)
	}
	// The public listener opened first is closed again, not leaked.
	again, err := net.Listen("tcp", publicAddr)
	if err != nil {
		t.Fatalf("the public port %s is still held after the failed start: %v", publicAddr, err)
	}
	again.Close()
}

// On SIGTERM (ctx cancelled): /readyz on the admin listener fails with
// "draining" and the instance leaves Consul while a public request is
// still in flight; the admin listener still serves /metrics; the public
// listener refuses new connections; Serve returns once the request has
// finished, and only then does the admin listener close.
func TestAdminListenerOutlivesThePublicDrain(t *testing.T) {
	consul := testenv.StartConsul(t)
	proc, err := start(t, "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0", "-consul", consul.Addr,
		"-check-interval", "1s", "-check-timeout", "500ms")
	if err != nil {
		t.Fatal(err)
	}
	public, admin := "http://"+proc.Addr().String(), "http://"+proc.AdminAddr().String()

	started, release := make(chan struct{}), make(chan struct{})
	routes := transport.NewRouter()
	routes.Handle("GET", "/slow", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	}))
	routes.Handle("GET", "/fast", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- proc.Serve(ctx, routes) }()
	t.Cleanup(func() {
		var err error
		proc.Close(context.Background(), &err)
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	consul.WaitPassing("adminsvc", 1, 15*time.Second)

	// The surfaces are where they belong.
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/debug/pprof/"} {
		if code, _, err := status(public + path); err != nil || code != http.StatusNotFound {
			t.Errorf("public GET %s = %d, %v; want 404", path, code, err)
		}
		if code, _, err := status(admin + path); err != nil || code != http.StatusOK {
			t.Errorf("admin GET %s = %d, %v; want 200", path, code, err)
		}
	}
	if code, _, err := status(admin + "/fast"); err != nil || code != http.StatusNotFound {
		t.Errorf("admin GET /fast = %d, %v; the API is not on the admin listener", code, err)
	}

	slow := make(chan string, 1)
	go func() {
		_, body, err := status(public + "/slow")
		if err != nil {
			body = err.Error()
		}
		slow <- body
	}()
	<-started
	cancel() // what SIGTERM does in platform.Main

	testenv.Eventually(t, 10*time.Second, "admin /readyz says draining", func() error {
		code, body, err := status(admin + "/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, `"status":"draining"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, "the instance leaves Consul", func() error {
		ids, err := consul.Registered("adminsvc")
		if err != nil {
			return err
		}
		if len(ids) != 0 {
			return fmt.Errorf("still registered: %v", ids)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, "the public listener refuses new connections", func() error {
		if _, _, err := status(public + "/fast"); err == nil {
			return errors.New("a new public request was still served")
		}
		return nil
	})
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	default:
	}
	if code, body, err := status(admin + "/metrics"); err != nil || code != http.StatusOK || !strings.Contains(body, "glasshouse_consul_registered 0") {
		t.Errorf("admin /metrics while draining = %d, %v; want 200 with glasshouse_consul_registered 0:\n%.300s", code, err, body)
	}

	close(release)
	if got := <-slow; got != "finished" {
		t.Errorf("the request in flight got %q, want it to finish", got)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if _, _, err := status(admin + "/healthz"); err == nil {
		t.Error("the admin listener still answers after Serve returned")
	}
}

// A trace collector that hangs at shutdown costs the flush its time
// budget and is logged, but the stop is still clean: Close reports no
// error, so the process exits 0.
func TestAHangingCollectorDoesNotFailTheStop(t *testing.T) {
	hung := make(chan struct{})
	collector := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hung })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go collector.Serve(ln)
	t.Cleanup(func() { close(hung); collector.Close() })

	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + ln.Addr().String()}
	getenv := func(k string) string { return env[k] }
	var out syncBuffer
	f := config.NewFlags("flushsvc", getenv, io.Discard)
	common := platform.CommonFlags(f, "gateway")
	if err := f.Parse([]string{"-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	proc, err := common.Start(context.Background(), "flushsvc", "test", getenv, &out)
	if err != nil {
		t.Fatal(err)
	}
	_, span := proc.Telemetry.Tracer("test").Start(context.Background(), "unflushed")
	span.End()

	var stopErr error
	proc.Close(context.Background(), &stopErr)
	if stopErr != nil {
		t.Errorf("Close: %v; a flush that failed must not fail the stop", stopErr)
	}
	if !strings.Contains(out.String(), "spans not flushed at shutdown") {
		t.Errorf("the log does not say the spans were not flushed:\n%s", out.String())
	}
}

// syncBuffer is a strings.Builder safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
