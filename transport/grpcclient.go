package transport

import (
	"fmt"
	"time"

	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/go-kit/kit/endpoint"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// NewGRPCConn returns a connection to the one gRPC server at addr
// ("host:port"), as NewHTTPClient is the client for HTTP peers: traced
// (otelgrpc's stats handler: a CLIENT span per attempt, the trace context
// and baggage in the metadata), with bounded messages both ways, and a
// reconnect backoff short enough that an instance restarted on the same
// port is reached again within a second. Dialing happens in the
// background; the first call waits for it at most its own deadline.
//
// The connection is plaintext, as the HTTP calls between services are:
// encrypting traffic inside the platform is the network's job (a mesh,
// or a NetworkPolicy'd cluster network), not each service's.
func NewGRPCConn(addr string, tel observability.Telemetry, timeout time.Duration) (*grpc.ClientConn, error) {
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(tel.GRPCClientHandler()),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxResponseBytes),
			grpc.MaxCallSendMsgSize(defaultMaxBodyBytes),
		),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: timeout,
		}),
		// A peer that vanished without closing its connections (a
		// network partition, a frozen host) is found within 12s of the
		// last call, not when the kernel gives up on the socket.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 2 * time.Second}),
	)
	if err != nil {
		return nil, fmt.Errorf("gRPC connection to %s: %w", addr, err)
	}
	return conn, nil
}

// NewGRPCDirectFactory is NewDirectFactory over gRPC: calls to the one
// instance at addr, on one connection, with a timeout on each call
// (zero: DefaultCallTimeout) and a client span per call, but no
// discovery, breaker or retry; for tools and tests. Close the connection
// when done.
func NewGRPCDirectFactory(addr string, tel observability.Telemetry, timeout time.Duration) (GRPCClientFactory, *grpc.ClientConn, error) {
	conn, err := NewGRPCConn(addr, tel, timeout)
	if err != nil {
		return nil, nil, err
	}
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	return func(route ClientRoute, call func(*grpc.ClientConn) endpoint.Endpoint) endpoint.Endpoint {
		return tel.ClientEndpoint(route.Service, route.Name)(attemptTimeout(timeout)(call(conn)))
	}, conn, nil
}
