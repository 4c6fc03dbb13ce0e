package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
)

// NewConsulClient returns a Consul API client for the agent at addr
// ("127.0.0.1:8500" or "http://consul:8500"). Its timeouts suit both
// short calls and the blocking queries discovery uses: a query waits at
// most 20s for a change, and any request is abandoned after 30s.
func NewConsulClient(addr string) (*consul.Client, error) {
	cfg := consul.DefaultNonPooledConfig()
	cfg.Address = addr
	cfg.WaitTime = 20 * time.Second
	cfg.HttpClient = &http.Client{Transport: cfg.Transport, Timeout: 30 * time.Second}
	c, err := consul.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", addr, err)
	}
	return c, nil
}

// Registration describes one instance of a service in Consul.
type Registration struct {
	Service string
	// ID is unique per instance; empty means "<service>-<host>-<port>".
	ID string
	// Address and Port are what peers dial: the advertised address, which
	// inside a container is the container's, never "localhost".
	Address string
	Port    int
	// AdminPort is the instance's admin listener (/readyz, /metrics,
	// pprof, admin routes), on the same advertised Address. It is
	// published twice, for two kinds of reader: as the service's tagged
	// address "admin" (AdminTaggedAddress), Consul's own way to name a
	// second address, which `glasshouse status` and the chaos runner
	// read; and as the meta key "admin_port" (AdminPortMeta), because
	// Prometheus' Consul discovery exposes service meta to relabelling
	// but not a service's tagged addresses. 0 means the instance has no
	// admin listener: then the check asks the public port.
	AdminPort int
	// GRPCCheck makes Consul's check a GRPC one against the standard
	// grpc.health.v1 service on Address:Port (the whole server's health,
	// which follows /readyz: GRPCServer), instead of HTTP /readyz.
	GRPCCheck bool
	Tags      []string
	// Meta travels with the instance: version, metrics path.
	Meta map[string]string
	// CheckInterval and CheckTimeout drive Consul's HTTP check of
	// /readyz on the admin listener (defaults 2s and 1s): a dead instance
	// is critical within about one interval, and so leaves every caller's
	// instancer.
	CheckInterval time.Duration
	CheckTimeout  time.Duration
	// DeregisterAfter removes an instance whose check has been critical
	// this long (default 1m), so a SIGKILLed instance does not linger in
	// the catalog forever.
	DeregisterAfter time.Duration
}

func (r Registration) withDefaults() Registration {
	if r.ID == "" {
		host, _ := os.Hostname()
		r.ID = fmt.Sprintf("%s-%s-%d", r.Service, host, r.Port)
	}
	if r.CheckInterval <= 0 {
		r.CheckInterval = 2 * time.Second
	}
	if r.CheckTimeout <= 0 {
		r.CheckTimeout = time.Second
	}
	if r.DeregisterAfter <= 0 {
		r.DeregisterAfter = time.Minute
	}
	return r
}

// Where a registration publishes its admin listener.
const (
	AdminTaggedAddress = "admin"
	AdminPortMeta      = "admin_port"
	// HTTPInstanceMeta, on the registration of an instance's gRPC
	// listener, is the Consul ID of the same instance's HTTP
	// registration, whose admin listener serves its metrics and probes.
	HTTPInstanceMeta = "http_service_id"
)

// AdminAddr is the host:port of an instance's admin listener as Consul
// knows it: its "admin" tagged address, else its service address with the
// "admin_port" meta, else "" (an instance without an admin listener).
func AdminAddr(svc *consul.AgentService) string {
	if svc == nil {
		return ""
	}
	if ta, ok := svc.TaggedAddresses[AdminTaggedAddress]; ok && ta.Port > 0 {
		return net.JoinHostPort(ta.Address, strconv.Itoa(ta.Port))
	}
	if port := svc.Meta[AdminPortMeta]; port != "" {
		return net.JoinHostPort(svc.Address, port)
	}
	return ""
}

// AdvertiseAddress picks the address peers should dial for a server
// listening on listenAddr: advertise if set, else the listen host if it
// names one, else the machine's host name (a container's own name).
func AdvertiseAddress(advertise, listenAddr string) string {
	if advertise != "" {
		return advertise
	}
	host, _, err := net.SplitHostPort(listenAddr)
	if err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			return host
		}
	}
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "127.0.0.1"
	}
	return name
}

