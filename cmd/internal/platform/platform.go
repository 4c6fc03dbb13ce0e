// Package platform is the part of every service's main that is the same
// for all of them: listen, set up telemetry, register in Consul, serve
// the API on the public listener and health, metrics, profiles and admin
// routes on the admin listener, and shut down in order. A main parses its
// own flags, builds its store and service, and hands its routes to Serve.
//
// The admin listener defaults to the public one's host and its port +
// 1000: gateway 9080, users 9081, inventory 9082, orders 9083, payments
// 9084 (Prometheus keeps 9090); a second replica on 8182 gets 9182, and a
// public port 0 (any free port) gets a free admin port too.
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
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/storage"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
	consul "github.com/hashicorp/consul/api"
	oklog "github.com/oklog/run"
)

// Flags are the settings every service has.
type Flags struct {
	listen    *string
	admin     *string
	grpc      *string // nil for a service that serves no gRPC
	drain     *time.Duration
	faults    *bool
	discovery Discovery
}

// CommonFlags defines -listen (default: the service's port in the
// catalogue, services/catalog.go), -admin-listen (default: the -listen
// host, its port + services.AdminOffset), -drain-timeout and the Consul
// flags on f.
func CommonFlags(f *config.Flags, service string) Flags {
	return CommonFlagsDraining(f, service, 10*time.Second)
}

// CommonFlagsDraining is CommonFlags with another default drain time, for
// a service whose requests may take longer than the usual 10s.
func CommonFlagsDraining(f *config.Flags, service string, drain time.Duration) Flags {
	spec, ok := services.Lookup(service)
	if !ok {
		panic(fmt.Sprintf("platform: no service %q in services/catalog.go", service))
	}
	flags := Flags{
		listen: f.String("listen", "LISTEN_ADDR", ":"+strconv.Itoa(spec.Port), "address to serve the public API on"),
		admin: f.String("admin-listen", "ADMIN_LISTEN_ADDR", "",
			"address to serve /metrics, /healthz, /readyz, /debug/pprof/ and admin routes on, never published at the edge (default: the -listen host, its port + 1000)"),
		drain:     f.Duration("drain-timeout", "DRAIN_TIMEOUT", drain, "how long in-flight requests get to finish on shutdown"),
		faults:    f.Bool("fault-injection", "FAULT_INJECTION", false, "honour faults requested in a request's baggage (chaos tests only; never in production)"),
		discovery: DiscoveryFlags(f),
	}
	if spec.GRPC {
		flags.grpc = f.String("grpc-listen", "GRPC_LISTEN_ADDR", "",
			"address to serve the API over gRPC on, registered in Consul as "+spec.GRPCName()+" (default: the -listen host, its port - 1000)")
	}
	return flags
}

// AdminListenAddr is the admin address for a public listen address such
// as ":8084" when -admin-listen is not set: the same host, the port +
// services.AdminOffset (":9084"); port 0 stays 0, so a test's free public port
// gets a free admin port rather than a fixed one.
func AdminListenAddr(listen string) (string, error) {
	return offsetAddr(listen, services.AdminOffset, "-admin-listen / ADMIN_LISTEN_ADDR")
}

// GRPCListenAddr is the gRPC address for a public listen address when
// -grpc-listen is not set: the same host, the port + services.GRPCOffset
// (":8082" serves gRPC on ":7082"); port 0 stays 0.
func GRPCListenAddr(listen string) (string, error) {
	return offsetAddr(listen, services.GRPCOffset, "-grpc-listen / GRPC_LISTEN_ADDR")
}

func offsetAddr(listen string, offset int, setting string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("-listen / LISTEN_ADDR %q: %w", listen, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("-listen / LISTEN_ADDR %q: set %s too, its port is derived only from a numeric port", listen, setting)
	}
	if n == 0 {
		return net.JoinHostPort(host, "0"), nil
	}
	if n+offset < 1 || n+offset > 65535 {
		return "", fmt.Errorf("-listen / LISTEN_ADDR %q: port %+d is no port; set %s", listen, offset, setting)
	}
	return net.JoinHostPort(host, strconv.Itoa(n+offset)), nil
}

