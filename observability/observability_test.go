package observability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func setup(t testing.TB, vars map[string]string, logs io.Writer, procs ...sdktrace.SpanProcessor) observability.Telemetry {
	t.Helper()
	tel, shutdown, err := observability.Setup(context.Background(), observability.Config{
		ServiceName: "inventory", ServiceVersion: "test", InstanceID: "inventory-1",
		Getenv: env(vars), LogOutput: logs, SpanProcessors: procs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(context.Background()) })
	return tel
}

func TestLogLinesCarryTraceAndRequestIDs(t *testing.T) {
	var logs bytes.Buffer
	tel := setup(t, nil, &logs)
	ctx, span := tel.Tracer("test").Start(context.Background(), "op")
	ctx = observability.WithRequestID(ctx, "req-1")
	tel.Logger.InfoContext(ctx, "hello")
	span.End()
	tel.Logger.Info("no context")

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2: %s", len(lines), logs.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if first["trace_id"] != sc.TraceID().String() || first["span_id"] != sc.SpanID().String() || first["request_id"] != "req-1" {
		t.Errorf("line with a span = %v; want trace_id %s, span_id %s, request_id req-1", first, sc.TraceID(), sc.SpanID())
	}
	if first["service"] != "inventory" || first["instance"] != "inventory-1" {
		t.Errorf("line = %v; want service and instance", first)
	}
	if _, ok := second["trace_id"]; ok {
		t.Errorf("line without a span has a trace_id: %v", second)
	}
}

func TestSpansAreExportedOverOTLPWhenAnEndpointIsSet(t *testing.T) {
	var requests atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
			requests.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	tel, shutdown, err := observability.Setup(context.Background(), observability.Config{
		ServiceName: "inventory", Getenv: env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL}), LogOutput: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.Tracer("test").Start(context.Background(), "op")
	span.End()
	if err := shutdown(context.Background()); err != nil { // flushes the batch
		t.Fatal(err)
	}
	if requests.Load() == 0 {
		t.Fatal("no OTLP/HTTP export reached the collector")
	}
	metrics, err := testutil.CollectAndFormat(tel.Registry, expfmt.TypeTextPlain, "glasshouse_spans_exported_total")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(metrics), `glasshouse_spans_exported_total{result="success"} 1`) {
		t.Errorf("export not counted:\n%s", metrics)
	}
}

func TestDisabledSDKStillServes(t *testing.T) {
	tel := setup(t, map[string]string{"OTEL_SDK_DISABLED": "true"}, io.Discard)
	ctx, span := tel.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	if span.SpanContext().IsValid() {
		t.Error("tracing disabled, yet spans have IDs")
	}
	ep := tel.ServerEndpoint("Op")(func(context.Context, any) (any, error) { return "ok", nil })
	if got, err := ep(ctx, nil); err != nil || got != "ok" {
		t.Errorf("endpoint = %v, %v", got, err)
	}
}

func TestEndpointMiddlewaresClassifyOutcomes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	var logs bytes.Buffer
	tel := setup(t, nil, &logs, rec)
	outcomes := map[string]error{
		"success":        nil,
		"business_error": errs.E(errs.Conflict, "out_of_stock", "none left"),
		"error":          errors.New("disk on fire"),
	}
	for _, err := range outcomes {
		ep := tel.ServerEndpoint("Reserve")(func(context.Context, any) (any, error) { return nil, err })
		_, _ = ep(context.Background(), nil)
	}
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	failed := 0
	for _, s := range spans {
		if s.Name() != "inventory.Reserve" {
			t.Errorf("span name %q, want inventory.Reserve", s.Name())
		}
		if s.Status().Code == codes.Error {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d spans failed, want exactly 1 (the non-business error)", failed)
	}

	metrics, err := testutil.CollectAndFormat(tel.Registry, expfmt.TypeTextPlain, "glasshouse_endpoint_request_duration_seconds")
	if err != nil {
		t.Fatal(err)
	}
	for outcome := range outcomes {
		want := `glasshouse_endpoint_request_duration_seconds_count{endpoint="Reserve",outcome="` + outcome + `",service="inventory",transport="http"} 1`
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if n := strings.Count(logs.String(), `"msg":"endpoint call"`); n != 3 {
		t.Errorf("%d endpoint log lines, want 3", n)
	}
	if !strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), `"code":"out_of_stock"`) {
		t.Errorf("logs lack the error line or the business code: %s", logs.String())
	}
}

