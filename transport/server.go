package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/glasshouse-dev/glasshouse/observability"
)

// ServerConfig holds the HTTP server's limits. Zero values mean the
// defaults documented on each field.
type ServerConfig struct {
	// MaxBodyBytes caps request bodies (default 1 MiB; 413 past it).
	MaxBodyBytes int64
	// DrainTimeout bounds graceful shutdown: in-flight requests get this
	// long to finish after the listener closes (default 10s).
	DrainTimeout time.Duration
	// ReadHeaderTimeout protects against slow-loris clients (default 5s).
	ReadHeaderTimeout time.Duration
	// Public marks the platform's edge (the gateway): traces start here
	// rather than continuing a context sent from outside. It says nothing
	// about health or metrics: those are served on the admin listener of
	// every service, the gateway's included, never on a public one.
	Public bool
	// Name says which listener this is ("public", "admin") in log lines;
	// default "public".
	Name string
}

// hookTimeout bounds the shutdown hooks (deregistration): a Consul that
// does not answer must not keep the process from draining and exiting.
const hookTimeout = 5 * time.Second

const (
	defaultMaxBodyBytes = 1 << 20
	defaultDrainTimeout = 10 * time.Second
	defaultReadHeader   = 5 * time.Second
)

func (c ServerConfig) withDefaults() ServerConfig {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = defaultMaxBodyBytes
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = defaultDrainTimeout
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = defaultReadHeader
	}
	if c.Name == "" {
		c.Name = "public"
	}
	return c
}

// PublicHandler assembles what a service's public listener serves: its
// API routes and nothing else, wrapped (outermost first) in tracing,
// request IDs, panic recovery and the body limit. Health, metrics and
// profiles are not here: an unknown path, /metrics included, gets the
// routes' own 404 problem. Instance addresses, breaker states and trace
// IDs in exemplars are for operators, not for whoever can reach the API.
func PublicHandler(tel observability.Telemetry, routes http.Handler, cfg ServerConfig) http.Handler {
	cfg = cfg.withDefaults()
	h := LimitBody(cfg.MaxBodyBytes, routes)
	h = Recover(tel.Logger, h)
	h = RequestID(h)
	return tel.HTTPHandler(h, cfg.Public)
}

// adminMaxBodyBytes caps bodies on the admin listener: its routes take
// small settings documents (fault knobs), and pprof's symbol lookup a
// list of addresses.
const adminMaxBodyBytes = 64 << 10

// AdminHandler assembles what a service's admin listener serves:
//
//	GET /healthz         liveness
//	GET /readyz          readiness (Consul's check, Kubernetes' probe)
//	GET /metrics         Prometheus
//	GET /debug/pprof/    profiles (net/http/pprof's handlers, registered
//	                     here by hand; the package also adds them to
//	                     http.DefaultServeMux, which nothing here serves)
//	anything else        the service's admin routes, e.g. payments'
//	                     /admin/faults, or a 404 problem when it has none
//
// Only admin routes are traced: probes, scrapes and profiles would bury
// real traffic.
func AdminHandler(tel observability.Telemetry, health *observability.Health, admin http.Handler) http.Handler {
	internal := http.NewServeMux()
	internal.Handle("GET /healthz", health.LiveHandler())
	internal.Handle("GET /readyz", health.ReadyHandler())
	internal.Handle("GET /metrics", tel.MetricsHandler())
	// pprof.Index also serves the named profiles: /debug/pprof/heap,
	// /debug/pprof/goroutine and the rest.
	internal.HandleFunc("GET /debug/pprof/", pprof.Index)
	internal.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	internal.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	internal.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	internal.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	internal.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if admin == nil {
		admin = NewRouter() // no admin routes: every other path is a 404 problem
	}
	traced := tel.HTTPHandler(RequestID(admin), false)
	// Dispatched by path rather than by a ServeMux in front of the
	// tracing: a mux would set the request's pattern to "/" before
	// otelhttp sees it, and otelhttp would then name every admin span "/".
	dispatch := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isInternal(r.URL.Path) {
			internal.ServeHTTP(w, r)
			return
		}
		traced.ServeHTTP(w, r)
	})
	return Recover(tel.Logger, LimitBody(adminMaxBodyBytes, dispatch))
}

// isInternal tells the paths AdminHandler serves itself from the admin
// routes'.
func isInternal(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return strings.HasPrefix(path, "/debug/pprof/")
}