// DrainTimeout is the configured drain time.
func (f Flags) DrainTimeout() time.Duration { return *f.drain }

// Process is one running service instance's shared machinery.
type Process struct {
	Telemetry observability.Telemetry
	Health    *observability.Health
	// Consul is the agent client, for registration and for finding peers.
	Consul *consul.Client

	// PublicEndpoint marks the platform's edge (traces start there); set
	// it before Serve. It does not publish health or metrics: every
	// service, the gateway too, serves those on its admin listener only.
	PublicEndpoint bool
	// AdminRoutes are the service's own admin routes (payments' fault
	// knobs), served on the admin listener beside health and metrics;
	// set it before Serve, or leave it nil.
	AdminRoutes http.Handler
	// GRPC is what a service that serves gRPC (services.Spec.GRPC) serves
	// on its gRPC listener: its API over the same endpoints as its HTTP
	// routes (GRPCAPI.Service). Set it before Serve.
	GRPC []transport.GRPCService

	service           string
	faults            bool
	ln                net.Listener
	adminLn           net.Listener
	grpcLn            net.Listener // nil when the service serves no gRPC
	registration      transport.Registration
	grpcRegistration  transport.Registration
	server            transport.ServerConfig
	shutdownTelemetry func(context.Context) error
	remotes           []*transport.Remote
	closers           []func() error // stores, closed in reverse order

	// admin is the admin listener's server once it serves: from Serve,
	// or earlier, from OpenStore while it waits for the database.
	// adminRoutes is AdminRoutes as Serve found it; until then the
	// service's own admin routes are 404s.
	admin       *runningServer
	adminRoutes atomic.Pointer[http.Handler]
	served      bool // Serve ran, and stopped the admin server itself
}

// runningServer is a transport.Server whose Run is under way in a
// goroutine of its own; wait returns what Run returned.
type runningServer struct {
	*transport.Server
	done chan struct{}
	err  error
}

func (r *runningServer) wait() error {
	<-r.done
	return r.err
}

// serveAdmin starts the admin server unless it is already serving:
// /healthz, /readyz, /metrics and profiles, and, once Serve has set
// them, AdminRoutes. It may start before Serve, so that a process waiting
// for its database already answers its probes (/readyz failing, saying
// why) and can be scraped; it is only ever called from the goroutine
// that runs Start, OpenStore and Serve.
func (p *Process) serveAdmin() *runningServer {
	if p.admin != nil {
		return p.admin
	}
	// The admin drain is short: nothing waits on it but a scrape, a probe
	// or a profile, and it begins only after the public drain has ended.
	cfg := transport.ServerConfig{Name: "admin", DrainTimeout: 2 * time.Second}
	routes := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := p.adminRoutes.Load()
		if h == nil || *h == nil {
			transport.NewRouter().ServeHTTP(w, r) // none (yet): a 404 problem
			return
		}
		(*h).ServeHTTP(w, r)
	})
	srv := transport.NewServer(p.adminLn, transport.AdminHandler(p.Telemetry, p.Health, routes), p.Telemetry, p.Health, cfg)
	p.admin = &runningServer{Server: srv, done: make(chan struct{})}
	go func() {
		defer close(p.admin.done)
		p.admin.err = srv.Run()
	}()
	return p.admin
}

