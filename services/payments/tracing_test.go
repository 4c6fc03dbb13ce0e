package payments_test

import (
	"context"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// findSpan polls rec until a span with name and kind has ended, or fails
// the test at the deadline. Server spans end just after the response is
// written, so the client can be a moment ahead of the recorder.
func findSpan(t *testing.T, rec *tracetest.SpanRecorder, traceID trace.TraceID, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
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

func attr(attrs []attribute.KeyValue, key attribute.Key) string {
	for _, kv := range attrs {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func TestInjectedFaultsShowOnTheEndpointSpan(t *testing.T) {
	serverSpans, clientSpans := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	srv := newServer(t, serverSpans)
	if err := srv.faults.Set(payments.FaultSettings{ErrorRate: 1, Latency: payments.Duration(2 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	clientTel := newTelemetry(t, "orders", clientSpans)
	client := payments.NewClient(testenv.Direct(t, srv.URL, clientTel))

	ctx, root := clientTel.Tracer("test").Start(context.Background(), "checkout")
	_, err := client.Charge(ctx, charge("o1", payments.TestCardApproved))
	root.End()
	if errs.CodeOf(err) != payments.CodeInjectedFault {
		t.Fatalf("err = %v, want %s", err, payments.CodeInjectedFault)
	}

	// In Jaeger the drill reads as such: the endpoint span failed, and its
	// events say the failure and the delay were injected.
	ep := findSpan(t, serverSpans, root.SpanContext().TraceID(), "payments.Charge", trace.SpanKindInternal)
	if ep.Status().Code != codes.Error || attr(ep.Attributes(), "glasshouse.error.code") != payments.CodeInjectedFault {
		t.Errorf("endpoint span status %v, code %q; want a failure coded %s", ep.Status(), attr(ep.Attributes(), "glasshouse.error.code"), payments.CodeInjectedFault)
	}
	var faults []string
	for _, ev := range ep.Events() {
		if ev.Name == "fault.injected" {
			faults = append(faults, attr(ev.Attributes, "glasshouse.fault.type"))
			if typ := attr(ev.Attributes, "glasshouse.fault.type"); typ == "latency" && attr(ev.Attributes, "glasshouse.fault.latency_ms") != "2" {
				t.Errorf("latency event attributes %v, want latency_ms 2", ev.Attributes)
			}
		}
	}
	if len(faults) != 2 || faults[0] != "latency" || faults[1] != "error" {
		t.Errorf("fault.injected events of types %v, want [latency error]", faults)
	}
}

func TestDeclineDoesNotFailTheSpan(t *testing.T) {
	serverSpans := tracetest.NewSpanRecorder()
	srv := newServer(t, serverSpans)
	clientTel := newTelemetry(t, "orders", nil)
	client := payments.NewClient(testenv.Direct(t, srv.URL, clientTel))

	ctx, root := clientTel.Tracer("test").Start(context.Background(), "checkout")
	_, err := client.Charge(ctx, charge("o1", payments.TestCardDeclined))
	root.End()
	if errs.CodeOf(err) != payments.CodeCardDeclined {
		t.Fatalf("err = %v, want %s", err, payments.CodeCardDeclined)
	}
	traceID := root.SpanContext().TraceID()

	server := findSpan(t, serverSpans, traceID, "POST /charges", trace.SpanKindServer)
	if got := attr(server.Attributes(), "http.response.status_code"); got != "402" {
		t.Errorf("server span status code = %q, want 402", got)
	}
	ep := findSpan(t, serverSpans, traceID, "payments.Charge", trace.SpanKindInternal)
	if ep.Status().Code == codes.Error || attr(ep.Attributes(), "glasshouse.error.code") != payments.CodeCardDeclined {
		t.Errorf("endpoint span status %v, code %q; want unset status coded %s", ep.Status(), attr(ep.Attributes(), "glasshouse.error.code"), payments.CodeCardDeclined)
	}
}
