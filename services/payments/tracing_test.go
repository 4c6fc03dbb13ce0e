package payments_test

import (
	"context"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestInjectedFaultsShowOnTheEndpointSpan(t *testing.T) {
	testenv.OnEachBackend(t, testInjectedFaultsShowOnTheEndpointSpan)
}

func testInjectedFaultsShowOnTheEndpointSpan(t *testing.T, b testenv.Backend) {
	serverSpans, clientSpans := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	srv := newServer(t, b, serverSpans)
	if err := srv.faults.Set(payments.FaultSettings{ErrorRate: 1, Latency: payments.Duration(2 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	clientTel := testenv.Telemetry(t, "orders", testenv.RecordSpans(clientSpans))
	client := payments.NewClient(testenv.Direct(t, srv.URL, clientTel))

	ctx, root := clientTel.Tracer("test").Start(context.Background(), "checkout")
	_, err := client.Charge(ctx, charge("o1", payments.TestCardApproved))
	root.End()
	if errs.CodeOf(err) != payments.CodeInjectedFault {
		t.Fatalf("err = %v, want %s", err, payments.CodeInjectedFault)
	}

	// In Jaeger the drill reads as such: the endpoint span failed, and its
	// events say the failure and the delay were injected.
	ep := testenv.FindSpan(t, serverSpans, root.SpanContext().TraceID(), "payments.Charge", trace.SpanKindInternal)
	if ep.Status().Code != codes.Error || testenv.Attr(ep, "glasshouse.error.code") != payments.CodeInjectedFault {
		t.Errorf("endpoint span status %v, code %q; want a failure coded %s", ep.Status(), testenv.Attr(ep, "glasshouse.error.code"), payments.CodeInjectedFault)
	}
	var faults []string
	for _, ev := range ep.Events() {
		if ev.Name == "fault.injected" {
			faults = append(faults, testenv.EventAttr(ev, "glasshouse.fault.type"))
			if typ := testenv.EventAttr(ev, "glasshouse.fault.type"); typ == "latency" && testenv.EventAttr(ev, "glasshouse.fault.latency_ms") != "2" {
				t.Errorf("latency event attributes %v, want latency_ms 2", ev.Attributes)
			}
		}
	}
	if len(faults) != 2 || faults[0] != "latency" || faults[1] != "error" {
		t.Errorf("fault.injected events of types %v, want [latency error]", faults)
	}
}

func TestDeclineDoesNotFailTheSpan(t *testing.T) {
	testenv.OnEachBackend(t, testDeclineDoesNotFailTheSpan)
}

func testDeclineDoesNotFailTheSpan(t *testing.T, b testenv.Backend) {
	serverSpans := tracetest.NewSpanRecorder()
	srv := newServer(t, b, serverSpans)
	clientTel := testenv.Telemetry(t, "orders")
	client := payments.NewClient(testenv.Direct(t, srv.URL, clientTel))

	ctx, root := clientTel.Tracer("test").Start(context.Background(), "checkout")
	_, err := client.Charge(ctx, charge("o1", payments.TestCardDeclined))
	root.End()
	if errs.CodeOf(err) != payments.CodeCardDeclined {
		t.Fatalf("err = %v, want %s", err, payments.CodeCardDeclined)
	}
	traceID := root.SpanContext().TraceID()

	server := testenv.FindSpan(t, serverSpans, traceID, "POST /charges", trace.SpanKindServer)
	if got := testenv.Attr(server, "http.response.status_code"); got != "402" {
		t.Errorf("server span status code = %q, want 402", got)
	}
	ep := testenv.FindSpan(t, serverSpans, traceID, "payments.Charge", trace.SpanKindInternal)
	if ep.Status().Code == codes.Error || testenv.Attr(ep, "glasshouse.error.code") != payments.CodeCardDeclined {
		t.Errorf("endpoint span status %v, code %q; want unset status coded %s", ep.Status(), testenv.Attr(ep, "glasshouse.error.code"), payments.CodeCardDeclined)
	}
}