// Start listens (first: the port names the instance in Consul and in
// telemetry), sets up telemetry and connects to Consul. Call Close when
// done, after everything that logs or traces has stopped.
func (f Flags) Start(ctx context.Context, service, version string, getenv func(string) string, stdout io.Writer) (*Process, error) {
	ln, err := transport.Listen(*f.listen, "-listen / LISTEN_ADDR")
	if err != nil {
		return nil, err
	}
	adminAddr := *f.admin
	if adminAddr == "" {
		if adminAddr, err = AdminListenAddr(*f.listen); err != nil {
			return nil, errors.Join(err, ln.Close())
		}
	}
	adminLn, err := transport.Listen(adminAddr, "-admin-listen / ADMIN_LISTEN_ADDR")
	if err != nil {
		return nil, errors.Join(err, ln.Close())
	}
	var grpcLn net.Listener
	if f.grpc != nil {
		grpcAddr := *f.grpc
		if grpcAddr == "" {
			if grpcAddr, err = GRPCListenAddr(*f.listen); err != nil {
				return nil, errors.Join(err, ln.Close(), adminLn.Close())
			}
		}
		if grpcLn, err = transport.Listen(grpcAddr, "-grpc-listen / GRPC_LISTEN_ADDR"); err != nil {
			return nil, errors.Join(err, ln.Close(), adminLn.Close())
		}
	}
	// closeAll closes what is open when the start fails from here on.
	closeAll := func(err error) error {
		errList := []error{err, ln.Close(), adminLn.Close()}
		if grpcLn != nil {
			errList = append(errList, grpcLn.Close())
		}
		return errors.Join(errList...)
	}
	registration := f.discovery.Registration(service, version, ln, adminLn)
	tel, shutdown, err := observability.Setup(ctx, observability.Config{
		ServiceName:    service,
		ServiceVersion: version,
		InstanceID:     registration.ID,
		Getenv:         getenv,
		LogOutput:      stdout,
	})
	if err != nil {
		return nil, closeAll(err)
	}
	client, err := transport.NewConsulClient(*f.discovery.ConsulAddr)
	if err != nil {
		return nil, closeAll(errors.Join(err, shutdown(ctx)))
	}
	if *f.faults {
		tel.Logger.Warn("fault injection is ENABLED: requests may ask for failures in their baggage")
	}
	p := &Process{
		Telemetry:         tel,
		Health:            observability.NewHealth(),
		Consul:            client,
		service:           service,
		faults:            *f.faults,
		ln:                ln,
		adminLn:           adminLn,
		grpcLn:            grpcLn,
		registration:      registration,
		server:            transport.ServerConfig{DrainTimeout: *f.drain},
		shutdownTelemetry: shutdown,
	}
	if grpcLn != nil {
		p.grpcRegistration = f.discovery.GRPCRegistration(registration, grpcLn)
	}
	return p, nil
}

// Addr is the public listener's address.
func (p *Process) Addr() net.Addr { return p.ln.Addr() }

// AdminAddr is the admin listener's address.
func (p *Process) AdminAddr() net.Addr { return p.adminLn.Addr() }

// GRPCAddr is the gRPC listener's address, or nil for a service that
// serves no gRPC.
func (p *Process) GRPCAddr() net.Addr {
	if p.grpcLn == nil {
		return nil
	}
	return p.grpcLn.Addr()
}

// EndpointMiddleware is the middleware for the endpoint of the service's
// named method: tracing, RED metrics and logging, then the per-request
// faults of chaos tests when they are enabled, and innermost the
// database's errors: one that says the database was lost answers 503
// unavailable, naming the database as the upstream (storage.Unavailable),
// instead of 500, so a caller neither retries it elsewhere nor counts it
// against this instance's breaker.
func (p *Process) EndpointMiddleware(name string) endpoint.Middleware {
	return endpoint.Chain(p.Telemetry.ServerEndpoint(name), transport.BaggageFaults(p.faults, p.service, name), databaseErrors)
}

func databaseErrors(next endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req any) (any, error) {
		resp, err := next(ctx, req)
		return resp, storage.Unavailable(err)
	}
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