func TestExemplarsCarryTraceIDs(t *testing.T) {
	tel := setup(t, nil, io.Discard)
	ctx, span := tel.Tracer("test").Start(context.Background(), "op")
	ep := tel.ServerEndpoint("GetProduct")(func(context.Context, any) (any, error) { return nil, nil })
	_, _ = ep(ctx, nil)
	span.End()

	srv := httptest.NewServer(tel.MetricsHandler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `# {trace_id="`) {
		t.Fatalf("OpenMetrics exposition has no exemplar with a trace_id:\n%.2000s", body)
	}
	if !strings.Contains(string(body), "go_goroutines") || !strings.Contains(string(body), "process_cpu_seconds_total") {
		t.Error("runtime and process collectors missing")
	}
}

func ready(h *observability.Health) (int, string) {
	rec := httptest.NewRecorder()
	h.ReadyHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return rec.Code, rec.Body.String()
}

func TestReadinessFailsOnACheckOrWhileDraining(t *testing.T) {
	h := observability.NewHealth()
	var broken atomic.Bool
	h.AddCheck("store", func(context.Context) error {
		if broken.Load() {
			return errors.New("database is locked")
		}
		return nil
	})
	if code, body := ready(h); code != 200 || !strings.Contains(body, `"store":"ok"`) {
		t.Errorf("healthy: %d %s, want 200", code, body)
	}
	broken.Store(true)
	if code, body := ready(h); code != 503 || !strings.Contains(body, "database is locked") {
		t.Errorf("broken store: %d %s, want 503 naming the cause", code, body)
	}
	broken.Store(false)
	h.Drain()
	if code, body := ready(h); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("draining: %d %s, want 503", code, body)
	}
}

func TestAHangingCheckTimesOut(t *testing.T) {
	h := observability.NewHealth()
	h.Timeout = 50 * time.Millisecond
	h.AddCheck("consul", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if code, body := ready(h); code != 503 || !strings.Contains(body, `"consul":"context deadline exceeded"`) {
		t.Errorf("hanging check: %d %s; want 503 naming it", code, body)
	}
}

// A collector slower than the spans coming fills the batch queue, and
// the spans it drops show as ended but never exported: tracing every
// request does not quietly turn into sampling.
func TestSpansTheQueueDropsAreCounted(t *testing.T) {
	release := make(chan struct{})
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // a stalled collector
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	defer close(release)

	tel, shutdown, err := observability.Setup(context.Background(), observability.Config{
		ServiceName: "inventory", Getenv: env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL}), LogOutput: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000 // more than the queue (2048) and a batch (512) hold
	for range n {
		_, span := tel.Tracer("test").Start(context.Background(), "op")
		span.End()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = shutdown(ctx) // gives up on the stalled collector

	ended := counterValue(t, tel, "glasshouse_spans_ended_total")
	if ended != n {
		t.Errorf("%g spans counted as ended, want %d", ended, n)
	}
	metrics, err := testutil.CollectAndFormat(tel.Registry, expfmt.TypeTextPlain, "glasshouse_spans_exported_total")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(metrics), fmt.Sprintf("} %d\n", n)) {
		t.Errorf("every span counted as exported through a stalled collector:\n%s", metrics)
	}
}

// counterValue is the value of the one counter named name in tel's
// registry.
func counterValue(t *testing.T, tel observability.Telemetry, name string) float64 {
	t.Helper()
	families, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}
