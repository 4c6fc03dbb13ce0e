package observability

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Outcomes of a call, as used in metric labels and log lines.
const (
	OutcomeSuccess       = "success"
	OutcomeBusinessError = "business_error"
	OutcomeError         = "error"
)

// classified is implemented by errors that know their stable code and
// whether they are a business answer (errs.Error does). Observability
// depends on this interface, not on any error package of ours.
type classified interface {
	error
	ErrorCode() string
	BusinessError() bool
}

// Classify returns the outcome of a call that returned err and the error's
// stable code ("" on success).
func Classify(err error) (outcome, code string) {
	if err == nil {
		return OutcomeSuccess, ""
	}
	var c classified
	switch {
	case errors.As(err, &c) && c.BusinessError():
		return OutcomeBusinessError, c.ErrorCode()
	case errors.As(err, &c):
		return OutcomeError, c.ErrorCode()
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeError, "timeout"
	case errors.Is(err, context.Canceled):
		return OutcomeError, "canceled"
	}
	return OutcomeError, "internal"
}

// Attribute keys set on endpoint spans.
const (
	attrOutcome   = attribute.Key("glasshouse.outcome")
	attrErrorCode = attribute.Key("glasshouse.error.code")
)

// Tracing returns an endpoint middleware that wraps each call in a span
// named name. A business error is recorded as attributes with its code and
// leaves the span's status unset: answering "out of stock" is the endpoint
// working. Any other error marks the span failed.
func Tracing(tracer trace.Tracer, name string, kind trace.SpanKind) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(kind))
			defer span.End()
			response, err := next(ctx, request)
			outcome, code := Classify(err)
			span.SetAttributes(attrOutcome.String(outcome))
			if err != nil {
				span.SetAttributes(attrErrorCode.String(code))
				if outcome == OutcomeError {
					span.RecordError(err)
					span.SetStatus(codes.Error, err.Error())
				}
			}
			return response, err
		}
	}
}

// endpointMetrics is the RED histogram shared by every endpoint of a
// process: rate and errors come from its _count by outcome, duration from
// its buckets.
type endpointMetrics struct {
	duration *prometheus.HistogramVec
}

func newEndpointMetrics(reg prometheus.Registerer) *endpointMetrics {
	m := &endpointMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "glasshouse_endpoint_request_duration_seconds",
			Help: "Duration of endpoint calls, by service, endpoint, outcome (success, business_error, error) and the transport the call came in over (http, grpc).",
			// From 1 ms (a cached read) to 10 s (a checkout waiting out
			// every retry): the range a user can feel.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service", "endpoint", "outcome", "transport"}),
	}
	reg.MustRegister(m.duration)
	return m
}

// Metrics returns an endpoint middleware that observes each call's duration
// in the RED histogram, with the trace ID as an exemplar so a slow bucket
// in Grafana links to a trace in Jaeger.
func (m *endpointMetrics) Metrics(service, name string) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			start := time.Now()
			response, err := next(ctx, request)
			outcome, _ := Classify(err)
			obs := m.duration.WithLabelValues(service, name, outcome, TransportOf(ctx))
			seconds := time.Since(start).Seconds()
			if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
				obs.(prometheus.ExemplarObserver).ObserveWithExemplar(seconds, prometheus.Labels{"trace_id": sc.TraceID().String()})
			} else {
				obs.Observe(seconds)
			}
			return response, err
		}
	}
}

// Logging returns an endpoint middleware that logs one line per call with
// its duration and outcome. Business errors are logged at Info (they are
// answers), other errors at Error.
func Logging(logger *slog.Logger, name string) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			start := time.Now()
			response, err := next(ctx, request)
			outcome, code := Classify(err)
			level := slog.LevelInfo
			if outcome == OutcomeError {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("endpoint", name),
				slog.String("transport", TransportOf(ctx)),
				slog.String("outcome", outcome),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			}
			if err != nil {
				attrs = append(attrs, slog.String("code", code), slog.String("error", err.Error()))
			}
			logger.LogAttrs(ctx, level, "endpoint call", attrs...)
			return response, err
		}
	}
}

// ServerEndpoint returns the standard middleware stack for a server-side
// endpoint named name: tracing outermost, so the metrics exemplar and the
// log line carry the endpoint span's IDs.
func (t Telemetry) ServerEndpoint(name string) endpoint.Middleware {
	return endpoint.Chain(
		Tracing(t.Tracer("glasshouse/endpoint"), t.Service+"."+name, trace.SpanKindInternal),
		t.endpoints.Metrics(t.Service, name),
		Logging(t.Logger, name),
	)
}

// ClientEndpoint returns the middleware stack for a call to endpoint name
// of the remote service: a client span named like the server's endpoint
// span ("inventory.Reserve"), so the caller's and callee's sides line up in
// a trace.
func (t Telemetry) ClientEndpoint(remote, name string) endpoint.Middleware {
	return Tracing(t.Tracer("glasshouse/client"), remote+"."+name, trace.SpanKindClient)
}