// Close stops the admin server if Serve did not (a start that failed or
// was cancelled while waiting for the database), stops watching remotes,
// closes the stores and flushes buffered spans, joining any failure into
// *err.
//
// Spans that could not be flushed are logged, not joined: the exit status
// says whether the service stopped cleanly (requests drained, stores
// closed, Consul left), and spans are best effort throughout (a full
// export queue drops them under load too). A trace collector that is slow
// or gone at shutdown must not make a clean stop look like a crash.
func (p *Process) Close(ctx context.Context, err *error) {
	if errors.Is(*err, errStoppedStarting) {
		*err = nil // told to stop before it served: a clean stop
	}
	if p.admin != nil && !p.served {
		p.admin.Stop(nil)
		*err = errors.Join(*err, p.admin.wait())
	}
	for _, r := range p.remotes {
		r.Close()
	}
	*err = errors.Join(*err, p.closeAll())
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if ferr := p.shutdownTelemetry(flushCtx); ferr != nil {
		p.Telemetry.Logger.Error("spans not flushed at shutdown; some may be lost", "error", ferr)
	}
	*err = errors.Join(*err, ignoreClosed(p.ln.Close()), ignoreClosed(p.adminLn.Close()))
	if p.grpcLn != nil {
		*err = errors.Join(*err, ignoreClosed(p.grpcLn.Close()))
	}
}

// Serve serves routes on the public listener and health, metrics,
// profiles and AdminRoutes on the admin listener, registered in Consul,
// and runs each background task, until ctx ends or one of them fails.
// Then it marks /readyz failing, deregisters, drains in-flight public
// requests and stops the tasks; the admin listener stops last, so that
// until then /readyz answers "draining" and /metrics can still be scraped.
// It returns every error on the way.
func (p *Process) Serve(ctx context.Context, routes http.Handler, background ...func(context.Context) error) error {
	p.server.Public = p.PublicEndpoint
	srv := transport.NewServer(p.ln, transport.PublicHandler(p.Telemetry, routes, p.server), p.Telemetry, p.Health, p.server)
	adminRoutes := p.AdminRoutes
	p.adminRoutes.Store(&adminRoutes)
	admin := p.serveAdmin()
	p.served = true
	registrar := transport.NewRegistrar(p.Consul, p.registration, p.Telemetry.Logger, p.Telemetry.Registry)

	var g oklog.Group
	stopGRPC := func(error) {} // what the admin server waits for, besides the public one
	if p.grpcLn != nil {
		if len(p.GRPC) == 0 {
			return fmt.Errorf("%s serves gRPC (services/catalog.go) but its main set no Process.GRPC", p.service)
		}
		grpcSrv := transport.NewGRPCServer(p.grpcLn, p.Telemetry, p.Health, transport.GRPCServerConfig{DrainTimeout: p.server.DrainTimeout}, p.GRPC...)
		grpcRegistrar := transport.NewRegistrar(p.Consul, p.grpcRegistration, p.Telemetry.Logger, p.Telemetry.Registry)
		// The health service says NOT_SERVING first, then both
		// registrations leave Consul; the gRPC calls in flight drain
		// after the HTTP ones.
		srv.OnShutdown(func(context.Context) error { grpcSrv.NotServing(); return nil })
		srv.OnShutdown(grpcRegistrar.Deregister)
		g.Add(grpcRegistrar.Run, grpcRegistrar.Stop)
		stopGRPC = func(err error) { srv.Stop(err); grpcSrv.Stop(err) }
		g.Add(grpcSrv.Run, stopGRPC)
	}
	// Leave Consul before draining, so callers stop choosing this
	// instance while it still answers the requests in flight.
	srv.OnShutdown(registrar.Deregister)
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
	// The admin server stops after the public one (and the gRPC one) has
	// drained, whatever order the group interrupts in: each Stop runs
	// once, and a second call waits for the first to finish.
	g.Add(admin.wait, func(err error) { srv.Stop(err); stopGRPC(err); admin.Stop(err) })
	// oklog/run returns only the error that ended the group; the
	// shutdown sequences' own errors are joined so none is lost.
	return errors.Join(g.Run(), srv.ShutdownErr(), admin.ShutdownErr())
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
