package payments_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// newFaultyService is the service behind fault knobs, as main wires it.
func newFaultyService(t *testing.T, f *payments.Faults, rnd func() float64) (payments.Service, *payments.Store) {
	t.Helper()
	inner, store, _ := newService(t, testenv.SQLite)
	return payments.InjectFaults(f, rnd)(inner), store
}

// always returns a random source stuck at x.
func always(x float64) func() float64 { return func() float64 { return x } }

func TestFaultSettingsAreValidated(t *testing.T) {
	f := payments.NewFaults(0.5, time.Second)
	before := f.Get()
	tests := []struct {
		name     string
		settings payments.FaultSettings
		valid    bool
	}{
		{"off", payments.FaultSettings{}, true},
		{"maximum", payments.FaultSettings{ErrorRate: 1, Latency: payments.Duration(payments.MaxFaultLatency)}, true},
		{"negative rate", payments.FaultSettings{ErrorRate: -0.1}, false},
		{"rate above one", payments.FaultSettings{ErrorRate: 1.5}, false},
		{"NaN rate", payments.FaultSettings{ErrorRate: math.NaN()}, false},
		{"negative latency", payments.FaultSettings{Latency: payments.Duration(-time.Nanosecond)}, false},
		{"latency above maximum", payments.FaultSettings{Latency: payments.Duration(payments.MaxFaultLatency + time.Nanosecond)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := payments.NewFaults(0, 0).Set(tt.settings)
			if tt.valid {
				if err != nil {
					t.Errorf("Set(%+v) = %v, want nil", tt.settings, err)
				}
				return
			}
			if !errors.Is(err, errs.E(errs.Invalid, payments.CodeInvalidFaults, "")) {
				t.Errorf("Set(%+v) = %v, want Invalid/%s", tt.settings, err, payments.CodeInvalidFaults)
			}
			if err := f.Set(tt.settings); err == nil || f.Get() != before {
				t.Errorf("after a rejected Set the knobs are %+v, want %+v", f.Get(), before)
			}
		})
	}
}

func TestNewFaultsClampsIntoRange(t *testing.T) {
	tests := []struct {
		rate    float64
		latency time.Duration
		want    payments.FaultSettings
	}{
		{0.25, 300 * time.Millisecond, payments.FaultSettings{ErrorRate: 0.25, Latency: payments.Duration(300 * time.Millisecond)}},
		{2, time.Hour, payments.FaultSettings{ErrorRate: 1, Latency: payments.Duration(payments.MaxFaultLatency)}},
		{-1, -time.Second, payments.FaultSettings{}},
		{math.NaN(), 0, payments.FaultSettings{}},
	}
	for _, tt := range tests {
		if got := payments.NewFaults(tt.rate, tt.latency).Get(); got != tt.want {
			t.Errorf("NewFaults(%v, %v) = %+v, want %+v", tt.rate, tt.latency, got, tt.want)
		}
	}
}

