package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/go-kit/kit/circuitbreaker"
	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	consulsd "github.com/go-kit/kit/sd/consul"
	httptransport "github.com/go-kit/kit/transport/http"
	consul "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
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
	// Service is the remote service's name: in Consul, metrics and spans.
	Service string
	// ConsulName is the name its instances are found under in Consul,
	// when not Service: "inventory-grpc" for inventory's gRPC endpoint.
	ConsulName string
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
	// CountAllErrors makes breakers count, and retries repeat, every
	// error: business answers, redirects, a peer's report that its own
	// dependency is down. It exists only so the chaos suite can show what
	// dishonest accounting does (one hostile client opens everyone's
	// breakers); never set it in production.
	CountAllErrors bool
}

// WithDefaults returns c with every zero field set to its default.
func (c ClientConfig) WithDefaults() ClientConfig {
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
// instances, found in Consul, and a circuit breaker per instance and
// endpoint. Factory turns each route into a resilient endpoint:
//
//	instances → round robin, skipping open breakers
//	          → per-instance endpoint (attempt timeout, breaker)
//	          → retry on another instance (safe calls only) → typed error
//
// The balancing and retry loop is our own rather than go-kit's
// lb.RoundRobin and lb.Retry: those cannot tell a breaker's refusal from
// a failed attempt (so one open breaker spends a call's attempts) and may
// send every attempt to the same dead instance when many calls share the
// round-robin counter.
type Remote struct {
	cfg       ClientConfig
	instancer sd.Instancer
	logger    *slog.Logger
	metrics   *remoteMetrics
	options   []httptransport.ClientOption
	tel       observability.Telemetry

	mu        sync.Mutex
	breakers  map[breakerKey]*breaker
	routes    []*routeClient
	instances []string
	conns     map[string]*grpc.ClientConn // by instance, for gRPC routes

	events chan sd.Event
	ready  chan struct{} // closed once the first instance list is in
	done   chan struct{}
	stop   func()
}

// breakerKey names one breaker: an instance and one of its endpoints.
//
// Breakers are per endpoint, not only per instance, because endpoints
// fail independently: with one breaker per instance, fast successful
// calls (a Void, a FindCharge) reset the consecutive-failure count of a
// slow Charge on the same instance, so the slow endpoint never trips; and
// a bad run of one endpoint would refuse the instance's healthy ones. A
// dead instance trips each endpoint's breaker separately, which costs
// nothing extra: its calls fail at connect time and move on at once.
type breakerKey struct{ instance, endpoint string }

// NewRemote watches cfg.Service's passing instances in Consul. Close it
// when done.
func NewRemote(client *consul.Client, cfg ClientConfig, tel observability.Telemetry) *Remote {
	logger := tel.Logger.With("remote", cfg.Service)
	consulInstancer := consulsd.NewInstancer(consulsd.NewClient(client), kitLogger{logger}, cmp.Or(cfg.ConsulName, cfg.Service), nil, true)
	steady := newSteadyInstancer(consulInstancer, cfg.WithDefaults().EmptyGrace)
	return newRemote(steady, func() { steady.Stop(); consulInstancer.Stop() }, cfg, tel, logger)
}

// NewRemoteWithInstancer is NewRemote over any go-kit instancer, such as
// sd.FixedInstancer for a fixed set of addresses.
func NewRemoteWithInstancer(instancer sd.Instancer, cfg ClientConfig, tel observability.Telemetry) *Remote {
	return newRemote(instancer, func() {}, cfg, tel, tel.Logger.With("remote", cfg.Service))
}

func newRemote(instancer sd.Instancer, stop func(), cfg ClientConfig, tel observability.Telemetry, logger *slog.Logger) *Remote {
	r := &Remote{
		cfg:       cfg.WithDefaults(),
		instancer: instancer,
		logger:    logger,
		metrics:   newRemoteMetrics(tel.Registry),
		options:   ClientOptions(NewHTTPClient(tel, cfg.WithDefaults().CallTimeout)),
		tel:       tel,
		breakers:  map[breakerKey]*breaker{},
		conns:     map[string]*grpc.ClientConn{},
		events:    make(chan sd.Event, 1),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
		stop:      stop,
	}
	if r.cfg.CountAllErrors {
		logger.Warn("breakers count every error, business answers included (a chaos mechanism-off setting; never in production)")
	}
	r.metrics.breakerState.add(r)
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
		// On errors the last known instances stay in use, which is what
		// lets traffic flow while Consul is down.
		readyOnce()
	}
}