// Handler is PublicHandler and AdminHandler (without admin routes) in one
// handler, for in-process tests that drive a service's routes and read its
// /metrics or /readyz through one test server. A running service never
// uses it: platform serves the two on separate listeners.
func Handler(tel observability.Telemetry, health *observability.Health, routes http.Handler, cfg ServerConfig) http.Handler {
	admin := AdminHandler(tel, health, nil)
	public := PublicHandler(tel, routes, cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			admin.ServeHTTP(w, r)
		default:
			public.ServeHTTP(w, r)
		}
	})
}

// Listen opens a TCP listener on addr. When the port is taken the error
// says so and names the setting that chooses it (e.g. "-listen /
// LISTEN_ADDR"), instead of a bare "bind: address already in use".
func Listen(addr, setting string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listen on %s: the port is already in use; choose another with %s", addr, setting)
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s (%s): %w", addr, setting, err)
	}
	return ln, nil
}

// Server runs an http.Server with a graceful stop, shaped for an
// oklog/run group: g.Add(srv.Run, srv.Stop). A service runs two: the
// public one, and the admin one, which stops after the public one has
// drained so that /readyz keeps saying "draining" and /metrics can be
// scraped until the end.
//
// Stop runs the shutdown sequence once: mark /readyz failing, run the
// OnShutdown hooks (deregistration from Consul goes there, so no new
// traffic is routed here), then drain in-flight requests within
// DrainTimeout. Run returns only when that sequence has finished, with its
// error, so a failed drain is never silently dropped.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	health *observability.Health
	logger *slog.Logger
	drain  time.Duration
	name   string

	mu    sync.Mutex
	hooks []func(context.Context) error

	stopOnce sync.Once
	stopped  chan struct{}
	stopErr  error
}

// NewServer prepares a server for handler on ln.
func NewServer(ln net.Listener, handler http.Handler, tel observability.Telemetry, health *observability.Health, cfg ServerConfig) *Server {
	cfg = cfg.withDefaults()
	return &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			// Bodies are at most MaxBodyBytes, so 15s to read one is
			// generous; 30s to write covers a checkout that waits out its
			// retries (net/http/pprof extends it for a long profile);
			// idle keep-alive connections are reaped after 2m.
			ReadTimeout:  15 * time.Second,
			WriteTimeout: 30 * time.Second,
			IdleTimeout:  2 * time.Minute,
			ErrorLog:     slog.NewLogLogger(tel.Logger.Handler(), slog.LevelWarn),
		},
		health:  health,
		logger:  tel.Logger,
		drain:   cfg.DrainTimeout,
		name:    cfg.Name,
		stopped: make(chan struct{}),
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// OnShutdown adds a hook run at the start of Stop, before draining.
func (s *Server) OnShutdown(hook func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, hook)
}

// Run serves until Stop, then waits for the drain to finish.
func (s *Server) Run() error {
	// The public listener's line stays "serving HTTP": tests and scripts
	// read the API's address from it.
	msg := "serving HTTP"
	if s.name != "public" {
		msg = "serving " + s.name + " HTTP"
	}
	s.logger.Info(msg, "listener", s.name, "addr", s.ln.Addr().String())
	err := s.srv.Serve(s.ln)
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP (%s listener): %w", s.name, err)
	}
	<-s.stopped
	return s.stopErr
}

// ShutdownErr returns what went wrong during Stop (a failed hook, a drain
// that timed out), or nil. oklog/run reports only the error that ended the
// group, so mains join this to it rather than lose it.
func (s *Server) ShutdownErr() error {
	select {
	case <-s.stopped:
		return s.stopErr
	default:
		return nil
	}
}

// Stop performs the graceful shutdown sequence once; its argument (the
// error that ended the run group) is ignored.
func (s *Server) Stop(error) {
	s.stopOnce.Do(func() {
		defer close(s.stopped)
		s.health.Drain()
		s.mu.Lock()
		hooks := append([]func(context.Context) error(nil), s.hooks...)
		s.mu.Unlock()
		var errList []error
		hookCtx, cancelHooks := context.WithTimeout(context.Background(), hookTimeout)
		for _, hook := range hooks {
			if err := hook(hookCtx); err != nil {
				errList = append(errList, err)
			}
		}
		cancelHooks()
		// The hooks do not eat into the drain: requests in flight get the
		// whole DrainTimeout.
		ctx, cancel := context.WithTimeout(context.Background(), s.drain)
		defer cancel()
		start := time.Now()
		if err := s.srv.Shutdown(ctx); err != nil {
			errList = append(errList, fmt.Errorf("drain HTTP server (%s listener): %w", s.name, err))
			_ = s.srv.Close()
		}
		s.logger.Info("HTTP server stopped", "listener", s.name, "drain_ms", time.Since(start).Milliseconds())
		s.stopErr = errors.Join(errList...)
	})
}
