package observability

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// HTTPHandler instruments a server: it continues the caller's trace (W3C
// traceparent and baggage) or starts one, and ends the server span when the
// response is written. The span is named after the method until a route
// claims it (see Route), so unmatched paths never leak IDs into span names.
//
// HTTP metrics are deliberately left to the endpoint RED histogram, which
// knows business errors from failures; otelhttp's own metrics go to a
// no-op meter.
//
// A public endpoint (the gateway) does not continue a trace context sent
// by the outside world: it starts its own trace and links to the caller's,
// so a client cannot graft our spans onto a trace we never see.
func (t Telemetry) HTTPHandler(next http.Handler, public bool) http.Handler {
	opts := []otelhttp.Option{
		otelhttp.WithTracerProvider(t.TracerProvider),
		otelhttp.WithPropagators(t.Propagator),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern
			}
			return r.Method
		}),
		// Probes and scrapes arrive every few seconds from Consul,
		// Kubernetes and Prometheus; tracing them would bury real traffic.
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}),
	}
	if public {
		opts = append(opts, otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return true }))
	}
	return otelhttp.NewHandler(next, "http.server", opts...)
}

// Route names the current server span after the route pattern that
// matched, e.g. "GET /products/{sku}", and records it as http.route.
func Route(pattern string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		span := trace.SpanFromContext(r.Context())
		span.SetName(pattern)
		span.SetAttributes(semconv.HTTPRoute(pattern))
		next.ServeHTTP(w, r)
	})
}

// HTTPTransport instruments outgoing requests: each attempt is a client
// span, and the trace context travels in the request headers so the
// callee's server span becomes its child.
func (t Telemetry) HTTPTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(t.TracerProvider),
		otelhttp.WithPropagators(t.Propagator),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return "HTTP " + r.Method
		}),
	)
}
