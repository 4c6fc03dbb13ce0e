package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The test kit: what every service's tests need, once.

// Direct builds client calls to the one instance at baseURL (a test
// server's URL), as transport.NewDirectFactory does with the default
// timeout; a bad URL fails the test.
func Direct(t testing.TB, baseURL string, tel observability.Telemetry) transport.ClientFactory {
	t.Helper()
	return DirectWithin(t, baseURL, tel, 0)
}

// DirectWithin is Direct with each call bounded by timeout instead: for
// a race test whose callers queue on one lock by design, where a loaded
// machine can keep the last of them waiting past the default second.
func DirectWithin(t testing.TB, baseURL string, tel observability.Telemetry, timeout time.Duration) transport.ClientFactory {
	t.Helper()
	build, err := transport.NewDirectFactory(baseURL, tel, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return build
}

// TelemetryOption adjusts Telemetry.
type TelemetryOption func(*observability.Config)

// RecordSpans sends every span to rec as well (a tracetest.SpanRecorder).
func RecordSpans(rec sdktrace.SpanProcessor) TelemetryOption {
	return func(c *observability.Config) {
		if rec != nil {
			c.SpanProcessors = append(c.SpanProcessors, rec)
		}
	}
}

// LogTo writes the service's JSON log to w instead of discarding it.
func LogTo(w io.Writer) TelemetryOption {
	return func(c *observability.Config) { c.LogOutput = w }
}

// Telemetry is real telemetry for one test service, with no exporter and
// no environment; it shuts down when the test ends.
func Telemetry(t testing.TB, service string, opts ...TelemetryOption) observability.Telemetry {
	t.Helper()
	cfg := observability.Config{ServiceName: service, Getenv: func(string) string { return "" }, LogOutput: io.Discard}
	for _, opt := range opts {
		opt(&cfg)
	}
	tel, shutdown, err := observability.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(context.Background()) })
	return tel
}

// FindSpan polls rec until a span with name and kind has ended in the
// trace, or fails the test after 5s. Server spans end just after the
// response is written, so the client can be a moment ahead of the
// recorder.
func FindSpan(t testing.TB, rec *tracetest.SpanRecorder, traceID trace.TraceID, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, s := range rec.Ended() {
			if s.Name() == name && s.SpanKind() == kind && s.SpanContext().TraceID() == traceID {
				return s
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range rec.Ended() {
				names = append(names, s.Name()+"/"+s.SpanKind().String())
			}
			t.Fatalf("no %s span %q in trace %s; have %v", kind, name, traceID, names)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Attr is the span's attribute key as a string, or "".
func Attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// EventAttr is the event's attribute key as a string, or "".
func EventAttr(e sdktrace.Event, key attribute.Key) string {
	for _, kv := range e.Attributes {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// Clock is a settable time source, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at 2026-01-01 12:00 UTC.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// OpenStore opens a service's store in a SQLite file of the test's own,
// closed when the test ends.
func OpenStore[S interface{ Close() error }](t testing.TB, open func(context.Context, string, trace.TracerProvider) (S, error), tp trace.TracerProvider) S {
	t.Helper()
	return OpenStoreOn(t, SQLite, open, tp)
}

// OpenStoreOn opens a service's store in a fresh database of backend b,
// closed when the test ends.
func OpenStoreOn[S interface{ Close() error }](t testing.TB, b Backend, open func(context.Context, string, trace.TracerProvider) (S, error), tp trace.TracerProvider) S {
	t.Helper()
	return OpenStoreAt(t, b.NewDatabase(t), open, tp)
}

// OpenStoreAt opens a service's store on an existing database, source (a
// SQLite file or a postgres:// URL), closed when the test ends: a test's
// own view of the database that the service processes it started use.
func OpenStoreAt[S interface{ Close() error }](t testing.TB, source string, open func(context.Context, string, trace.TracerProvider) (S, error), tp trace.TracerProvider) S {
	t.Helper()
	s, err := open(context.Background(), source, tp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Backend is a kind of database a store runs on, as store tests see it.
type Backend struct {
	// Name is the subtest's name: "sqlite" or "postgres".
	Name string
	// NewDatabase returns the source of a new, empty database for the
	// test, what a store's Open takes: a file path or a postgres:// URL.
	NewDatabase func(testing.TB) string
}

// The backends a store runs on. PostgreSQL is a real cluster (see
// Postgres), so a package testing on it needs TestMain to call Main.
var (
	SQLite   = Backend{Name: "sqlite", NewDatabase: func(t testing.TB) string { return filepath.Join(t.TempDir(), "store.db") }}
	Postgres = Backend{Name: "postgres", NewDatabase: PostgresDatabase}
)

// OnEachBackend runs test once per backend, as subtests named sqlite and
// postgres: a store's guarantees must hold on both.
func OnEachBackend(t *testing.T, test func(t *testing.T, b Backend)) {
	for _, b := range []Backend{SQLite, Postgres} {
		t.Run(b.Name, func(t *testing.T) { test(t, b) })
	}
}

// WantCode fails the test unless err carries the problem code code.
func WantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := errs.CodeOf(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

// WantError fails the test unless err is of kind with code.
func WantError(t testing.TB, err error, kind errs.Kind, code string) {
	t.Helper()
	if errs.KindOf(err) != kind || errs.CodeOf(err) != code {
		t.Fatalf("error = %v (kind %v), want %v %q", err, errs.KindOf(err), kind, code)
	}
}

// Send makes one plain HTTP request, as an operator's curl would, and
// returns the status and body.
func Send(t testing.TB, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}

// FirstDifference points at the first line where a checked-in file
// (have) differs from what its generator writes now (want), for a drift
// test's message.
func FirstDifference(have, want []byte) string {
	h, w := strings.Split(string(have), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(h), len(w)) {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			return fmt.Sprintf("line %d is %q, generated %q", i+1, strings.TrimSpace(hl), strings.TrimSpace(wl))
		}
	}
	return "same lines"
}

// AtOnce runs call(0) … call(n-1), each in a goroutine of its own, all
// released together, and returns when every one has returned: the
// callers of a race test.
func AtOnce(n int, call func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			call(i)
		})
	}
	close(start)
	wg.Wait()
}