// Registrar keeps one instance registered in Consul for as long as it
// runs. It registers as soon as it can; if Consul is unreachable it keeps
// trying with capped exponential backoff (the service serves meanwhile);
// and it re-registers whenever the agent has lost the instance, as after
// an agent restart. Shaped for oklog/run: g.Add(r.Run, r.Stop), with
// Deregister as the server's first shutdown hook.
type Registrar struct {
	client *consul.Client
	reg    Registration
	logger *slog.Logger

	registered prometheus.Gauge
	failures   prometheus.Counter

	stopOnce sync.Once
	stop     chan struct{}
	running  sync.Mutex // held by Run; Deregister waits for it
	done     bool       // this process has registered at least once (only Run touches it)
}

// ResyncInterval is how often a registered instance checks that the agent
// still knows it: after an agent restart, instances are back within this.
const ResyncInterval = 2 * time.Second

// NewRegistrar prepares the registration; nothing is sent until Run.
func NewRegistrar(client *consul.Client, reg Registration, logger *slog.Logger, metrics prometheus.Registerer) *Registrar {
	r := &Registrar{
		client: client,
		reg:    reg.withDefaults(),
		logger: logger,
		registered: registerOrGet(metrics, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glasshouse_consul_registered",
			Help: "1 while this instance is registered in Consul, else 0.",
		})),
		failures: registerOrGet(metrics, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glasshouse_consul_registration_failures_total",
			Help: "Failed attempts to register this instance in Consul.",
		})),
		stop: make(chan struct{}),
	}
	return r
}

// ID is the instance ID registered in Consul.
func (r *Registrar) ID() string { return r.reg.ID }

// Run registers, then keeps the registration alive until Stop.
func (r *Registrar) Run() error {
	r.running.Lock()
	defer r.running.Unlock()
	backoff := NewBackoff(100*time.Millisecond, 10*time.Second)
	for {
		select {
		case <-r.stop:
			return nil
		default:
		}
		wait := ResyncInterval
		if err := r.ensureRegistered(); err != nil {
			r.registered.Set(0)
			r.failures.Inc()
			wait = backoff.Next()
			r.logger.Warn("cannot register in Consul; serving anyway and retrying",
				"consul_id", r.reg.ID, "retry_in", wait.String(), "error", err)
		} else {
			backoff.Reset()
		}
		select {
		case <-r.stop:
			return nil
		case <-time.After(wait):
		}
	}
}

// Stop ends Run. It does not deregister: Deregister does, first thing in
// the shutdown sequence.
func (r *Registrar) Stop(error) {
	r.stopOnce.Do(func() { close(r.stop) })
}

// ensureRegistered registers the instance unless the agent already has
// this process's registration. The first time it always registers: an
// entry under the same ID may be a killed predecessor's on the same port,
// whose check may point at another admin port.
func (r *Registrar) ensureRegistered() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	svc, _, err := r.client.Agent().Service(r.reg.ID, (&consul.QueryOptions{}).WithContext(ctx))
	if err == nil && svc != nil && r.done {
		r.registered.Set(1)
		return nil
	}
	var status consul.StatusError
	if err != nil && !(errors.As(err, &status) && status.Code == http.StatusNotFound) {
		return err
	}
	if err := r.register(ctx); err != nil {
		return err
	}
	r.done = true
	r.registered.Set(1)
	r.logger.Info("registered in Consul", "consul_id", r.reg.ID, "address", net.JoinHostPort(r.reg.Address, strconv.Itoa(r.reg.Port)))
	return nil
}

