package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/stack"
	"github.com/glasshouse-dev/glasshouse/traces"
	consul "github.com/hashicorp/consul/api"
	"go.opentelemetry.io/otel/trace/noop"
)

// Env is what experiments act on and measure: the running stack and
// clients for what it serves.
type Env struct {
	Stack  *stack.Stack
	Jaeger *traces.Client
	// HTTP reads metrics and turns fault knobs: short timeouts, since a
	// dead target must cost a probe little.
	HTTP *http.Client
	// Customer is the runner's own shopper, for single checkouts.
	Customer *Customer

	consul *consul.Client
}

func newEnv(ctx context.Context, s *stack.Stack) (*Env, error) {
	c, err := consul.NewClient(&consul.Config{
		Address:    strings.TrimPrefix(s.ConsulURL, "http://"),
		HttpClient: &http.Client{Timeout: time.Second},
	})
	if err != nil {
		return nil, err
	}
	env := &Env{
		Stack:  s,
		Jaeger: traces.NewClient(s.JaegerURL, nil),
		HTTP:   &http.Client{Timeout: 2 * time.Second},
		consul: c,
	}
	env.Customer, err = newCustomer(ctx, s.GatewayURL)
	if err != nil {
		return nil, fmt.Errorf("sign up the runner's customer: %w", err)
	}
	return env, nil
}

// proc returns the stack's process called name, or an error naming those
// there are.
func (e *Env) proc(name string) (*stack.Proc, error) {
	if p := e.Stack.Proc(name); p != nil {
		return p, nil
	}
	var names []string
	for _, p := range e.Stack.Procs() {
		names = append(names, p.Name)
	}
	return nil, fmt.Errorf("no process %q in the stack (it has %s)", name, strings.Join(names, ", "))
}

// instanceName maps a host:port to the stack's name for it
// ("payments/2"), so plots and reports speak of instances as people do.
func (e *Env) instanceName(addr string) string {
	for _, p := range e.Stack.Procs() {
		// A caller's metrics name an instance by the address it calls:
		// its HTTP listener, or its gRPC one.
		if p.Addr == addr || (p.GRPCAddr != "" && p.GRPCAddr == addr) {
			return p.Name
		}
	}
	return addr
}

// passing counts service's instances that pass their Consul check.
func (e *Env) passing(ctx context.Context, service string) (int, error) {
	entries, _, err := e.consul.Health().Service(service, "", true, (&consul.QueryOptions{}).WithContext(ctx))
	return len(entries), err
}

// pendingOrders counts PENDING orders in orders' own store: the sagas
// that are running, or that a crash left half-done.
func (e *Env) pendingOrders(ctx context.Context) (int, error) {
	st, err := orders.OpenStore(ctx, e.Stack.StoreSource("orders"), noop.NewTracerProvider())
	if err != nil {
		return 0, err
	}
	defer st.Close()
	counts, err := st.CountByStatus(ctx)
	return counts[orders.Pending], err
}

