package traces_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/traces"
)

// fixtureID is the trace ID of every fixture in testdata.
const fixtureID = "4bf92f3577b34da6a3ce929d0e0e4736"

// fixtureStart is when every fixture's root span starts.
var fixtureStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// notFoundBody is what Jaeger's query service answers, with status 404,
// for a trace it does not hold.
const notFoundBody = `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}`

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeJaeger stands in for Jaeger's query API: each request to
// /api/traces/{id} is answered by the next handler in turn (the last one
// answers forever after), so a test can script a trace arriving in
// Jaeger. It counts the requests.
type fakeJaeger struct {
	*httptest.Server
	requests atomic.Int32
}

func newFakeJaeger(t *testing.T, answers ...http.HandlerFunc) *fakeJaeger {
	t.Helper()
	f := &fakeJaeger{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/traces/{id}", func(w http.ResponseWriter, r *http.Request) {
		n := int(f.requests.Add(1))
		answers[min(n, len(answers))-1](w, r)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// serve answers with a fixture for fixtureID, and as Jaeger does for
// any other ID.
func serve(t *testing.T, fixture string) http.HandlerFunc {
	body := readFixture(t, fixture)
	return func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != fixtureID {
			http.Error(w, notFoundBody, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}
}

func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

// load reads a fixture through the client, as the CLI and the chaos
// runner read real traces.
func load(t *testing.T, fixture string) *traces.Trace {
	t.Helper()
	jaeger := newFakeJaeger(t, serve(t, fixture))
	tr, err := traces.NewClient(jaeger.URL, nil).Trace(context.Background(), fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// only returns the single span of service named operation.
func only(t *testing.T, tr *traces.Trace, service, operation string) traces.Span {
	t.Helper()
	found := tr.Find(func(s traces.Span) bool { return s.Service == service && s.Operation == operation })
	if len(found) != 1 {
		t.Fatalf("%d spans %q in %s, want 1", len(found), operation, service)
	}
	return found[0]
}

// ancestry lists "service operation" from s up to its root.
func ancestry(t *testing.T, tr *traces.Trace, s traces.Span) []string {
	t.Helper()
	var path []string
	for {
		path = append(path, s.Service+" "+s.Operation)
		if s.ParentID == "" {
			return path
		}
		parent, ok := tr.Span(s.ParentID)
		if !ok {
			t.Fatalf("parent %s of %s not in the trace", s.ParentID, s.Operation)
		}
		s = parent
	}
}

func eventNames(events []traces.Event) []string {
	var names []string
	for _, e := range events {
		names = append(names, e.Name)
	}
	return names
}

func TestTraceReadsACheckoutFromJaeger(t *testing.T) {
	var gotPath, gotAccept string
	answer := serve(t, "checkout.json")
	jaeger := newFakeJaeger(t, func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAccept = r.URL.Path, r.Header.Get("Accept")
		answer(w, r)
	})
	tr, err := traces.NewClient(jaeger.URL, nil).Trace(context.Background(), fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/api/traces/"+fixtureID || gotAccept != "application/json" {
		t.Errorf("asked GET %s (Accept %q), want /api/traces/%s as JSON", gotPath, gotAccept, fixtureID)
	}

	if tr.ID != fixtureID || len(tr.Spans) != 31 {
		t.Fatalf("trace %s with %d spans, want %s with 31", tr.ID, len(tr.Spans), fixtureID)
	}
	if !slices.IsSortedFunc(tr.Spans, func(a, b traces.Span) int { return a.Start.Compare(b.Start) }) {
		t.Error("spans are not in start order (Jaeger sends them unordered)")
	}
	if got, want := tr.Services(), []string{"gateway", "inventory", "orders", "payments"}; !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}

	root := tr.Roots()
	if len(root) != 1 || root[0].Service != "gateway" || root[0].Operation != "POST /api/orders" || root[0].Kind != "server" {
		t.Fatalf("roots %+v, want the gateway's server span POST /api/orders", root)
	}
	if !root[0].Start.Equal(fixtureStart) || root[0].Duration != 48200*time.Microsecond {
		t.Errorf("root from %v for %v, want from %v for 48.2ms", root[0].Start, root[0].Duration, fixtureStart)
	}
	if o := tr.Orphans(); len(o) != 0 || !tr.Complete() {
		t.Errorf("orphans %v, complete %v: want a whole trace", o, tr.Complete())
	}

	// Every hop, from the charge in payments back to the edge.
	got := ancestry(t, tr, only(t, tr, "payments", "payments.Charge"))
	want := []string{
		"payments payments.Charge", "payments POST /charges",
		"orders HTTP POST", "orders payments.Charge", "orders orders.PlaceOrder", "orders POST /orders",
		"gateway HTTP POST", "gateway orders.PlaceOrder", "gateway gateway.PlaceOrder", "gateway POST /api/orders",
	}
	if !slices.Equal(got, want) {
		t.Errorf("ancestry of the charge:\n got %q\nwant %q", got, want)
	}

	kinds := []struct{ service, operation, kind string }{
		{"gateway", "orders.PlaceOrder", "client"},
		{"orders", "orders.PlaceOrder", "internal"},
		{"orders", "POST /orders", "server"},
		{"inventory", "POST /reservations", "server"},
		{"payments", "sql.conn.exec", "client"},
	}
	for _, k := range kinds {
		if s := only(t, tr, k.service, k.operation); s.Kind != k.kind {
			t.Errorf("%s %s is of kind %q, want %q", k.service, k.operation, s.Kind, k.kind)
		}
	}

	// The database work is under the endpoint that did it.
	db := only(t, tr, "inventory", "sql.conn.exec")
	if parent, _ := tr.Span(db.ParentID); parent.Operation != "inventory.Reserve" || db.Tags["db.system.name"] != "sqlite" ||
		!strings.HasPrefix(db.Tags["db.query.text"], "UPDATE products") {
		t.Errorf("inventory's exec: parent %q, tags %v", parent.Operation, db.Tags)
	}

	// Tags of every type come back as text, the process's included.
	charge := only(t, tr, "payments", "POST /charges")
	for k, v := range map[string]string{"http.response.status_code": "201", "http.route": "POST /charges", "service.instance.id": "payments-127.0.0.1-8094"} {
		if charge.Tags[k] != v {
			t.Errorf("POST /charges tag %s = %q, want %q", k, charge.Tags[k], v)
		}
	}

	// One failure: the attempt on the dead payments instance.
	failed := tr.Find(func(s traces.Span) bool { return s.Error })
	if len(failed) != 1 || failed[0].Tags["server.port"] != "8084" || failed[0].Tags["error"] != "true" {
		t.Fatalf("failed spans %+v, want the one attempt on 127.0.0.1:8084", failed)
	}
	if msg := failed[0].ErrorMessage(); msg != "dial tcp 127.0.0.1:8084: connect: connection refused" {
		t.Errorf("error message %q", msg)
	}
	if tr.Roots()[0].ErrorMessage() != "" {
		t.Error("a span that did not fail has an error message")
	}

	// The client call that survived it: breaker opened, then a retry.
	call := only(t, tr, "orders", "payments.Charge")
	if got := eventNames(call.Events); !slices.Equal(got, []string{"breaker.state_change", "retry"}) {
		t.Fatalf("payments.Charge events %v", got)
	}
	change, retry := call.Events[0], call.Events[1]
	if change.Attrs["glasshouse.breaker.from"] != "closed" || change.Attrs["glasshouse.breaker.to"] != "open" || change.Attrs["glasshouse.instance"] != "127.0.0.1:8084" {
		t.Errorf("breaker event %v", change.Attrs)
	}
	if retry.Attrs["glasshouse.retry.attempt"] != "2" || !strings.Contains(retry.Attrs["glasshouse.retry.reason"], "connection refused") {
		t.Errorf("retry event %v", retry.Attrs)
	}
	if want := fixtureStart.Add(5930 * time.Microsecond); !retry.Time.Equal(want) {
		t.Errorf("retry at %v, want %v", retry.Time, want)
	}
	if n := len(call.EventsNamed("retry")); n != 1 {
		t.Errorf("EventsNamed(retry) found %d, want 1", n)
	}

	saga := only(t, tr, "orders", "orders.PlaceOrder")
	if got := eventNames(saga.Events); !slices.Equal(got, []string{"saga.reserve", "saga.charge", "saga.commit", "saga.finish"}) {
		t.Errorf("saga steps %v", got)
	}
	if status := saga.Events[3].Attrs["glasshouse.order.status"]; status != "CONFIRMED" {
		t.Errorf("saga finished %q, want CONFIRMED", status)
	}
	if fault := only(t, tr, "payments", "payments.Charge").EventsNamed("fault.injected"); len(fault) != 1 || fault[0].Attrs["glasshouse.fault.latency_ms"] != "35" {
		t.Errorf("fault events %v, want one 35ms latency", fault)
	}
}

func TestTraceNotFound(t *testing.T) {
	cases := map[string]http.HandlerFunc{
		"Jaeger's 404": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, notFoundBody, http.StatusNotFound)
		},
		"empty data": respond(http.StatusOK, `{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`),
		"null data":  respond(http.StatusOK, `{"data":null,"errors":null}`),
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			jaeger := newFakeJaeger(t, answer)
			tr, err := traces.NewClient(jaeger.URL, nil).Trace(context.Background(), fixtureID)
			if !errors.Is(err, traces.ErrTraceNotFound) || tr != nil {
				t.Fatalf("got %v, %v; want ErrTraceNotFound", tr, err)
			}
		})
	}
}

