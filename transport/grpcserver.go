package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// GRPCServerConfig holds the gRPC server's limits; zero values mean the
// defaults documented on each field.
type GRPCServerConfig struct {
	// MaxMessageBytes caps a request message, as MaxBodyBytes caps an
	// HTTP body (default 1 MiB; RESOURCE_EXHAUSTED past it).
	MaxMessageBytes int
	// DrainTimeout bounds graceful shutdown: calls in flight get this
	// long to finish once the server stops taking new ones (default 10s).
	DrainTimeout time.Duration
}

func (c GRPCServerConfig) withDefaults() GRPCServerConfig {
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = defaultMaxBodyBytes
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = defaultDrainTimeout
	}
	return c
}

// GRPCServer serves a service's rpcs beside its HTTP listener, shaped
// for an oklog/run group like Server: g.Add(srv.Run, srv.Stop). Every
// call passes, outermost first, through:
//
//	otelgrpc's stats handler   the SERVER span, continuing the caller's trace
//	panic recovery             INTERNAL and a log line, not a dropped stream
//	the deadline rule          a call without a deadline is INVALID_ARGUMENT
//	the message's decoding     malformed, oversized or unknown fields refused
//	the endpoint middlewares   the ones HTTP uses: tracing, RED metrics
//	                           (transport="grpc"), logging, faults
//
// It also serves grpc.health.v1, the standard health service, which
// Consul's GRPC check asks: SERVING while the instance's /readyz passes,
// NOT_SERVING once it fails or the instance drains.
type GRPCServer struct {
	ln     net.Listener
	srv    *grpc.Server
	health *grpcHealth
	logger *slog.Logger
	drain  time.Duration

	stopOnce sync.Once
}

// NewGRPCServer prepares a server for services on ln; ready is the
// process's readiness, which the health service reports.
func NewGRPCServer(ln net.Listener, tel observability.Telemetry, ready *observability.Health, cfg GRPCServerConfig, services ...GRPCService) *GRPCServer {
	cfg = cfg.withDefaults()
	health := &grpcHealth{ready: ready, names: map[string]bool{"": true}}
	srv := grpc.NewServer(
		grpc.StatsHandler(tel.GRPCServerHandler()),
		grpc.ChainUnaryInterceptor(recoverGRPC(tel.Logger), requireDeadline),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		// An idle connection is closed after 2 minutes, like HTTP's idle
		// keep-alive connections; callers may ping every 5s or more
		// slowly to find a dead peer (the client pings every 10s).
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 2 * time.Minute}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second}),
		// Bounds what one connection may hold open at once.
		grpc.MaxConcurrentStreams(1000),
		grpc.ConnectionTimeout(5*time.Second),
	)
	for _, s := range services {
		srv.RegisterService(s.desc, nil)
		health.names[s.Name()] = true
	}
	healthpb.RegisterHealthServer(srv, health)
	return &GRPCServer{ln: ln, srv: srv, health: health, logger: tel.Logger, drain: cfg.DrainTimeout}
}

// Addr is the address the server listens on.
func (s *GRPCServer) Addr() net.Addr { return s.ln.Addr() }

// Run serves until Stop.
func (s *GRPCServer) Run() error {
	s.logger.Info("serving gRPC", "listener", "grpc", "addr", s.ln.Addr().String())
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve gRPC: %w", err)
	}
	return nil
}

// NotServing turns the health service to NOT_SERVING for good: the first
// step of shutdown, before the instance leaves Consul.
func (s *GRPCServer) NotServing() { s.health.shutdown.Store(true) }

// Stop stops taking calls and lets those in flight finish within the
// drain timeout, then closes what is left; its argument is ignored. It
// runs once: a second call waits for the first to finish.
func (s *GRPCServer) Stop(error) { s.stopOnce.Do(s.stop) }

func (s *GRPCServer) stop() {
	s.NotServing()
	start := time.Now()
	done := make(chan struct{})
	go func() { s.srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.drain):
		s.logger.Warn("gRPC calls still running after the drain timeout; closing them", "drain_timeout", s.drain.String())
		s.srv.Stop()
		<-done
	}
	s.logger.Info("gRPC server stopped", "listener", "grpc", "drain_ms", time.Since(start).Milliseconds())
}

// requireDeadline refuses a call that carries no deadline: every caller
// in glasshouse bounds its calls, and one that does not would hold a
// server's resources as long as it likes.
func requireDeadline(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		return nil, GRPCStatus(ctx, errs.E(errs.Invalid, "deadline_required", "%s was called without a deadline: set one on the call's context", info.FullMethod)).Err()
	}
	return handler(ctx, req)
}

// recoverGRPC turns a panic into an INTERNAL status and an error log line
// with the trace ID and the stack, as Recover does for HTTP.
func recoverGRPC(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			trace.SpanFromContext(ctx).RecordError(fmt.Errorf("panic: %v", v))
			logger.ErrorContext(ctx, "panic serving request", "method", info.FullMethod, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			resp, err = nil, GRPCStatus(ctx, errs.E(errs.Internal, "", "internal error")).Err()
		}()
		return handler(ctx, req)
	}
}

// grpcHealth is grpc.health.v1's Check over the process's readiness: ""
// (the whole server) and each registered service are SERVING while
// /readyz would pass.
type grpcHealth struct {
	healthpb.UnimplementedHealthServer
	ready    *observability.Health
	names    map[string]bool
	shutdown atomic.Bool
}

func (h *grpcHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if !h.names[req.GetService()] {
		return nil, status.Errorf(codes.NotFound, "no service %q here", req.GetService())
	}
	if h.shutdown.Load() || h.ready.Ready(ctx) != nil {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}
