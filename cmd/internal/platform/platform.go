// Package platform is the part of every service's main that is the same
// for all of them: listen, set up telemetry, register in Consul, serve
// with health and metrics, and shut down in order. A main parses its own
// flags, builds its store and service, and hands its routes to Serve.
package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
	consul "github.com/hashicorp/consul/api"
	oklog "github.com/oklog/run"
)

// Flags are the settings every service has.
type Flags struct {
	listen    *string
	drain     *time.Duration
	faults    *bool
	discovery Discovery
}

// CommonFlags defines -listen (default defaultListen), -drain-timeout and
// the Consul flags on f.
func CommonFlags(f *config.Flags, defaultListen string) Flags {
	return CommonFlagsDraining(f, defaultListen, 10*time.Second)
}

// CommonFlagsDraining is CommonFlags with another default drain time, for
// a service whose requests may take longer than the usual 10s.
func CommonFlagsDraining(f *config.Flags, defaultListen string, drain time.Duration) Flags {
	return Flags{
		listen:    f.String("listen", "LISTEN_ADDR", defaultListen, "address to serve HTTP on"),
		drain:     f.Duration("drain-timeout", "DRAIN_TIMEOUT", drain, "how long in-flight requests get to finish on shutdown"),
		faults:    f.Bool("fault-injection", "FAULT_INJECTION", false, "honour faults requested in a request's baggage (chaos tests only; never in production)"),
		discovery: DiscoveryFlags(f),
	}
}

// DrainTimeout is the configured drain time.
func (f Flags) DrainTimeout() time.Duration { return *f.drain }

// Process is one running service instance's shared machinery.
type Process struct {
	Telemetry observability.Telemetry
	Health    *observability.Health
	// Consul is the agent client, for registration and for finding peers.
	Consul *consul.Client

	// PublicEndpoint marks the platform's edge; set it before Serve.
	PublicEndpoint bool

	service           string
	faults            bool
	ln                net.Listener
	registration      transport.Registration
	server            transport.ServerConfig
	shutdownTelemetry func(context.Context) error
	remotes           []*transport.Remote
}

// Start listens (first: the port names the instance in Consul and in
// telemetry), sets up telemetry and connects to Consul. Call Close when
// done, after everything that logs or traces has stopped.
func (f Flags) Start(ctx context.Context, service, version string, getenv func(string) string, stdout io.Writer) (*Process, error) {
	ln, err := transport.Listen(*f.listen, "-listen / LISTEN_ADDR")
	if err != nil {
		return nil, err
	}
	registration := f.discovery.Registration(service, version, ln)
	tel, shutdown, err := observability.Setup(ctx, observability.Config{
		ServiceName:    service,
		ServiceVersion: version,
		InstanceID:     registration.ID,
		Getenv:         getenv,
		LogOutput:      stdout,
	})
	if err != nil {
		return nil, errors.Join(err, ln.Close())
	}
	client, err := transport.NewConsulClient(*f.discovery.ConsulAddr)
	if err != nil {
		return nil, errors.Join(err, ln.Close(), shutdown(ctx))
	}
	if *f.faults {
		tel.Logger.Warn("fault injection is ENABLED: requests may ask for failures in their baggage")
	}
	return &Process{
		Telemetry:         tel,
		Health:            observability.NewHealth(),
		Consul:            client,
		service:           service,
		faults:            *f.faults,
		ln:                ln,
		registration:      registration,
		server:            transport.ServerConfig{DrainTimeout: *f.drain},
		shutdownTelemetry: shutdown,
	}, nil
}

// Endpoint is the middleware for the service's endpoint name: tracing,
// RED metrics and logging, then the per-request faults of chaos tests
// when they are enabled.
func (p *Process) Endpoint(name string) endpoint.Middleware {
	return endpoint.Chain(p.Telemetry.ServerEndpoint(name), transport.BaggageFaults(p.faults, p.service, name))
}

// Remote watches another service in Consul for this process's clients,
// with the default resilience settings unless cfg says otherwise. Close
// stops it.
func (p *Process) Remote(service string, cfg transport.ClientConfig) *transport.Remote {
	cfg.Service = service
	r := transport.NewRemote(p.Consul, cfg, p.Telemetry)
	p.remotes = append(p.remotes, r)
	return r
}

// Close stops watching remotes and flushes buffered spans, joining any
// failure into *err.
func (p *Process) Close(ctx context.Context, err *error) {
	for _, r := range p.remotes {
		r.Close()
	}
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	*err = errors.Join(*err, p.shutdownTelemetry(flushCtx), ignoreClosed(p.ln.Close()))
}

// Serve serves routes (with /healthz, /readyz and /metrics beside them),
// registered in Consul, and runs each background task, until ctx ends or
// one of them fails. Then it deregisters, drains in-flight requests, and
// stops the tasks, returning every error on the way.
func (p *Process) Serve(ctx context.Context, routes http.Handler, background ...func(context.Context) error) error {
	p.server.Public = p.PublicEndpoint
	handler := transport.Handler(p.Telemetry, p.Health, routes, p.server)
	srv := transport.NewServer(p.ln, handler, p.Telemetry, p.Health, p.server)
	registrar := transport.NewRegistrar(p.Consul, p.registration, p.Telemetry.Logger, p.Telemetry.Registry)
	// Leave Consul before draining, so callers stop choosing this
	// instance while it still answers the requests in flight.
	srv.OnShutdown(registrar.Deregister)

	var g oklog.Group
	g.Add(srv.Run, srv.Stop)
	g.Add(registrar.Run, registrar.Stop)
	for _, task := range background {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return task(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { <-ctx.Done(); return nil }, func(error) { cancel() })
	}
	// oklog/run returns only the error that ended the group; the
	// shutdown sequence's own errors are joined so none is lost.
	return errors.Join(g.Run(), srv.ShutdownErr())
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// WaitForFile waits up to within for path to exist: a key that another
// service writes on its first start, say. It says which file it waited
// for when it gives up.
func WaitForFile(ctx context.Context, path string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s", path, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Main runs a service's run function as every main does: cancelled by
// SIGINT or SIGTERM, with the process's arguments, environment and
// stdout, exiting 1 with the error on stderr.
func Main(name string, run func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