func TestTraceFailures(t *testing.T) {
	cases := []struct {
		name   string
		answer http.HandlerFunc
		want   string
	}{
		// Something other than Jaeger at the address: not a missing trace,
		// or the caller would wait for nothing.
		{"404 not from Jaeger", respond(http.StatusNotFound, "404 page not found\n"), "404 Not Found: 404 page not found"},
		{"Jaeger's error", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"data":null,"errors":[{"code":500,"msg":"storage unavailable"}]}`, http.StatusInternalServerError)
		}, "500 Internal Server Error: storage unavailable"},
		{"malformed JSON", respond(http.StatusOK, `{"data":[{"traceID":`), "malformed response"},
		{"errors in a 200", respond(http.StatusOK, `{"data":null,"errors":[{"msg":"partial failure"}]}`), "partial failure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			jaeger := newFakeJaeger(t, c.answer)
			_, err := traces.NewClient(jaeger.URL, nil).Trace(context.Background(), fixtureID)
			if err == nil || errors.Is(err, traces.ErrTraceNotFound) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

func TestTraceRejectsMalformedIDsWithoutAsking(t *testing.T) {
	jaeger := newFakeJaeger(t, serve(t, "checkout.json"))
	client := traces.NewClient(jaeger.URL, nil)
	for _, id := range []string{"", "../services", "4bf92f3577b34da6a3ce929d0e0e4736ff", "trace-1"} {
		if _, err := client.Trace(context.Background(), id); err == nil || !strings.Contains(err.Error(), "invalid trace ID") {
			t.Errorf("Trace(%q): %v, want invalid trace ID", id, err)
		}
	}
	if n := jaeger.requests.Load(); n != 0 {
		t.Errorf("%d requests reached Jaeger", n)
	}
}

func TestClientKeepsTheBasePath(t *testing.T) {
	var got string
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path
		w.Write([]byte(`{"data":["orders"]}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	if _, err := traces.NewClient(srv.URL+"/jaeger/", nil).Services(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got != "/jaeger/api/services" {
		t.Errorf("asked %s, want /jaeger/api/services", got)
	}
}

func TestServices(t *testing.T) {
	cases := []struct {
		body string
		want []string
	}{
		{`{"data":["payments","gateway","orders","jaeger"],"total":4,"limit":0,"offset":0,"errors":null}`, []string{"gateway", "jaeger", "orders", "payments"}},
		// A fresh Jaeger has seen no service yet.
		{`{"data":null,"total":0,"limit":0,"offset":0,"errors":null}`, nil},
	}
	for _, c := range cases {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /api/services", respond(http.StatusOK, c.body))
		srv := httptest.NewServer(mux)
		got, err := traces.NewClient(srv.URL, nil).Services(context.Background())
		srv.Close()
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Services() = %v, %v; want %v", got, err, c.want)
		}
	}
}

func TestAwaitWaitsUntilTheTraceIsWhole(t *testing.T) {
	notYet := func(w http.ResponseWriter, r *http.Request) { http.Error(w, notFoundBody, http.StatusNotFound) }
	// Nothing, nothing, then a part (orders and payments exported, the
	// gateway not yet), then all of it.
	jaeger := newFakeJaeger(t, notYet, notYet, serve(t, "orphans.json"), serve(t, "checkout.json"))

	tr, err := traces.NewClient(jaeger.URL, nil).Await(context.Background(), fixtureID, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Spans) != 31 || jaeger.requests.Load() != 4 {
		t.Errorf("got %d spans after %d requests, want 31 after 4", len(tr.Spans), jaeger.requests.Load())
	}
}

func TestAwaitGivesUpWhenTheContextEnds(t *testing.T) {
	t.Run("never arrives", func(t *testing.T) {
		jaeger := newFakeJaeger(t, serve(t, "checkout.json"))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		tr, err := traces.NewClient(jaeger.URL, nil).Await(ctx, "0000000000000000aaaaaaaaaaaaaaaa", time.Millisecond)
		if !errors.Is(err, traces.ErrTraceNotFound) || !errors.Is(err, context.DeadlineExceeded) || tr != nil {
			t.Fatalf("got %v, %v; want ErrTraceNotFound after the deadline", tr, err)
		}
		if jaeger.requests.Load() < 2 {
			t.Errorf("asked %d times: it did not poll", jaeger.requests.Load())
		}
	})
	t.Run("stays partial", func(t *testing.T) {
		jaeger := newFakeJaeger(t, serve(t, "orphans.json"))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		tr, err := traces.NewClient(jaeger.URL, nil).Await(ctx, fixtureID, time.Millisecond)
		if !errors.Is(err, traces.ErrIncomplete) || tr == nil || len(tr.Spans) != 7 {
			t.Fatalf("got %v, %v; want the 7 spans that arrived and ErrIncomplete", tr, err)
		}
	})
}

func TestAwaitStopsAtOnceWhenJaegerFails(t *testing.T) {
	jaeger := newFakeJaeger(t, respond(http.StatusBadGateway, "upstream down"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := traces.NewClient(jaeger.URL, nil).Await(ctx, fixtureID, time.Millisecond)
	if err == nil || errors.Is(err, traces.ErrTraceNotFound) || ctx.Err() != nil {
		t.Fatalf("error %v (context %v), want Jaeger's failure before the deadline", err, ctx.Err())
	}
	if n := jaeger.requests.Load(); n != 1 {
		t.Errorf("asked %d times, want 1", n)
	}
}

func TestTraceMarksFailuresFromEitherTag(t *testing.T) {
	// Spans translated from OTLP carry both tags; spans from Jaeger or
	// Zipkin clients carry only error=true.
	const body = `{"data":[{"traceID":"` + fixtureID + `","processes":{"p1":{"serviceName":"legacy","tags":[]}},"spans":[
		{"spanID":"01","operationName":"tagged error","startTime":1,"duration":1,"processID":"p1","tags":[{"key":"error","type":"bool","value":true}]},
		{"spanID":"02","operationName":"status error","startTime":2,"duration":1,"processID":"p1","tags":[{"key":"otel.status_code","type":"string","value":"ERROR"}]},
		{"spanID":"03","operationName":"fine","startTime":3,"duration":1,"processID":"p1","tags":[{"key":"error","type":"bool","value":false},{"key":"otel.status_code","type":"string","value":"OK"}]}
	]}]}`
	jaeger := newFakeJaeger(t, respond(http.StatusOK, body))
	tr, err := traces.NewClient(jaeger.URL, nil).Trace(context.Background(), fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range tr.Spans {
		if want := s.Operation != "fine"; s.Error != want {
			t.Errorf("%s: Error = %v, want %v", s.Operation, s.Error, want)
		}
	}
}

func TestTraceIDsAreCanonical(t *testing.T) {
	// Jaeger writes an ID whose high half is zero as 16 digits; the
	// platform (X-Trace-Id) always uses 32.
	jaeger := newFakeJaeger(t, respond(http.StatusOK, `{"data":[{"traceID":"00004d582ec0900b","spans":[],"processes":{}}]}`))
	tr, err := traces.NewClient(jaeger.URL, nil).Trace(context.Background(), "000000000000000000004d582ec0900b")
	if err != nil {
		t.Fatal(err)
	}
	if tr.ID != "000000000000000000004d582ec0900b" {
		t.Errorf("ID %q, want 32 digits", tr.ID)
	}
}
