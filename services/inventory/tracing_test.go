package inventory_test

import (
	"context"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The database spans look the same on both backends; only
// db.system.name tells them apart.
func TestTracesFollowACallFromClientToDatabase(t *testing.T) {
	testenv.OnEachBackend(t, testTracesFollowACallFromClientToDatabase)
}

func testTracesFollowACallFromClientToDatabase(t *testing.T, b testenv.Backend) {
	serverSpans, clientSpans := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	srv, _ := newServer(t, b, serverSpans)
	clientTel := testenv.Telemetry(t, "orders", testenv.RecordSpans(clientSpans))
	client := inventory.NewClient(testenv.Direct(t, srv.URL, clientTel))

	ctx, root := clientTel.Tracer("test").Start(context.Background(), "checkout")
	_, err := client.Reserve(ctx, "o1", []inventory.Item{{SKU: "A", Quantity: 1}})
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	traceID := root.SpanContext().TraceID()

	// Client side: the logical call, then one HTTP attempt under it.
	call := testenv.FindSpan(t, clientSpans, traceID, "inventory.Reserve", trace.SpanKindClient)
	attempt := testenv.FindSpan(t, clientSpans, traceID, "HTTP POST", trace.SpanKindClient)
	if call.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Errorf("client call span's parent = %s, want the caller's span", call.Parent().SpanID())
	}
	if attempt.Parent().SpanID() != call.SpanContext().SpanID() {
		t.Errorf("HTTP attempt's parent = %s, want the client call span", attempt.Parent().SpanID())
	}

	// Server side: same trace, the server span is the client attempt's
	// child, named by route; the endpoint span and the SQL under it.
	server := testenv.FindSpan(t, serverSpans, traceID, "POST /reservations", trace.SpanKindServer)
	if server.Parent().SpanID() != attempt.SpanContext().SpanID() || !server.Parent().IsRemote() {
		t.Errorf("server span's parent = %v, want the remote client attempt %s", server.Parent(), attempt.SpanContext().SpanID())
	}
	if got := testenv.Attr(server, "http.route"); got != "/reservations" && got != "POST /reservations" {
		t.Errorf("http.route = %q", got)
	}
	ep := testenv.FindSpan(t, serverSpans, traceID, "inventory.Reserve", trace.SpanKindInternal)
	if ep.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("endpoint span's parent = %s, want the server span", ep.Parent().SpanID())
	}
	if ep.Status().Code == codes.Error {
		t.Errorf("successful endpoint span has status %v", ep.Status())
	}
	// The reservation is one transaction under the endpoint span, and
	// every statement it made is an event of the transaction's span, with
	// its SQL: no statement is a span of its own.
	system := map[string]string{"sqlite": "sqlite", "postgres": "postgresql"}[b.Name]
	tx := testenv.FindSpan(t, serverSpans, traceID, "sql.tx", trace.SpanKindInternal)
	if tx.Parent().SpanID() != ep.SpanContext().SpanID() || testenv.Attr(tx, "db.system.name") != system {
		t.Errorf("sql.tx under %s with db.system.name %q; want under the endpoint span, %q", tx.Parent().SpanID(), testenv.Attr(tx, "db.system.name"), system)
	}
	var updates int
	for _, e := range tx.Events() {
		if strings.HasPrefix(strings.TrimSpace(testenv.EventAttr(e, "db.query.text")), "UPDATE products") {
			updates++
		}
	}
	if updates == 0 {
		t.Errorf("sql.tx's events %+v hold no UPDATE products: the reservation's statements are not on it", tx.Events())
	}
	for _, s := range serverSpans.Ended() {
		if s.SpanContext().TraceID() == traceID && strings.HasPrefix(s.Name(), "sql.conn.") {
			t.Errorf("%s %q is a span of its own; want it an event of sql.tx", s.Name(), testenv.Attr(s, "db.query.text"))
		}
	}
}

func TestBusinessErrorDoesNotFailTheSpan(t *testing.T) {
	serverSpans, clientSpans := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	srv, _ := newServer(t, testenv.SQLite, serverSpans)
	clientTel := testenv.Telemetry(t, "orders", testenv.RecordSpans(clientSpans))
	client := inventory.NewClient(testenv.Direct(t, srv.URL, clientTel))

	ctx, root := clientTel.Tracer("test").Start(context.Background(), "browse")
	_, err := client.GetProduct(ctx, "NOPE")
	root.End()
	if errs.CodeOf(err) != inventory.CodeUnknownProduct {
		t.Fatalf("err = %v, want unknown_product", err)
	}
	traceID := root.SpanContext().TraceID()

	server := testenv.FindSpan(t, serverSpans, traceID, "GET /products/{sku}", trace.SpanKindServer)
	if got := testenv.Attr(server, "http.response.status_code"); got != "404" {
		t.Errorf("server span status code = %q, want 404", got)
	}
	for _, s := range []sdktrace.ReadOnlySpan{
		testenv.FindSpan(t, serverSpans, traceID, "inventory.GetProduct", trace.SpanKindInternal),
		testenv.FindSpan(t, clientSpans, traceID, "inventory.GetProduct", trace.SpanKindClient),
	} {
		if s.Status().Code == codes.Error {
			t.Errorf("%s (%s) marked failed by a business error: %v", s.Name(), s.SpanKind(), s.Status())
		}
		if got := testenv.Attr(s, "glasshouse.error.code"); got != inventory.CodeUnknownProduct {
			t.Errorf("%s (%s) glasshouse.error.code = %q, want %q", s.Name(), s.SpanKind(), got, inventory.CodeUnknownProduct)
		}
	}
}