func TestErrorRateOneFailsEveryWriteAndChangesNothing(t *testing.T) {
	f := payments.NewFaults(0, 0)
	svc, store := newFaultyService(t, f, rand.Float64)
	ctx := context.Background()
	paid, err := svc.Charge(ctx, charge("paid", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}

	if err := f.Set(payments.FaultSettings{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		_, err := svc.Charge(ctx, charge(fmt.Sprintf("o%d", i), payments.TestCardApproved))
		if !errors.Is(err, errs.E(errs.Internal, payments.CodeInjectedFault, "")) {
			t.Fatalf("charge %d = %v, want Internal/%s", i, err, payments.CodeInjectedFault)
		}
		if errs.IsBusiness(err) {
			t.Fatalf("%v is a business error; an injected fault must look like a real failure", err)
		}
	}
	_, err = svc.Refund(ctx, paid.ID)
	testenv.WantCode(t, err, payments.CodeInjectedFault)

	// Reads are never faulted: recovery must be able to look.
	if got, err := svc.GetCharge(ctx, paid.ID); err != nil || got.Status != payments.Succeeded {
		t.Errorf("GetCharge = %+v, %v; want the charge, still succeeded", got, err)
	}
	if _, err := svc.FindCharge(ctx, "o0"); errs.CodeOf(err) != payments.CodeChargeNotFound {
		t.Errorf("FindCharge(o0) = %v, want %s: a faulted charge must not exist", err, payments.CodeChargeNotFound)
	}
	if stored := listCharges(t, store); len(stored) != 1 || stored[0].ID != paid.ID || stored[0].Status != payments.Succeeded {
		t.Errorf("stored %+v, want only the first charge, not refunded", stored)
	}
}

func TestErrorRateIsAProbability(t *testing.T) {
	tests := []struct {
		rate, draw float64
		fails      bool
	}{
		{0, 0, false}, // the smallest draw never fails a zero rate
		{0.25, 0, true},
		{0.25, 0.2499, true},
		{0.25, 0.25, false},
		{0.25, 0.9, false},
		{1, 0.9999, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("rate %v draw %v", tt.rate, tt.draw), func(t *testing.T) {
			svc, store := newFaultyService(t, payments.NewFaults(tt.rate, 0), always(tt.draw))
			_, err := svc.Charge(context.Background(), charge("o1", payments.TestCardApproved))
			if failed := errs.CodeOf(err) == payments.CodeInjectedFault; failed != tt.fails || (!failed && err != nil) {
				t.Errorf("charge = %v; want an injected fault: %v", err, tt.fails)
			}
			want := 1
			if tt.fails {
				want = 0
			}
			if n := len(listCharges(t, store)); n != want {
				t.Errorf("%d charges stored, want %d", n, want)
			}
		})
	}
}

func TestErrorRateZeroInjectsNothing(t *testing.T) {
	svc, store := newFaultyService(t, payments.NewFaults(0, 0), rand.Float64)
	ctx := context.Background()
	for i := range 50 {
		if _, err := svc.Charge(ctx, charge(fmt.Sprintf("o%d", i), payments.TestCardApproved)); err != nil {
			t.Fatalf("charge %d: %v", i, err)
		}
	}
	if n := len(listCharges(t, store)); n != 50 {
		t.Errorf("%d charges stored, want 50", n)
	}
}

func TestLatencyIsAdded(t *testing.T) {
	const latency = 50 * time.Millisecond
	svc, _ := newFaultyService(t, payments.NewFaults(0, latency), rand.Float64)
	start := time.Now()
	if _, err := svc.Charge(context.Background(), charge("o1", payments.TestCardApproved)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < latency {
		t.Errorf("charge took %s, want at least the injected %s", took, latency)
	}
}

func TestLatencyEndsWithTheCallersContext(t *testing.T) {
	svc, store := newFaultyService(t, payments.NewFaults(0, payments.MaxFaultLatency), rand.Float64)
	deadlineCtx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	canceledCtx, cancelNow := context.WithCancel(context.Background())
	cancelNow()

	for _, tt := range []struct {
		ctx  context.Context
		want error
	}{
		{deadlineCtx, context.DeadlineExceeded},
		{canceledCtx, context.Canceled},
	} {
		start := time.Now()
		_, err := svc.Charge(tt.ctx, charge("o1", payments.TestCardApproved))
		if !errors.Is(err, tt.want) {
			t.Errorf("charge = %v, want %v", err, tt.want)
		}
		// Far below the 30s latency: the call gave up with its caller.
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("charge took %s after its context ended", took)
		}
	}
	if n := len(listCharges(t, store)); n != 0 {
		t.Errorf("%d charges stored by calls that gave up, want 0", n)
	}
}

func TestInjectedFaultsAreVisibleOnTheSpanAndInMetrics(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	f := payments.NewFaults(1, 3*time.Millisecond)
	svc, _ := newFaultyService(t, f, rand.Float64)

	ctx, span := tracer.Start(context.Background(), "charge")
	_, err := svc.Charge(ctx, charge("o1", payments.TestCardApproved))
	span.End()
	testenv.WantCode(t, err, payments.CodeInjectedFault)

	ended := rec.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want 1", len(ended))
	}
	var got []string
	for _, ev := range ended[0].Events() {
		attrs := attribute.NewSet(ev.Attributes...)
		got = append(got, ev.Name+" "+attrs.Encoded(attribute.DefaultEncoder()))
	}
	want := []string{
		"fault.injected glasshouse.fault.latency_ms=3,glasshouse.fault.type=latency",
		"fault.injected glasshouse.fault.type=error",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("span events = %q\nwant %q", got, want)
	}

	metrics := `
# HELP glasshouse_payments_fault_error_rate The error-rate fault knob: the probability that a Charge or Refund fails with injected_fault.
# TYPE glasshouse_payments_fault_error_rate gauge
glasshouse_payments_fault_error_rate 1
# HELP glasshouse_payments_fault_latency_seconds The latency fault knob: the delay added to every Charge and Refund.
# TYPE glasshouse_payments_fault_latency_seconds gauge
glasshouse_payments_fault_latency_seconds 0.003
# HELP glasshouse_payments_faults_injected_total Faults injected into Charge and Refund by the fault knobs, by type (latency or error).
# TYPE glasshouse_payments_faults_injected_total counter
glasshouse_payments_faults_injected_total{type="error"} 1
glasshouse_payments_faults_injected_total{type="latency"} 1
`
	if err := testutil.CollectAndCompare(f, strings.NewReader(metrics)); err != nil {
		t.Error(err)
	}
}

func TestFaultsChangeSafelyUnderLoad(t *testing.T) {
	f := payments.NewFaults(0, 0)
	svc, store := newFaultyService(t, f, rand.Float64)
	ctx := context.Background()

	// An operator flips the knobs while charges run; -race checks the
	// sharing, and every charge must either happen or fail injected,
	// never half of each.
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		succeeded  int
		unexpected []error
		done       = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := range 200 {
			if err := f.Set(payments.FaultSettings{ErrorRate: float64(i % 2)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := svc.Charge(ctx, charge(fmt.Sprintf("o%d", i), payments.TestCardApproved))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				succeeded++
			case errs.CodeOf(err) != payments.CodeInjectedFault:
				unexpected = append(unexpected, err)
			}
		}()
	}
	wg.Wait()
	<-done
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if n := len(listCharges(t, store)); n != succeeded {
		t.Errorf("%d charges stored, %d calls succeeded; want them equal", n, succeeded)
	}
}

func TestDurationJSON(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		json string
	}{
		{0, `"0s"`},
		{300 * time.Millisecond, `"300ms"`},
		{1500 * time.Millisecond, `"1.5s"`},
	} {
		b, err := json.Marshal(payments.Duration(tt.d))
		if err != nil || string(b) != tt.json {
			t.Errorf("Marshal(%s) = %s, %v; want %s", tt.d, b, err, tt.json)
		}
		var back payments.Duration
		if err := json.Unmarshal(b, &back); err != nil || time.Duration(back) != tt.d {
			t.Errorf("Unmarshal(%s) = %s, %v; want %s", b, back, err, tt.d)
		}
	}

	bad := []string{`"banana"`, `"300"`, `""`, `300`, `true`, `{"ms":300}`}
	for _, in := range bad {
		d := payments.Duration(time.Second)
		if err := json.Unmarshal([]byte(in), &d); err == nil || time.Duration(d) != time.Second {
			t.Errorf("Unmarshal(%s) = %s, %v; want an error and the value untouched", in, d, err)
		}
	}
	d := payments.Duration(time.Second)
	if err := json.Unmarshal([]byte(`null`), &d); err != nil || time.Duration(d) != time.Second {
		t.Errorf("Unmarshal(null) = %s, %v; want no change, like encoding/json's own types", d, err)
	}
}