// setPaymentsFaults turns the fault knobs of the named payments instances,
// or of every running one when none is named.
func (e *Env) setPaymentsFaults(ctx context.Context, errorRate float64, latency time.Duration, names ...string) error {
	body, err := json.Marshal(map[string]any{"error_rate": errorRate, "latency": latency.String()})
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range e.Stack.Instances("payments") {
		if len(names) > 0 && !slices.Contains(names, p.Name) || len(names) == 0 && !p.Running() {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+p.AdminAddr+"/admin/faults", strings.NewReader(string(body)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.HTTP.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			errs = append(errs, fmt.Errorf("%s: PUT /admin/faults %s: %s", p.Name, body, resp.Status))
		}
	}
	return errors.Join(errs...)
}

// Trace reads a trace back from Jaeger (waiting up to within for it to be
// complete) and counts the payments spans on which a fault was injected.
func (e *Env) Trace(ctx context.Context, purpose, traceID string, within time.Duration) TraceEvidence {
	ev := TraceEvidence{Purpose: purpose, TraceID: traceID}
	if traceID == "" {
		ev.Err = "no request to trace"
		return ev
	}
	tctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	t, err := e.Jaeger.Await(tctx, traceID, 250*time.Millisecond)
	if err != nil {
		ev.Err = err.Error()
	}
	if t == nil {
		return ev
	}
	ev.Found, ev.Spans = err == nil, len(t.Spans)
	for _, s := range t.Spans {
		if s.Service == "payments" && len(s.EventsNamed("fault.injected")) > 0 {
			ev.FaultEvents++
		}
	}
	return ev
}

// Actions.

// Kill sends SIGKILL to each named process (a crash: no deregistration,
// no drain) and waits until it is gone.
func Kill(names ...string) Action {
	return Action{
		Name: "SIGKILL " + strings.Join(names, ", "),
		Do: func(ctx context.Context, env *Env, run *Run) error {
			for _, name := range names {
				p, err := env.proc(name)
				if err != nil {
					return err
				}
				p.Kill()
			}
			return nil
		},
	}
}

// Restart starts each named process again, on its old port and data, and
// waits until each is ready (its readiness endpoint, or Consul's leader
// for Consul). They start at once, as replicas would.
func Restart(names ...string) Action {
	return Action{
		Name: "restart " + strings.Join(names, ", "),
		Do: func(ctx context.Context, env *Env, run *Run) error {
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				errs []error
			)
			for _, name := range names {
				wg.Go(func() {
					if err := env.Stack.Restart(ctx, name); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			return errors.Join(errs...)
		},
	}
}

// SlowPaymentsBy turns the latency knob of the named payments instances
// (of every one when none is named): each charge and refund waits that
// long first (0 turns it off).
func SlowPaymentsBy(latency time.Duration, instances ...string) Action {
	which := "payments"
	if len(instances) > 0 {
		which = strings.Join(instances, ", ")
	}
	name := fmt.Sprintf("%s latency knob → %s", which, latency)
	if latency == 0 {
		name = which + " latency knob → off"
	}
	return Action{
		Name: name,
		Do: func(ctx context.Context, env *Env, run *Run) error {
			return env.setPaymentsFaults(ctx, 0, latency, instances...)
		},
	}
}

// ValuePendingAtKill is the number of sagas a KillMidCheckout caught in
// flight.
const ValuePendingAtKill = "pending_at_kill"

// KillMidCheckout waits (up to within) until at least minInFlight
// checkouts are mid-saga in orders' store, SIGKILLs the named orders
// instance, and records how many orders the crash left PENDING as
// ValuePendingAtKill.
func KillMidCheckout(name string, minInFlight int, within time.Duration) Action {
	return Action{
		Name: fmt.Sprintf("SIGKILL %s with ≥ %d checkouts mid-saga", name, minInFlight),
		Do: func(ctx context.Context, env *Env, run *Run) error {
			p, err := env.proc(name)
			if err != nil {
				return err
			}
			err = poll(ctx, within, 20*time.Millisecond, func() error {
				n, err := env.pendingOrders(ctx)
				if err == nil && n < minInFlight {
					err = fmt.Errorf("%d checkouts in flight", n)
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("waiting for %d checkouts in flight: %w", minInFlight, err)
			}
			p.Kill()
			pending, err := env.pendingOrders(ctx)
			if err != nil {
				return err
			}
			run.SetValue(ValuePendingAtKill, float64(pending))
			return nil
		},
	}
}

// Probes.

// Panels of the timeline plot for probes.
const (
	PanelConsul   = "Instances passing their Consul check"
	PanelCallers  = "Instances known to callers (glasshouse_client_instances)"
	PanelBreakers = "Circuit breakers"
	PanelSagas    = "Checkouts mid-saga (PENDING orders)"
	PanelSpans    = "Spans exported per second"
	PanelMemory   = "Memory (MiB)"
	PanelFailures = "Calls given up as unavailable, per second"
)

// InstancesSeen samples how many instances of remote the caller's client
// knows (glasshouse_client_instances): what its load balancer picks from.
func InstancesSeen(caller, remote string) Probe {
	return Probe{Panel: PanelCallers, Kind: Gauge, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		m, err := env.metricsOf(ctx, caller)
		if err != nil {
			return nil, err
		}
		v, ok := m.sum("glasshouse_client_instances", map[string]string{"remote": remote})
		if !ok {
			return nil, fmt.Errorf("%s has no client for %s", caller, remote)
		}
		return map[string]float64{InstancesSeries(caller, remote): v}, nil
	}}
}

// KnownInstances samples how many instances of each remote service the
// caller's clients know, one series per remote (named as InstancesSeen's).
func KnownInstances(caller string) Probe {
	return Probe{Panel: PanelCallers, Kind: Gauge, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		m, err := env.metricsOf(ctx, caller)
		if err != nil {
			return nil, err
		}
		out := map[string]float64{}
		m.each("glasshouse_client_instances", func(labels map[string]string, v float64) {
			out[InstancesSeries(caller, labels["remote"])] = v
		})
		return out, nil
	}}
}

// InstancesSeries names the series of InstancesSeen and KnownInstances.
func InstancesSeries(caller, remote string) string {
	return fmt.Sprintf("%s knows %s instances", caller, remote)
}

// Passing samples how many instances of each service pass their Consul
// check. While Consul is down there is nothing to sample.
func Passing(services ...string) Probe {
	return Probe{Panel: PanelConsul, Kind: Gauge, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		out := map[string]float64{}
		for _, svc := range services {
			n, err := env.passing(ctx, svc)
			if err != nil {
				return nil, err
			}
			out[PassingSeries(svc)] = float64(n)
		}
		return out, nil
	}}
}

// PassingSeries names a series of Passing.
func PassingSeries(service string) string { return "Consul: " + service + " passing" }

// Breakers samples the state of every breaker the caller holds for
// remote's instances (glasshouse_client_breaker_state), one series per
// instance. A breaker is forgotten when its instance leaves discovery, so
// its series then has no points.
func Breakers(caller, remote string) Probe {
	return Probe{Panel: PanelBreakers, Kind: Breaker, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		m, err := env.metricsOf(ctx, caller)
		if err != nil {
			return nil, err
		}
		out := map[string]float64{}
		m.each("glasshouse_client_breaker_state", func(labels map[string]string, v float64) {
			if labels["remote"] == remote {
				// One breaker per instance and endpoint: the series shows
				// the instance's worst (0 closed < 1 half-open < 2 open).
				name := BreakerSeries(caller, env.instanceName(labels["remote_instance"]))
				out[name] = max(out[name], v)
			}
		})
		return out, nil
	}}
}

// BreakerSeries names a series of Breakers.
func BreakerSeries(caller, instance string) string { return caller + " → " + instance }

// breakerSeries returns the run's breaker series held by caller for
// remote's instances.
func breakerSeries(run *Run, caller, remote string) []*Series {
	var out []*Series
	for _, s := range run.SeriesInPanel(PanelBreakers) {
		if strings.HasPrefix(s.Name, caller+" → "+remote+"/") {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *Series) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SpansExported samples the process's span export counter
// (glasshouse_spans_exported_total) by result.
func SpansExported(name string) Probe {
	return Probe{Panel: PanelSpans, Kind: Counter, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		m, err := env.metricsOf(ctx, name)
		if err != nil {
			return nil, err
		}
		ok, _ := m.sum("glasshouse_spans_exported_total", map[string]string{"result": "success"})
		failed, _ := m.sum("glasshouse_spans_exported_total", map[string]string{"result": "failure"})
		return map[string]float64{SpansSeries(name, "success"): ok, SpansSeries(name, "failure"): failed}, nil
	}}
}

// SpansSeries names a series of SpansExported.
func SpansSeries(name, result string) string {
	return fmt.Sprintf("%s spans exported (%s)", name, result)
}

// Memory samples the process's resident memory and Go heap in use.
func Memory(name string) Probe {
	return Probe{Panel: PanelMemory, Kind: Bytes, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		m, err := env.metricsOf(ctx, name)
		if err != nil {
			return nil, err
		}
		rss, ok1 := m.sum("process_resident_memory_bytes", nil)
		heap, ok2 := m.sum("go_memstats_heap_inuse_bytes", nil)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s exports no memory metrics", name)
		}
		return map[string]float64{MemorySeries(name, "RSS"): rss, MemorySeries(name, "heap in use"): heap}, nil
	}}
}