func (r *Remote) update(known map[string]bool, instances []string) map[string]bool {
	now := map[string]bool{}
	for _, inst := range instances {
		now[inst] = true
	}
	r.metrics.instances.WithLabelValues(r.cfg.Service).Set(float64(len(now)))
	r.mu.Lock()
	r.instances = slices.Sorted(maps.Keys(now))
	r.mu.Unlock()
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
	return now
}

// Instances returns the passing instances last seen in discovery.
func (r *Remote) Instances() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.instances...)
}

// forget drops what was kept for an instance that left discovery: its
// endpoints and breakers (a returning instance starts with closed ones).
func (r *Remote) forget(instance string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if conn := r.conns[instance]; conn != nil {
		// Calls already on their way to it (an instance leaving discovery
		// drains them) may finish: the connection closes once the
		// longest of them would be over. New calls no longer pick it.
		delete(r.conns, instance)
		time.AfterFunc(r.cfg.Deadline, func() { _ = conn.Close() })
	}
	for key := range r.breakers {
		if key.instance == instance {
			delete(r.breakers, key)
		}
	}
	for _, rc := range r.routes {
		delete(rc.endpoints, instance)
	}
}

// Close stops watching Consul.
func (r *Remote) Close() {
	r.metrics.breakerState.remove(r)
	r.instancer.Deregister(r.events)
	close(r.events)
	<-r.done
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for instance, conn := range r.conns {
		delete(r.conns, instance)
		_ = conn.Close()
	}
}

// breaker is one circuit breaker and when a call last went through it.
type breaker struct {
	cb       *gobreaker.CircuitBreaker
	lastUsed atomic.Int64 // unix nanoseconds
}

func (b *breaker) touch() { b.lastUsed.Store(time.Now().UnixNano()) }

// breaker returns the breaker for an instance's endpoint, creating it on
// first use; called with r.mu held.
func (r *Remote) breaker(key breakerKey) *breaker {
	if b, ok := r.breakers[key]; ok {
		return b
	}
	cfg := r.cfg.Breaker
	service, instance, name := r.cfg.Service, key.instance, key.endpoint
	b := &breaker{cb: gobreaker.NewCircuitBreaker(gobreaker.Settings{
		Name:        service + "@" + instance + "/" + name,
		MaxRequests: cfg.HalfOpenProbes,
		Interval:    cfg.Window,
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.ConsecutiveFailures },
		// Only the peer's own faults count: see peerFault.
		IsSuccessful: func(err error) bool { return !r.peerFault(err) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			r.metrics.transitions.WithLabelValues(service, instance, name, from.String(), to.String()).Inc()
			r.logger.Warn("circuit breaker changed state", "remote_instance", instance, "endpoint", name, "from", from.String(), "to", to.String())
		},
	})}
	b.touch()
	r.breakers[key] = b
	// Every transition exists at zero from the first call, so dashboards
	// and alerts see 0 rather than no data.
	for _, t := range breakerTransitions {
		r.metrics.transitions.WithLabelValues(service, instance, name, t[0].String(), t[1].String())
	}
	return b
}

// collectBreakers reports every breaker's state as it is now, for the
// state gauge. gobreaker moves a breaker from open to half-open only when
// asked, and an endpoint that nobody calls would read "open" forever
// (orders calls Void only to compensate): so the state is read at
// scrape time, and a half-open breaker that no call has probed for a
// second is replaced by a closed one. Nothing has failed
// for that long; the next call starts counting afresh.
func (r *Remote) collectBreakers(ch chan<- prometheus.Metric, desc *prometheus.Desc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A second without a call (refusals count as calls) is idle enough:
	// a breaker that is being probed is touched on every call.
	idleSince := time.Now().Add(-min(r.cfg.Breaker.OpenFor, time.Second)).UnixNano()
	for key, b := range r.breakers {
		state := b.cb.State()
		if state == gobreaker.StateHalfOpen && b.lastUsed.Load() < idleSince {
			delete(r.breakers, key)
			for _, rc := range r.routes {
				if rc.name == key.endpoint {
					delete(rc.endpoints, key.instance)
				}
			}
			r.breaker(key)
			state = gobreaker.StateClosed
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, stateValue(state), r.cfg.Service, key.instance, key.endpoint)
	}
}

