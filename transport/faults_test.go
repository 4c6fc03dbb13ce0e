package transport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/transport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestBaggageFaultsAreOptInAndTargeted(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	calls := 0
	ep := func(context.Context, any) (any, error) { calls++; return "ok", nil }

	tests := []struct {
		name, target, fault string
		enabled             bool
		code                string // "" means the endpoint ran
		delay               time.Duration
	}{
		{"disabled ignores baggage", "payments", "error", false, "", 0},
		{"error for the service", "payments", "error", true, "injected_fault", 0},
		{"error for this endpoint", "payments.Charge", "error", true, "injected_fault", 0},
		{"another endpoint is untouched", "payments.Refund", "error", true, "", 0},
		{"another service is untouched", "inventory", "error", true, "", 0},
		{"delay then run", "payments", "delay:50ms", true, "", 50 * time.Millisecond},
		{"malformed fault", "payments", "explode", true, "invalid_fault", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls = 0
			ctx, span := tracer.Start(context.Background(), "request")
			ctx, err := transport.FaultBaggage(ctx, tt.target, tt.fault)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = transport.BaggageFaults(tt.enabled, "payments", "Charge")(ep)(ctx, nil)
			span.End()
			if errs.CodeOf(err) != tt.code {
				t.Fatalf("error %v, want code %q", err, tt.code)
			}
			if ran := calls == 1; ran != (tt.code == "") {
				t.Errorf("endpoint ran %d times", calls)
			}
			if took := time.Since(start); took < tt.delay {
				t.Errorf("took %s, want at least the %s delay", took, tt.delay)
			}
			injected := false
			for _, ev := range rec.Ended()[len(rec.Ended())-1].Events() {
				injected = injected || ev.Name == "fault.injected"
			}
			if want := tt.enabled && (tt.code == "injected_fault" || tt.delay > 0); injected != want {
				t.Errorf("fault.injected event on the span: %v, want %v", injected, want)
			}
		})
	}
}

func TestBaggageDelayStopsWithTheRequest(t *testing.T) {
	ctx, _ := transport.FaultBaggage(context.Background(), "payments", "delay:10s")
	ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := transport.BaggageFaults(true, "payments", "Charge")(func(context.Context, any) (any, error) {
		return nil, nil
	})(ctx, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the request's deadline", err)
	}
}
