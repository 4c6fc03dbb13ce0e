package observability

import (
	"context"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc/stats"
)

// Transports an endpoint is served over, as in the RED histogram's
// transport label.
const (
	TransportHTTP = "http"
	TransportGRPC = "grpc"
)

type transportKey struct{}

// WithTransport marks ctx as a request that arrived over transport: the
// server side of each transport sets it, so the one endpoint middleware
// stack (ServerEndpoint) labels its metrics and log lines by the listener
// a call came in on. A context without a mark is HTTP.
func WithTransport(ctx context.Context, transport string) context.Context {
	return context.WithValue(ctx, transportKey{}, transport)
}

// TransportOf returns the transport ctx's request arrived over.
func TransportOf(ctx context.Context) string {
	if t, ok := ctx.Value(transportKey{}).(string); ok {
		return t
	}
	return TransportHTTP
}

// GRPCServerHandler instruments a gRPC server as HTTPHandler does an HTTP
// one: each call continues the caller's trace (W3C traceparent and
// baggage, carried in the call's metadata) in a SERVER span named after
// the method ("glasshouse.inventory.v1.Inventory/Reserve"). Metrics are
// left to the endpoint RED histogram, as on HTTP. Health checks are not
// traced: Consul asks every few seconds.
func (t Telemetry) GRPCServerHandler() stats.Handler {
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.TracerProvider),
		otelgrpc.WithPropagators(t.Propagator),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
			return info.FullMethodName != "/grpc.health.v1.Health/Check" && info.FullMethodName != "/grpc.health.v1.Health/Watch"
		}),
	)
}

// GRPCClientHandler instruments a gRPC client connection as HTTPTransport
// does an HTTP client: each attempt is a CLIENT span, and the trace
// context and baggage travel in the call's metadata, so the callee's
// server span is its child.
func (t Telemetry) GRPCClientHandler() stats.Handler {
	return otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.TracerProvider),
		otelgrpc.WithPropagators(t.Propagator),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
	)
}