// breakerGauge is glasshouse_client_breaker_state, collected from every
// Remote of the process at scrape time.
type breakerGauge struct {
	desc    *prometheus.Desc
	mu      sync.Mutex
	remotes map[*Remote]struct{}
}

func newBreakerGauge() *breakerGauge {
	return &breakerGauge{
		desc: prometheus.NewDesc("glasshouse_client_breaker_state",
			"Circuit breaker state per remote instance and endpoint: 0 closed, 1 half-open, 2 open.",
			[]string{"remote", "remote_instance", "endpoint"}, nil),
		remotes: map[*Remote]struct{}{},
	}
}

func (g *breakerGauge) add(r *Remote) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.remotes[r] = struct{}{}
}

func (g *breakerGauge) remove(r *Remote) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.remotes, r)
}

func (g *breakerGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *breakerGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	remotes := slices.Collect(maps.Keys(g.remotes))
	g.mu.Unlock()
	for _, r := range remotes {
		r.collectBreakers(ch, g.desc)
	}
}

var breakerTransitions = [][2]gobreaker.State{
	{gobreaker.StateClosed, gobreaker.StateOpen},
	{gobreaker.StateOpen, gobreaker.StateHalfOpen},
	{gobreaker.StateHalfOpen, gobreaker.StateClosed},
	{gobreaker.StateHalfOpen, gobreaker.StateOpen},
}