// MemorySeries names a series of Memory: what is "RSS" or "heap in use".
func MemorySeries(name, what string) string { return name + " " + what }

// Unavailable samples the calls the caller gave up on remote as
// unavailable (glasshouse_client_unavailable_total), by reason.
func Unavailable(caller, remote string) Probe {
	return Probe{Panel: PanelFailures, Kind: Counter, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		m, err := env.metricsOf(ctx, caller)
		if err != nil {
			return nil, err
		}
		out := map[string]float64{}
		for _, reason := range unavailableReasons {
			out[UnavailableSeries(caller, remote, reason)] = 0
		}
		m.each("glasshouse_client_unavailable_total", func(labels map[string]string, v float64) {
			if labels["remote"] == remote {
				out[UnavailableSeries(caller, remote, labels["reason"])] += v
			}
		})
		return out, nil
	}}
}

// unavailableReasons are the reasons transport.Remote gives up a call.
var unavailableReasons = []string{"no_instances", "breaker_open", "failed", "deadline"}

// UnavailableSeries names a series of Unavailable.
func UnavailableSeries(caller, remote, reason string) string {
	return fmt.Sprintf("%s → %s: %s", caller, remote, reason)
}

// PendingOrders samples the PENDING orders in orders' store.
func PendingOrders() Probe {
	return Probe{Panel: PanelSagas, Kind: Gauge, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		n, err := env.pendingOrders(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]float64{SeriesPending: float64(n)}, nil
	}}
}

// SeriesPending names the series of PendingOrders.
const SeriesPending = "orders PENDING"

// poll calls cond every interval until it returns nil, ctx ends, or
// within passes; then it returns cond's last error.
func poll(ctx context.Context, within, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", within, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// metricsOf scrapes the /metrics of the stack process named name, on its
// admin listener.
func (e *Env) metricsOf(ctx context.Context, name string) (metrics, error) {
	p, err := e.proc(name)
	if err != nil {
		return nil, err
	}
	return scrape(ctx, e.HTTP, p.AdminAddr)
}
