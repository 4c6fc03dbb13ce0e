package payments

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Error codes of the fault knobs.
const (
	// CodeInjectedFault is the error a fault knob makes Charge or Refund
	// fail with. It is Internal (500): callers must treat it exactly like
	// a real failure, which is the point.
	CodeInjectedFault = "injected_fault"
	// CodeInvalidFaults rejects fault settings out of range.
	CodeInvalidFaults = "invalid_faults"
)

// MaxFaultLatency bounds injected latency: enough to trip any caller's
// timeout, short enough that a forgotten knob cannot hang a demo for long.
const MaxFaultLatency = 30 * time.Second

// Fault types, as span event attributes and metric labels.
const (
	faultLatency = "latency"
	faultError   = "error"
)

// FaultSettings are the fault knobs' positions.
type FaultSettings struct {
	// ErrorRate is the probability, from 0 to 1, that a Charge or Refund
	// fails with injected_fault.
	ErrorRate float64 `json:"error_rate"`
	// Latency is added to every Charge and Refund, from 0 to
	// MaxFaultLatency.
	Latency Duration `json:"latency"`
}

// Validate reports settings out of range as Invalid (invalid_faults).
func (s FaultSettings) Validate() error {
	// Written so that NaN fails too: every comparison with NaN is false.
	if !(s.ErrorRate >= 0 && s.ErrorRate <= 1) {
		return errs.E(errs.Invalid, CodeInvalidFaults, "error_rate must be between 0 and 1, got %v", s.ErrorRate)
	}
	if d := time.Duration(s.Latency); d < 0 || d > MaxFaultLatency {
		return errs.E(errs.Invalid, CodeInvalidFaults, "latency must be between 0s and %s, got %s", MaxFaultLatency, d)
	}
	return nil
}

// Faults holds the fault knobs of one process. It is safe for concurrent
// use: an operator turns the knobs (PUT /admin/faults, on the admin
// listener) while requests read them.
//
// Faults is a prometheus.Collector: register it to export
// glasshouse_payments_faults_injected_total{type} and the knobs' current
// positions, so a dashboard shows both the cause and its effect.
type Faults struct {
	mu       sync.RWMutex
	settings FaultSettings

	injected     *prometheus.CounterVec
	errorRate    *prometheus.Desc
	latencyGauge *prometheus.Desc
}

// NewFaults returns fault knobs set to errorRate and latency, clamped into
// the ranges Set accepts (check them with FaultSettings.Validate first to
// report bad input instead). Zero values inject nothing.
func NewFaults(errorRate float64, latency time.Duration) *Faults {
	f := &Faults{
		settings: FaultSettings{
			ErrorRate: clamp(errorRate, 0, 1),
			Latency:   Duration(min(max(latency, 0), MaxFaultLatency)),
		},
		injected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_payments_faults_injected_total",
			Help: "Faults injected into Charge and Refund by the fault knobs, by type (latency or error).",
		}, []string{"type"}),
		errorRate: prometheus.NewDesc("glasshouse_payments_fault_error_rate",
			"The error-rate fault knob: the probability that a Charge or Refund fails with injected_fault.", nil, nil),
		latencyGauge: prometheus.NewDesc("glasshouse_payments_fault_latency_seconds",
			"The latency fault knob: the delay added to every Charge and Refund.", nil, nil),
	}
	// Both series exist from the start, so rate() sees the first fault.
	f.injected.WithLabelValues(faultLatency)
	f.injected.WithLabelValues(faultError)
	return f
}

func clamp(x, lo, hi float64) float64 {
	if math.IsNaN(x) {
		return lo
	}
	return min(max(x, lo), hi)
}

// Set turns the knobs to s, or fails with invalid_faults leaving them as
// they were.
func (f *Faults) Set(s FaultSettings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settings = s
	return nil
}

// Get returns the knobs' current positions.
func (f *Faults) Get() FaultSettings {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.settings
}

