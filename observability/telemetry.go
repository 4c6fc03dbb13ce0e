// Package observability sets up traces, metrics and logs for one glasshouse
// process and provides the go-kit endpoint middlewares and HTTP
// instrumentation that every service shares.
//
// Nothing here is global: Setup returns a Telemetry value holding the
// tracer provider, the propagator, a Prometheus registry and a logger, and
// every piece of code that needs one of them is handed it. Two services can
// therefore run in one test process without their metrics colliding.
package observability

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config describes the process being instrumented.
type Config struct {
	ServiceName    string
	ServiceVersion string
	// InstanceID identifies this replica (service.instance.id); it should
	// match the instance ID registered in Consul.
	InstanceID string
	// Getenv reads the standard OTEL_* variables; nil means os.Getenv.
	Getenv func(string) string
	// LogOutput receives JSON log lines; nil means os.Stderr.
	LogOutput io.Writer
	// LogLevel is the minimum level logged; nil means Info.
	LogLevel slog.Leveler
	// SpanProcessors are added to the tracer provider next to the OTLP
	// exporter. Tests pass an in-memory recorder here.
	SpanProcessors []sdktrace.SpanProcessor
}

// Telemetry is what a process needs to observe itself.
type Telemetry struct {
	Service        string
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// Registry is this process's Prometheus registry; it is never the
	// global default registry.
	Registry *prometheus.Registry

	endpoints *endpointMetrics
	spans     *spanCounter
}

// Setup builds the Telemetry for one process. The returned shutdown flushes
// buffered spans; call it last, after the server has drained.
//
// Tracing honours the standard OTLP variables: OTEL_EXPORTER_OTLP_ENDPOINT
// or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT turn the OTLP/HTTP exporter on,
// OTEL_SDK_DISABLED=true turns tracing off, OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES refine the resource, OTEL_TRACES_SAMPLER picks
// the sampler. Without an endpoint spans are still created (so logs carry
// trace IDs and the X-Trace-Id header works) but not exported.
func Setup(ctx context.Context, cfg Config) (Telemetry, func(context.Context) error, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if cfg.ServiceName == "" {
		return Telemetry{}, nil, errors.New("observability: ServiceName is required")
	}
	if cfg.InstanceID == "" {
		host, _ := os.Hostname()
		cfg.InstanceID = fmt.Sprintf("%s-%s-%d", cfg.ServiceName, host, os.Getpid())
	}
	out := cfg.LogOutput
	if out == nil {
		out = os.Stderr
	}
	level := cfg.LogLevel
	if level == nil {
		level = slog.LevelInfo
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	spans := newSpanCounter(reg)

	tel := Telemetry{
		Service:    cfg.ServiceName,
		Registry:   reg,
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		endpoints:  newEndpointMetrics(reg),
		spans:      spans,
	}
	tel.Logger = slog.New(NewTraceHandler(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level}))).
		With("service", cfg.ServiceName, "instance", cfg.InstanceID)

	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		tel.TracerProvider = noop.NewTracerProvider()
		return tel, func(context.Context) error { return nil }, nil
	}

	res, err := resource.New(ctx,
		resource.WithAttributes(
			semconv.ServiceName(cfg.ServiceName),
			semconv.ServiceVersion(cfg.ServiceVersion),
			semconv.ServiceInstanceID(cfg.InstanceID),
		),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
	)
	if err != nil {
		return Telemetry{}, nil, fmt.Errorf("observability: resource: %w", err)
	}

	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if endpoint := otlpTracesEndpoint(getenv); endpoint != "" {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
		if err != nil {
			return Telemetry{}, nil, fmt.Errorf("observability: OTLP exporter for %s: %w", endpoint, err)
		}
		// The batch processor's queue is bounded (2048 spans by default):
		// when the collector is down or slow, spans are dropped and
		// counted (ended against exported), never buffered without limit.
		opts = append(opts, sdktrace.WithSpanProcessor(spans.processor()), sdktrace.WithBatcher(spans.wrap(exp)))
	}
	for _, sp := range cfg.SpanProcessors {
		opts = append(opts, sdktrace.WithSpanProcessor(sp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	tel.TracerProvider = tp
	return tel, tp.Shutdown, nil
}

// otlpTracesEndpoint returns the full OTLP/HTTP traces URL from the
// standard variables, or "" when none is set.
func otlpTracesEndpoint(getenv func(string) string) string {
	if u := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); u != "" {
		return u
	}
	if u := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); u != "" {
		return strings.TrimRight(u, "/") + "/v1/traces"
	}
	return ""
}

// Tracer returns a named tracer from this process's provider.
func (t Telemetry) Tracer(name string) trace.Tracer {
	return t.TracerProvider.Tracer(name)
}

// MetricsHandler serves the registry in the Prometheus text format, or in
// OpenMetrics when the scraper asks for it (exemplars travel only there).
func (t Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		Registry:          t.Registry,
	})
}