// BreakerStates reports the state of every breaker in use, keyed
// "instance/endpoint", for tests and the operator CLI.
func (r *Remote) BreakerStates() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.breakers))
	for key, b := range r.breakers {
		out[key.instance+"/"+key.endpoint] = b.cb.State().String()
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

// peerFault reports whether err is the remote instance's own fault, the
// only kind of failure that is retried elsewhere and counted against its
// breaker: it could not be reached, it did not answer in time, or it
// answered 5xx. Everything else is an answer: a business error (not
// found, out of stock, bad input), an outage of one of the peer's own
// dependencies (which another instance shares), a response we did not
// expect (a redirect, a 4xx without problem+json: a bug between the two
// sides, which retrying or ejecting healthy instances cannot fix), or a
// call its caller cancelled.
func (r *Remote) peerFault(err error) bool {
	switch {
	case err == nil:
		return false
	case r.cfg.CountAllErrors:
		return true
	case errors.Is(err, context.Canceled), errs.IsBusiness(err), errs.UpstreamOf(err) != "", errors.Is(err, errUnexpectedResponse):
		return false
	}
	return true
}

// Factory builds resilient client endpoints for the remote's routes,
// each with a client span around the whole call, retries included.
func (r *Remote) Factory() ClientFactory {
	return func(route ClientRoute) endpoint.Endpoint {
		ep := r.resilientEndpoint(route.Name, route.Idempotent, func(instance string) endpoint.Endpoint {
			return route.endpoint(&url.URL{Scheme: "http", Host: instance}, r.options...)
		})
		return r.tel.ClientEndpoint(r.cfg.Service, route.Name)(ep)
	}
}

// GRPC builds resilient client endpoints over gRPC, with exactly the
// policy Factory's have over HTTP: one connection per instance (made on
// first use, closed when the instance leaves discovery), a breaker per
// instance and endpoint, round robin, retries on another instance, typed
// errors. Hand it to the service's GRPCAPI.Factory.
func (r *Remote) GRPC() GRPCClientFactory {
	return func(route ClientRoute, call func(*grpc.ClientConn) endpoint.Endpoint) endpoint.Endpoint {
		ep := r.resilientEndpoint(route.Name, route.Idempotent, func(instance string) endpoint.Endpoint {
			conn, err := r.connLocked(instance)
			if err != nil {
				return func(context.Context, any) (any, error) { return nil, err }
			}
			return call(conn)
		})
		return r.tel.ClientEndpoint(r.cfg.Service, route.Name)(ep)
	}
}

// connLocked returns the connection to instance, opening it (which dials
// in the background, not here) on first use; called with r.mu held.
//
// Only a malformed address fails here, never the network.
func (r *Remote) connLocked(instance string) (*grpc.ClientConn, error) {
	if conn, ok := r.conns[instance]; ok {
		return conn, nil
	}
	conn, err := NewGRPCConn(instance, r.tel, r.cfg.CallTimeout)
	if err != nil {
		return nil, err
	}
	r.conns[instance] = conn
	return conn, nil
}

// resilientEndpoint returns the resilient endpoint for the remote method name.
// newEndpoint builds the plain endpoint for one instance ("host:port").
// idempotent says whether a call that may have reached the server can be
// sent again: true for reads and calls carrying an idempotency key.
func (r *Remote) resilientEndpoint(name string, idempotent bool, newEndpoint func(instance string) endpoint.Endpoint) endpoint.Endpoint {
	rc := &routeClient{r: r, name: name, op: r.cfg.Service + "." + name, idempotent: idempotent,
		newEndpoint: newEndpoint, endpoints: map[string]instanceEndpoint{}}
	r.mu.Lock()
	r.routes = append(r.routes, rc)
	r.mu.Unlock()
	// Series at zero from the start, so a panel shows 0, not no data.
	r.metrics.retries.WithLabelValues(r.cfg.Service, name)
	for _, reason := range []string{"no_instances", "breaker_open", "failed", "deadline"} {
		r.metrics.unavailable.WithLabelValues(r.cfg.Service, name, reason)
	}
	return rc.call
}

// routeClient is one remote method's resilient endpoint.
type routeClient struct {
	r           *Remote
	name, op    string
	idempotent  bool
	newEndpoint func(instance string) endpoint.Endpoint
	next        atomic.Uint64               // round-robin position
	endpoints   map[string]instanceEndpoint // by instance; guarded by r.mu
}

// instanceEndpoint is the route's endpoint on one instance: the bare one
// (attempt timeout only) for calls that bypass the breaker, and the same
// behind its breaker.
type instanceEndpoint struct {
	bare, guarded endpoint.Endpoint
}

func (rc *routeClient) endpoint(instance string) instanceEndpoint {
	r := rc.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if ie, ok := rc.endpoints[instance]; ok {
		return ie
	}
	b := r.breaker(breakerKey{instance, rc.name})
	bare := attemptTimeout(r.cfg.CallTimeout)(rc.newEndpoint(instance))
	gated := breakerEvents(b.cb, instance)(circuitbreaker.Gobreaker(b.cb)(bare))
	guarded := func(ctx context.Context, request any) (any, error) {
		b.touch()
		return gated(ctx, request)
	}
	ie := instanceEndpoint{bare: bare, guarded: guarded}
	rc.endpoints[instance] = ie
	return ie
}

// call sends request to one instance after another until one answers,
// within the remote's deadline and attempt budget.
func (rc *routeClient) call(ctx context.Context, request any) (any, error) {
	r := rc.r
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Deadline)
	defer cancel()
	span := trace.SpanFromContext(ctx)
	// A request that asked for an injected fault must not teach the
	// breakers anything: clean traffic shares them.
	bypass := FaultRequested(ctx)
	var (
		tried   []string
		lastErr error
	)
	for attempt := 1; ; attempt++ {
		instance, response, err := rc.attempt(ctx, request, tried, bypass)
		switch {
		case err == nil:
			return response, nil
		case errors.Is(err, errNoInstances):
			r.metrics.unavailable.WithLabelValues(r.cfg.Service, rc.name, "no_instances").Inc()
			e := errs.E(errs.Unavailable, "unavailable", "no healthy %s instance", r.cfg.Service)
			e.Upstream = r.cfg.Service
			return nil, e
		case errors.Is(err, errAllRefused) && lastErr != nil:
			// Attempts failed, and the breakers they tripped leave no
			// instance to try: the call failed, it was not refused.
			return nil, rc.giveUp(attempt-1, "failed", lastErr)
		case errors.Is(err, errAllRefused):
			return nil, rc.giveUp(0, "breaker_open", err)
		case !r.peerFault(err):
			// An answer, not a failure of this instance: pass it on.
			return nil, err
		case parent.Err() != nil:
			return nil, err // the caller gave up or ran out of time
		case ctx.Err() != nil:
			r.metrics.unavailable.WithLabelValues(r.cfg.Service, rc.name, "deadline").Inc()
			e := errs.Wrap(errs.Unavailable, "unavailable", err, "%s did not succeed within %s", rc.op, r.cfg.Deadline)
			e.Upstream = r.cfg.Service
			return nil, e
		case attempt >= r.cfg.MaxAttempts:
			return nil, rc.giveUp(attempt, "failed", err)
		case !rc.idempotent && !notSent(err):
			// The request may have been processed; sending it again
			// could do it twice.
			return nil, rc.giveUp(attempt, "failed", err)
		}
		tried, lastErr = append(tried, instance), err
		r.metrics.retries.WithLabelValues(r.cfg.Service, rc.name).Inc()
		span.AddEvent("retry", trace.WithAttributes(
			attribute.Int("glasshouse.retry.attempt", attempt+1),
			attribute.String("glasshouse.retry.reason", err.Error()),
		))
	}
}

