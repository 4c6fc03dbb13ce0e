package traces_test

import (
	"slices"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/traces"
)

// at returns a span of service named op that starts ms after the epoch
// of the test trace and lasts dur ms.
func at(id, parent, service, op string, ms, dur int) traces.Span {
	return traces.Span{
		ID: id, ParentID: parent, Service: service, Operation: op,
		Start:    fixtureStart.Add(time.Duration(ms) * time.Millisecond),
		Duration: time.Duration(dur) * time.Millisecond,
	}
}

func ids(spans []traces.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.ID)
	}
	return out
}

func TestTreeHelpers(t *testing.T) {
	tr := &traces.Trace{ID: "t", Spans: []traces.Span{
		at("root", "", "gateway", "POST /api/orders", 0, 10),
		at("a", "root", "gateway", "orders.PlaceOrder", 1, 5),
		at("b", "root", "gateway", "orders.GetOrder", 6, 3),
		at("a1", "a", "orders", "POST /orders", 2, 3),
		at("lost", "gone", "payments", "POST /charges", 3, 1),
	}}

	if got := ids(tr.Children("root")); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Children(root) = %v", got)
	}
	if got := tr.Children("a1"); len(got) != 0 {
		t.Errorf("a leaf has children %v", ids(got))
	}
	if got := tr.Children(""); len(got) != 0 {
		t.Errorf(`Children("") = %v, want none: roots are not children`, ids(got))
	}
	if got := ids(tr.Roots()); !slices.Equal(got, []string{"root"}) {
		t.Errorf("Roots() = %v", got)
	}
	if got := ids(tr.Orphans()); !slices.Equal(got, []string{"lost"}) {
		t.Errorf("Orphans() = %v, want [lost]", got)
	}
	if s, ok := tr.Span("a1"); !ok || s.Operation != "POST /orders" {
		t.Errorf("Span(a1) = %+v, %v", s, ok)
	}
	if _, ok := tr.Span("gone"); ok {
		t.Error("Span found a span that is not in the trace")
	}
	if got := ids(tr.Find(func(s traces.Span) bool { return s.Service == "gateway" })); !slices.Equal(got, []string{"root", "a", "b"}) {
		t.Errorf("Find(gateway) = %v", got)
	}
	if got := tr.Services(); !slices.Equal(got, []string{"gateway", "orders", "payments"}) {
		t.Errorf("Services() = %v", got)
	}
	if end := tr.Spans[0].End(); !end.Equal(fixtureStart.Add(10 * time.Millisecond)) {
		t.Errorf("End() = %v", end)
	}
}

func TestOrphansOfATraceReadTooEarly(t *testing.T) {
	tr := load(t, "orphans.json")

	// The gateway's batch is not in: orders' server span waits for the
	// gateway's attempt; payments' waits for orders' attempt.
	got := tr.Orphans()
	want := []string{"orders POST /orders", "payments POST /charges"}
	if len(got) != len(want) {
		t.Fatalf("%d orphans, want %d", len(got), len(want))
	}
	for i, s := range got {
		if s.Service+" "+s.Operation != want[i] {
			t.Errorf("orphan %d is %s %s, want %s", i, s.Service, s.Operation, want[i])
		}
	}
	if len(tr.Roots()) != 0 {
		t.Errorf("roots %v in a trace whose root has not arrived", ids(tr.Roots()))
	}
	if tr.Complete() {
		t.Error("a trace with orphans is complete")
	}
}

func TestCompleteSeesAMissingCallee(t *testing.T) {
	tr := load(t, "checkout.json")
	if !tr.Complete() {
		t.Fatal("the whole checkout is not complete")
	}

	// inventory has not exported yet: no span lacks its parent, but
	// orders' attempts got answers from a server that left no span.
	withoutInventory := &traces.Trace{ID: tr.ID, Spans: tr.Find(func(s traces.Span) bool { return s.Service != "inventory" })}
	if len(withoutInventory.Orphans()) != 0 || len(withoutInventory.Roots()) != 1 {
		t.Fatalf("the cut is not clean: orphans %v", ids(withoutInventory.Orphans()))
	}
	if withoutInventory.Complete() {
		t.Error("a trace missing the inventory's spans is complete")
	}

	// An attempt that never reached a server (connection refused) has no
	// child and does not make the trace incomplete: the checkout has one.
	refused := tr.Find(func(s traces.Span) bool { return s.Error && s.Kind == "client" })
	if len(refused) != 1 || len(tr.Children(refused[0].ID)) != 0 {
		t.Fatalf("the checkout fixture should hold one refused attempt, without children")
	}
}

// The saga calls inventory and payments over gRPC: a call that got a
// gRPC status from a server wants the server's span, as an HTTP one does.
func TestCompleteSeesAMissingGRPCCallee(t *testing.T) {
	root := traces.Span{ID: "a", Service: "orders", Kind: "server", Tags: map[string]string{}}
	call := func(id, code string) traces.Span {
		return traces.Span{ID: id, ParentID: "a", Service: "orders", Kind: "client",
			Tags: map[string]string{"rpc.system.name": "grpc", "rpc.response.status_code": code}}
	}
	reserve := call("b", "OK")
	tr := &traces.Trace{ID: "t", Spans: []traces.Span{root, reserve}}
	if tr.Complete() {
		t.Error("a trace whose answered gRPC call has no server span is complete")
	}
	tr.Spans = append(tr.Spans, traces.Span{ID: "c", ParentID: "b", Service: "inventory", Kind: "server", Tags: map[string]string{}})
	if !tr.Complete() {
		t.Error("the trace with the callee's server span is not complete")
	}
	// Statuses the client makes up itself: no server left a span.
	for _, code := range []string{"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"} {
		tr.Spans = append(tr.Spans, call("x-"+code, code))
	}
	if !tr.Complete() {
		t.Error("a call that reached no server makes the trace incomplete")
	}
	tr.Spans = append(tr.Spans, call("d", "FAILED_PRECONDITION"))
	if tr.Complete() {
		t.Error("a call a server refused, without the server's span, is complete")
	}
}

func TestErrorMessageFallsBackToTheRecordedError(t *testing.T) {
	s := traces.Span{Error: true, Tags: map[string]string{}, Events: []traces.Event{
		{Name: "exception", Attrs: map[string]string{"exception.message": "first"}},
		{Name: "retry"},
		{Name: "exception", Attrs: map[string]string{"exception.message": "timeout: no answer within 1s"}},
	}}
	if got := s.ErrorMessage(); got != "timeout: no answer within 1s" {
		t.Errorf("ErrorMessage() = %q, want the last recorded error", got)
	}
	s.Tags["otel.status_description"] = "unavailable"
	if got := s.ErrorMessage(); got != "unavailable" {
		t.Errorf("ErrorMessage() = %q, want the status description first", got)
	}
	s.Error = false
	if got := s.ErrorMessage(); got != "" {
		t.Errorf("ErrorMessage() of a span that did not fail = %q", got)
	}
}