func (r *Registrar) register(ctx context.Context) error {
	// Consul checks the admin listener: /readyz lives there, and it keeps
	// answering (503, "draining") while the public listener drains.
	checked := net.JoinHostPort(r.reg.Address, strconv.Itoa(r.reg.Port))
	meta := r.reg.Meta
	var tagged map[string]consul.ServiceAddress
	if r.reg.AdminPort > 0 {
		checked = net.JoinHostPort(r.reg.Address, strconv.Itoa(r.reg.AdminPort))
		meta = make(map[string]string, len(r.reg.Meta)+1)
		for k, v := range r.reg.Meta {
			meta[k] = v
		}
		meta[AdminPortMeta] = strconv.Itoa(r.reg.AdminPort)
		tagged = map[string]consul.ServiceAddress{AdminTaggedAddress: {Address: r.reg.Address, Port: r.reg.AdminPort}}
	}
	check := &consul.AgentServiceCheck{
		CheckID:                        r.reg.ID + ":readyz",
		Name:                           r.reg.Service + " readiness",
		HTTP:                           "http://" + checked + "/readyz",
		Interval:                       r.reg.CheckInterval.String(),
		Timeout:                        r.reg.CheckTimeout.String(),
		DeregisterCriticalServiceAfter: r.reg.DeregisterAfter.String(),
	}
	if r.reg.GRPCCheck {
		check.CheckID, check.HTTP = r.reg.ID+":grpc-health", ""
		check.GRPC = net.JoinHostPort(r.reg.Address, strconv.Itoa(r.reg.Port))
	}
	return r.client.Agent().ServiceRegisterOpts(&consul.AgentServiceRegistration{
		ID:              r.reg.ID,
		Name:            r.reg.Service,
		Address:         r.reg.Address,
		Port:            r.reg.Port,
		TaggedAddresses: tagged,
		Tags:            r.reg.Tags,
		Meta:            meta,
		Check:           check,
	}, consul.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
}

// Deregister removes the instance from Consul, so callers stop choosing
// it before it stops serving. It is safe to call when not registered.
func (r *Registrar) Deregister(ctx context.Context) error {
	r.Stop(nil)
	// Wait for Run to return, so a registration it was sending cannot
	// land after the deregistration.
	r.running.Lock()
	defer r.running.Unlock()
	r.registered.Set(0)
	if err := r.client.Agent().ServiceDeregisterOpts(r.reg.ID, (&consul.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("deregister %s from Consul: %w", r.reg.ID, err)
	}
	r.logger.Info("deregistered from Consul", "consul_id", r.reg.ID)
	return nil
}

// Backoff is capped exponential backoff with equal jitter, so a fleet that
// lost Consul (or its database) at the same moment does not return in
// lockstep. It is not safe for concurrent use: one per retry loop.
type Backoff struct {
	base, max, cur time.Duration
}

// NewBackoff starts at base and doubles up to max.
func NewBackoff(base, max time.Duration) *Backoff {
	return &Backoff{base: base, max: max, cur: base}
}

// Next is the wait before the next attempt: a random time between half
// the current step and the step, which then doubles, up to max.
func (b *Backoff) Next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(2*b.cur, b.max)
	return d
}

// Reset starts again from base, after a success.
func (b *Backoff) Reset() { b.cur = b.base }

// registerOrGet registers c, or returns the collector already registered
// under the same name, so several clients in one process share metrics.
func registerOrGet[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// AwaitCatalogSync returns once the agent at client syncs registrations
// to the catalog. A leader is not enough: an agent whose first full sync
// ran before its server led (a fresh dev agent does) waits 15–30s before
// the next one and holds every registration back until then. So it
// registers a probe service without checks, waits for the catalog to
// list it, and deregisters it. It polls until ctx ends.
func AwaitCatalogSync(ctx context.Context, client *consul.Client) error {
	probe := &consul.AgentServiceRegistration{ID: "glasshouse-sync-probe", Name: "glasshouse-sync-probe"}
	agent, q := client.Agent(), (&consul.QueryOptions{}).WithContext(ctx)
	defer func() {
		// A fresh context: the probe goes also when ctx has ended.
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = agent.ServiceDeregisterOpts(probe.ID, (&consul.QueryOptions{}).WithContext(dctx))
	}()
	var last error
	for {
		if err := agent.ServiceRegisterOpts(probe, consul.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
			last = err
		} else if entries, _, err := client.Catalog().Service(probe.Name, "", q); err != nil {
			last = err
		} else if len(entries) > 0 {
			return nil
		} else {
			last = errors.New("the catalog does not list a service registered with the agent yet")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consul agent does not sync to the catalog: %w (%w)", last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