var (
	errNoInstances = errors.New("no instances")
	errAllRefused  = fmt.Errorf("every instance's breaker refused the call: %w", gobreaker.ErrOpenState)
)

// attempt makes one attempt: it walks the instances in round-robin
// order, those not yet tried in this call first, and sends the request
// to the first whose breaker lets it through. A refusal costs no
// attempt; when every breaker refuses, the call fails fast.
func (rc *routeClient) attempt(ctx context.Context, request any, tried []string, bypass bool) (string, any, error) {
	instances := rc.r.Instances()
	if len(instances) == 0 {
		return "", nil, errNoInstances
	}
	start := int(rc.next.Add(1) % uint64(len(instances)))
	order := make([]string, 0, len(instances))
	for pass := 0; pass < 2; pass++ {
		for i := range instances {
			inst := instances[(start+i)%len(instances)]
			if slices.Contains(tried, inst) == (pass == 0) {
				continue
			}
			order = append(order, inst)
		}
	}
	for _, inst := range order {
		ie := rc.endpoint(inst)
		if bypass {
			response, err := ie.bare(ctx, request)
			return inst, response, err
		}
		response, err := ie.guarded(ctx, request)
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			continue
		}
		return inst, response, err
	}
	return "", nil, errAllRefused
}

// giveUp turns the last failure into the error the caller sees: the
// dependency is unavailable, with the reason kept in the detail.
func (rc *routeClient) giveUp(attempts int, reason string, err error) error {
	r := rc.r
	r.metrics.unavailable.WithLabelValues(r.cfg.Service, rc.name, reason).Inc()
	e := errs.Wrap(errs.Unavailable, "unavailable", err, "%s failed after %d attempt(s)", rc.op, attempts)
	if reason == "breaker_open" {
		e.Detail = fmt.Sprintf("%s: every instance's circuit breaker is open", rc.op)
	}
	e.Upstream = r.cfg.Service
	return e
}

// notSent reports whether err proves the request never reached a server,
// so even a non-idempotent call may be sent to another instance: the
// connection could not be opened (over HTTP, a dial error; over gRPC, an
// UNAVAILABLE status saying the dial failed).
func notSent(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial" || errors.Is(err, errNeverSent)
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
	breakerState *breakerGauge
	transitions  *prometheus.CounterVec
	retries      *prometheus.CounterVec
	unavailable  *prometheus.CounterVec
	instances    *prometheus.GaugeVec
}

func newRemoteMetrics(reg prometheus.Registerer) *remoteMetrics {
	return &remoteMetrics{
		breakerState: registerOrGet(reg, newBreakerGauge()),
		transitions: registerOrGet(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_client_breaker_transitions_total",
			Help: "Circuit breaker state changes per remote instance and endpoint.",
		}, []string{"remote", "remote_instance", "endpoint", "from", "to"})),
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
