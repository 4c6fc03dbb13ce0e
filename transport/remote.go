package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/go-kit/kit/circuitbreaker"
	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	consulsd "github.com/go-kit/kit/sd/consul"
	"github.com/go-kit/kit/sd/lb"
	httptransport "github.com/go-kit/kit/transport/http"
	consul "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// BreakerConfig sets the circuit breaker kept for each remote instance.
//
// The defaults trip after 5 consecutive failures: few enough that a dead
// instance costs a handful of requests (each retried elsewhere), many
// enough that one slow GC pause does not eject a healthy one. An open
// breaker rejects calls at once for 5s, about two Consul check intervals,
// by which time a dead instance has usually left discovery; then a single
// probe call (half-open) decides between closing and another 5s open.
// Consecutive-failure counts reset every 30s while closed, so rare
// scattered failures never add up to a trip.
type BreakerConfig struct {
	ConsecutiveFailures uint32        // failures in a row that open the breaker (default 5)
	OpenFor             time.Duration // how long it stays open before probing (default 5s)
	HalfOpenProbes      uint32        // calls let through while half-open (default 1)
	Window              time.Duration // closed-state counting window (default 30s)
}

// ClientConfig sets how calls to one remote service behave.
type ClientConfig struct {
	// Service is the remote service's name in Consul.
	Service string
	// CallTimeout bounds each attempt (default DefaultCallTimeout).
	CallTimeout time.Duration
	// Deadline bounds the whole call, retries included (default 3s).
	Deadline time.Duration
	// MaxAttempts bounds attempts per call, first included (default 3).
	MaxAttempts int
	// EmptyGrace is how long the known instances are kept when discovery
	// suddenly reports none, as a restarted Consul agent does until the
	// instances register again (default DefaultEmptyGrace).
	EmptyGrace time.Duration
	Breaker    BreakerConfig
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.Deadline <= 0 {
		c.Deadline = 3 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.EmptyGrace <= 0 {
		c.EmptyGrace = DefaultEmptyGrace
	}
	if c.Breaker.ConsecutiveFailures == 0 {
		c.Breaker.ConsecutiveFailures = 5
	}
	if c.Breaker.OpenFor <= 0 {
		c.Breaker.OpenFor = 5 * time.Second
	}
	if c.Breaker.HalfOpenProbes == 0 {
		c.Breaker.HalfOpenProbes = 1
	}
	if c.Breaker.Window <= 0 {
		c.Breaker.Window = 30 * time.Second
	}
	return c
}

// Remote is the caller's view of one remote service: its passing
// instances, found in Consul, and a circuit breaker per instance shared by
// every endpoint of the service. Endpoint turns a per-instance HTTP
// endpoint into a resilient one:
//
//	instancer → per-instance endpoint (attempt timeout, breaker)
//	          → round robin → retry (safe calls only) → typed error
type Remote struct {
	cfg       ClientConfig
	instancer sd.Instancer
	logger    *slog.Logger
	metrics   *remoteMetrics
	options   []httptransport.ClientOption

	mu         sync.Mutex
	breakers   map[string]*gobreaker.CircuitBreaker
	endpointer []sd.Endpointer
	instances  []string

	events chan sd.Event
	ready  chan struct{} // closed once the first instance list is in
	done   chan struct{}
	stop   func()
}

// NewRemote watches cfg.Service's passing instances in Consul. Close it
// when done.
func NewRemote(client *consul.Client, cfg ClientConfig, tel observability.Telemetry) *Remote {
	logger := tel.Logger.With("remote", cfg.Service)
	consulInstancer := consulsd.NewInstancer(consulsd.NewClient(client), kitLogger{logger}, cfg.Service, nil, true)
	steady := newSteadyInstancer(consulInstancer, cfg.withDefaults().EmptyGrace)
	return newRemote(steady, func() { steady.Stop(); consulInstancer.Stop() }, cfg, tel, logger)
}

// NewRemoteWithInstancer is NewRemote over any go-kit instancer, such as
// sd.FixedInstancer for a fixed set of addresses.
func NewRemoteWithInstancer(instancer sd.Instancer, cfg ClientConfig, tel observability.Telemetry) *Remote {
	return newRemote(instancer, func() {}, cfg, tel, tel.Logger.With("remote", cfg.Service))
}

func newRemote(instancer sd.Instancer, stop func(), cfg ClientConfig, tel observability.Telemetry, logger *slog.Logger) *Remote {
	r := &Remote{
		cfg:       cfg.withDefaults(),
		instancer: instancer,
		logger:    logger,
		metrics:   newRemoteMetrics(tel.Registry),
		options:   ClientOptions(NewHTTPClient(tel, cfg.withDefaults().CallTimeout)),
		breakers:  map[string]*gobreaker.CircuitBreaker{},
		events:    make(chan sd.Event, 1),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
		stop:      stop,
	}
	go r.watch()
	instancer.Register(r.events) // sends the current instances at once
	<-r.ready
	return r
}

// watch follows instance changes: the instances gauge, a log line per
// change, and forgetting the breakers of instances that left.
func (r *Remote) watch() {
	defer close(r.done)
	known := map[string]bool{}
	readyOnce := sync.OnceFunc(func() { close(r.ready) })
	defer readyOnce()
	for ev := range r.events {
		if ev.Err == nil {
			known = r.update(known, ev.Instances)
		}
		// On errors go-kit keeps serving the last known instances, which
		// is what lets traffic flow while Consul is down.
		readyOnce()
	}
}

func (r *Remote) update(known map[string]bool, instances []string) map[string]bool {
	now := map[string]bool{}
	for _, inst := range instances {
		now[inst] = true
	}
	r.metrics.instances.WithLabelValues(r.cfg.Service).Set(float64(len(now)))
	for inst := range known {
		if !now[inst] {
			r.logger.Info("instance left", "remote_instance", inst, "instances", len(now))
			r.forget(inst)
		}
	}
	for inst := range now {
		if !known[inst] {
			r.logger.Info("instance joined", "remote_instance", inst, "instances", len(now))
		}
	}
	r.mu.Lock()
	r.instances = append([]string(nil), instances...)
	r.mu.Unlock()
	return now
}

// Instances returns the passing instances last seen in discovery.
func (r *Remote) Instances() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.instances...)
}

func (r *Remote) forget(instance string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.breakers, instance)
	r.metrics.breakerState.DeleteLabelValues(r.cfg.Service, instance)
}

// Close stops watching Consul and releases every endpoint.
func (r *Remote) Close() {
	r.mu.Lock()
	eps := r.endpointer
	r.endpointer = nil
	r.mu.Unlock()
	for _, e := range eps {
		if c, ok := e.(interface{ Close() }); ok {
			c.Close()
		}
	}
	r.instancer.Deregister(r.events)
	close(r.events)
	<-r.done
	r.stop()
}

// breaker returns the instance's breaker, creating it on first use.
func (r *Remote) breaker(instance string) *gobreaker.CircuitBreaker {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cb, ok := r.breakers[instance]; ok {
		return cb
	}
	b := r.cfg.Breaker
	cb := gobreaker.NewCircuitBreaker(gobreaker.Settings{
		Name:        r.cfg.Service + "@" + instance,
		MaxRequests: b.HalfOpenProbes,
		Interval:    b.Window,
		Timeout:     b.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= b.ConsecutiveFailures },
		// The instance answered correctly when it returned a business
		// error, or reported that one of its own dependencies is down; a
		// call its caller cancelled says nothing about it either.
		IsSuccessful: func(err error) bool {
			return err == nil || errs.IsBusiness(err) || errs.UpstreamOf(err) != "" || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			r.metrics.breakerState.WithLabelValues(r.cfg.Service, instance).Set(stateValue(to))
			r.metrics.transitions.WithLabelValues(r.cfg.Service, instance, from.String(), to.String()).Inc()
			r.logger.Warn("circuit breaker changed state", "remote_instance", instance, "from", from.String(), "to", to.String())
		},
	})
	r.breakers[instance] = cb
	r.metrics.breakerState.WithLabelValues(r.cfg.Service, instance).Set(stateValue(gobreaker.StateClosed))
	return cb
}

// BreakerStates reports each known instance's breaker state, for tests
// and the operator CLI.
func (r *Remote) BreakerStates() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.breakers))
	for inst, cb := range r.breakers {
		out[inst] = cb.State().String()
	}
	return out
}

// stateValue encodes a breaker state for the gauge: 0 closed, 1 half-open,
// 2 open, so "max by (instance)" shows the worst state.
func stateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// Factory builds resilient client endpoints for the remote's routes.
func (r *Remote) Factory() ClientFactory {
	return func(route ClientRoute) endpoint.Endpoint {
		return r.Endpoint(route.Name, route.Idempotent, func(base *url.URL) endpoint.Endpoint {
			return route.endpoint(base, r.options...)
		})
	}
}

// Endpoint returns the resilient endpoint for the remote method name.
// newEndpoint builds the plain HTTP endpoint for one instance's base URL.
// idempotent says whether a call that may have reached the server can be
// sent again: true for reads and calls carrying an idempotency key.
func (r *Remote) Endpoint(name string, idempotent bool, newEndpoint func(base *url.URL) endpoint.Endpoint) endpoint.Endpoint {
	factory := func(instance string) (endpoint.Endpoint, io.Closer, error) {
		cb := r.breaker(instance)
		ep := newEndpoint(&url.URL{Scheme: "http", Host: instance})
		ep = attemptTimeout(r.cfg.CallTimeout)(ep)
		ep = circuitbreaker.Gobreaker(cb)(ep)
		ep = breakerEvents(cb, instance)(ep)
		return ep, nil, nil
	}
	endpointer := sd.NewEndpointer(r.instancer, factory, kitLogger{r.logger})
	// go-kit's endpointer takes in the current instances asynchronously;
	// wait (briefly, once) so the first call does not find it empty.
	deadline := time.Now().Add(time.Second)
	for want := len(r.Instances()); want > 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if eps, _ := endpointer.Endpoints(); len(eps) >= want {
			break
		}
	}
	r.mu.Lock()
	r.endpointer = append(r.endpointer, endpointer)
	r.mu.Unlock()
	balancer := lb.NewRoundRobin(endpointer)
	op := r.cfg.Service + "." + name

	return func(ctx context.Context, request any) (any, error) {
		span := trace.SpanFromContext(ctx)
		retry := lb.RetryWithCallback(r.cfg.Deadline, balancer, func(n int, err error) (bool, error) {
			switch {
			case errors.Is(err, lb.ErrNoEndpoints):
				r.metrics.unavailable.WithLabelValues(r.cfg.Service, name, "no_instances").Inc()
				e := errs.E(errs.Unavailable, "unavailable", "no healthy %s instance", r.cfg.Service)
				e.Upstream = r.cfg.Service
				return false, e
			case errs.IsBusiness(err), errs.UpstreamOf(err) != "":
				// An answer, not a failure of this instance: pass it on.
				return false, nil
			case n >= r.cfg.MaxAttempts:
				return false, r.giveUp(name, op, n, err)
			case !idempotent && !notSent(err):
				// The request may have been processed; sending it again
				// could do it twice.
				return false, r.giveUp(name, op, n, err)
			}
			r.metrics.retries.WithLabelValues(r.cfg.Service, name).Inc()
			span.AddEvent("retry", trace.WithAttributes(
				attribute.Int("glasshouse.retry.attempt", n+1),
				attribute.String("glasshouse.retry.reason", err.Error()),
			))
			return true, nil
		})
		response, err := retry(ctx, request)
		var re lb.RetryError
		if errors.As(err, &re) {
			err = re.Final
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			r.metrics.unavailable.WithLabelValues(r.cfg.Service, name, "deadline").Inc()
			e := errs.Wrap(errs.Unavailable, "unavailable", err, "%s did not succeed within %s", op, r.cfg.Deadline)
			e.Upstream = r.cfg.Service
			err = e
		}
		return response, err
	}
}

// giveUp turns the last failure into the error the caller sees: the
// dependency is unavailable, with the reason kept in the detail.
func (r *Remote) giveUp(name, op string, attempts int, err error) error {
	reason := "failed"
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		reason = "breaker_open"
	}
	r.metrics.unavailable.WithLabelValues(r.cfg.Service, name, reason).Inc()
	e := errs.Wrap(errs.Unavailable, "unavailable", err, "%s failed after %d attempt(s)", op, attempts)
	e.Upstream = r.cfg.Service
	return e
}

// notSent reports whether err proves the request never reached a server,
// so even a non-idempotent call may be sent to another instance: the
// breaker refused it, or the connection could not be opened.
func notSent(err error) bool {
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) || errors.Is(err, lb.ErrNoEndpoints) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// attemptTimeout bounds one attempt, so a hung instance costs one
// CallTimeout and the retry moves on to the next.
func attemptTimeout(d time.Duration) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			response, err := next(ctx, request)
			if err != nil && errors.Is(err, context.DeadlineExceeded) {
				err = errs.Wrap(errs.Timeout, "timeout", err, "no answer within %s", d)
			}
			return response, err
		}
	}
}

// breakerEvents records breaker decisions on the caller's span: a
// rejection by an open breaker, and any state change this call caused.
func breakerEvents(cb *gobreaker.CircuitBreaker, instance string) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			before := cb.State()
			response, err := next(ctx, request)
			span := trace.SpanFromContext(ctx)
			if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
				span.AddEvent("breaker.rejected", trace.WithAttributes(
					attribute.String("glasshouse.instance", instance), attribute.String("glasshouse.breaker.state", before.String())))
			}
			if after := cb.State(); after != before {
				span.AddEvent("breaker.state_change", trace.WithAttributes(
					attribute.String("glasshouse.instance", instance),
					attribute.String("glasshouse.breaker.from", before.String()),
					attribute.String("glasshouse.breaker.to", after.String())))
			}
			return response, err
		}
	}
}

// remoteMetrics make resilience visible; they are shared by every Remote
// in a process (one series per remote service and instance).
type remoteMetrics struct {
	breakerState *prometheus.GaugeVec
	transitions  *prometheus.CounterVec
	retries      *prometheus.CounterVec
	unavailable  *prometheus.CounterVec
	instances    *prometheus.GaugeVec
}

func newRemoteMetrics(reg prometheus.Registerer) *remoteMetrics {
	return &remoteMetrics{
		breakerState: registerOrGet(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glasshouse_client_breaker_state",
			Help: "Circuit breaker state per remote instance: 0 closed, 1 half-open, 2 open.",
		}, []string{"remote", "remote_instance"})),
		transitions: registerOrGet(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_client_breaker_transitions_total",
			Help: "Circuit breaker state changes per remote instance.",
		}, []string{"remote", "remote_instance", "from", "to"})),
		retries: registerOrGet(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_client_retries_total",
			Help: "Calls to a remote endpoint sent again after a failed attempt.",
		}, []string{"remote", "endpoint"})),
		unavailable: registerOrGet(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_client_unavailable_total",
			Help: "Calls that failed as unavailable, by reason: no_instances, breaker_open, failed (attempts exhausted) or deadline.",
		}, []string{"remote", "endpoint", "reason"})),
		instances: registerOrGet(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glasshouse_client_instances",
			Help: "Passing instances of each remote service known from Consul.",
		}, []string{"remote"})),
	}
}

// kitLogger adapts slog to go-kit's logger for the sd packages.
type kitLogger struct{ l *slog.Logger }

func (k kitLogger) Log(keyvals ...any) error {
	level := slog.LevelDebug
	for i := 0; i+1 < len(keyvals); i += 2 {
		if keyvals[i] == "err" {
			level = slog.LevelWarn
		}
	}
	k.l.Log(context.Background(), level, "discovery", keyvals...)
	return nil
}