// Admin turns the fault knobs from outside the process (AdminAPI). It is
// not part of Service: only operators and chaos tests call it, directly
// on an instance.
type Admin interface {
	// GetFaults returns the knobs' current positions.
	GetFaults(ctx context.Context) (FaultSettings, error)
	// SetFaults turns the knobs to s and returns s, or fails with
	// invalid_faults leaving them as they were.
	SetFaults(ctx context.Context, s FaultSettings) (FaultSettings, error)
}

// GetFaults implements Admin.
func (f *Faults) GetFaults(context.Context) (FaultSettings, error) { return f.Get(), nil }

// SetFaults implements Admin.
func (f *Faults) SetFaults(_ context.Context, s FaultSettings) (FaultSettings, error) {
	if err := f.Set(s); err != nil {
		return FaultSettings{}, err
	}
	return s, nil
}

// Describe implements prometheus.Collector.
func (f *Faults) Describe(ch chan<- *prometheus.Desc) {
	f.injected.Describe(ch)
	ch <- f.errorRate
	ch <- f.latencyGauge
}

// Collect implements prometheus.Collector.
func (f *Faults) Collect(ch chan<- prometheus.Metric) {
	f.injected.Collect(ch)
	s := f.Get()
	ch <- prometheus.MustNewConstMetric(f.errorRate, prometheus.GaugeValue, s.ErrorRate)
	ch <- prometheus.MustNewConstMetric(f.latencyGauge, prometheus.GaugeValue, time.Duration(s.Latency).Seconds())
}

// InjectFaults returns a service middleware that makes Charge and Refund
// slow and unreliable as the knobs in f say; reads are left alone. Each
// call first waits out the latency (returning the context's error if it
// ends first), then fails with probability ErrorRate, drawing from rnd (a
// uniform number in [0, 1), like math/rand/v2.Float64). A failure happens
// before the next service is called, so nothing is charged or refunded.
//
// Every injected fault is an event on the current span and a count in
// glasshouse_payments_faults_injected_total, so a trace or a dashboard
// never mistakes a drill for a real failure.
func InjectFaults(f *Faults, rnd func() float64) Middleware {
	return func(next Service) Service { return faulty{Service: next, faults: f, rnd: rnd} }
}

// faulty passes the reads and Void on untouched (the embedded Service):
// Void is never faulted, because compensation must always be able to
// close an order.
type faulty struct {
	Service
	faults *Faults
	rnd    func() float64
}

func (m faulty) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	if err := m.inject(ctx, "Charge"); err != nil {
		return Charge{}, err
	}
	return m.Service.Charge(ctx, req)
}

func (m faulty) Refund(ctx context.Context, chargeID string) (Charge, error) {
	if err := m.inject(ctx, "Refund"); err != nil {
		return Charge{}, err
	}
	return m.Service.Refund(ctx, chargeID)
}

// inject applies the current settings to one call of method.
func (m faulty) inject(ctx context.Context, method string) error {
	s := m.faults.Get()
	span := trace.SpanFromContext(ctx)
	if latency := time.Duration(s.Latency); latency > 0 {
		m.faults.injected.WithLabelValues(faultLatency).Inc()
		span.AddEvent("fault.injected", trace.WithAttributes(
			attribute.String("glasshouse.fault.type", faultLatency),
			attribute.Int64("glasshouse.fault.latency_ms", latency.Milliseconds()),
		))
		timer := time.NewTimer(latency)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
	if s.ErrorRate > 0 && m.rnd() < s.ErrorRate {
		m.faults.injected.WithLabelValues(faultError).Inc()
		span.AddEvent("fault.injected", trace.WithAttributes(
			attribute.String("glasshouse.fault.type", faultError),
		))
		return errs.E(errs.Internal, CodeInjectedFault, "%s failed on purpose: the error-rate fault knob is at %v", method, s.ErrorRate)
	}
	return nil
}

// Duration is a time.Duration that is written in JSON as a Go duration
// string, like "300ms" or "1.5s", rather than a count of nanoseconds.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler. JSON null leaves d as it is,
// as encoding/json does for built-in types.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string like \"300ms\" or \"1.5s\", not %s", b)
	}
	parsed, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"300ms\" or \"1.5s\"", s)
	}
	*d = Duration(parsed)
	return nil
}

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }
