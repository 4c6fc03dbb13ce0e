package chaos

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/stack"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// All returns the suite's experiments for a stack on store, in the order
// they run. kill-orders-database runs on PostgreSQL only, where orders'
// database is a server of its own to kill.
func All(store stack.Store) []Experiment {
	var database []Experiment
	if store == stack.StorePostgres {
		database = append(database, KillOrdersDatabase())
	}
	return slices.Concat([]Experiment{
		KillInventoryReplica(),
		PaymentsDown(),
		KillOrdersMidCheckout(),
	}, database, []Experiment{
		NATSDown(),
		KillRecommendations(),
		ConsulDown(),
		JaegerDown(),
		SlowPayments(),
		RequestFaults(),
		HostileClient(),
	})
}

// The steady load most experiments run: the load generator's default mix
// (mostly browsing, a fifth checkouts) at a rate this 2-core machine
// serves comfortably while running every service, Consul, Jaeger and
// Prometheus.
func steadyLoad(d time.Duration) Load {
	return Load{Rate: 40, Duration: d, Mix: loadgen.DefaultMix(), Users: 10}
}

func mainStream(l Load) []Stream { return []Stream{{Name: "main", Load: l}} }

// Timings of the platform that bounds are derived from.
const (
	// checkInterval is how often Consul checks an instance in the local
	// stack (CHECK_INTERVAL).
	checkInterval = time.Second
	// paymentsDeadline bounds a call from orders to payments, retries
	// included (transport.ClientConfig's default Deadline).
	paymentsDeadline = 3 * time.Second
	// attemptTimeout bounds one attempt.
	attemptTimeout = transport.DefaultCallTimeout
	// breakerOpenFor is how long a breaker stays open before a probe.
	breakerOpenFor = 5 * time.Second
)

// 1. Kill one inventory replica.

// Bounds of KillInventoryReplica.
const (
	// A dead instance must leave every caller's instancer within three
	// Consul check intervals: one for the check to fail, the rest for
	// the blocking query to deliver it.
	leaveWithin = 3 * checkInterval
	// A restarted instance must be back in rotation as quickly.
	rejoinWithin = 3 * checkInterval
	// Retrying on the other replica costs a refused connection, not a
	// timeout: customers should not feel the kill.
	killedBrowseP99   = 250 * time.Millisecond
	killedCheckoutP99 = 500 * time.Millisecond
)

// KillInventoryReplica SIGKILLs one of the two inventory replicas at
// steady load and restarts it ten seconds later.
func KillInventoryReplica() Experiment {
	return Experiment{
		Name:  "kill-inventory-replica",
		Title: "Kill one inventory replica under load",
		Hypothesis: fmt.Sprintf("Callers retry a call that hit the dead replica on the live one, and Consul's check "+
			"takes the dead one out of rotation: no browse call and no checkout fails; browse p99 stays ≤ %s and "+
			"checkout p99 ≤ %s while it is down; the gateway and orders drop it within %s and take it back within %s "+
			"of its restart.", ms(killedBrowseP99), ms(killedCheckoutP99), leaveWithin, rejoinWithin),
		Streams: mainStream(steadyLoad(25 * time.Second)),
		Steps: []Step{
			{At: 8 * time.Second, Mark: MarkFault, Action: Kill("inventory/2")},
			{At: 18 * time.Second, Mark: MarkRecover, Action: Restart("inventory/2")},
		},
		Probes: []Probe{
			InstancesSeen("gateway/1", "inventory"),
			InstancesSeen("orders/1", "inventory"),
			Passing("inventory"),
		},
		Judge: judgeKillInventoryReplica,
	}
}

func judgeKillInventoryReplica(run *Run) []Check {
	checks := []Check{scheduled(run)}
	tl, all, fault := run.Main().Report.Timeline, Window{0, run.end()}, run.FaultWindow()
	for _, op := range []loadgen.Op{loadgen.Browse, loadgen.Checkout} {
		t, during := Count(tl, op, all), Count(tl, op, fault)
		checks = append(checks, checkf(fmt.Sprintf("no %s fails", op), t.Due() > 0 && t.Unserved() == 0,
			"%s over the run; %d due while inventory/2 was dead", t.summary(), during.Due()))
	}
	for _, b := range []struct {
		op    loadgen.Op
		bound time.Duration
	}{{loadgen.Browse, killedBrowseP99}, {loadgen.Checkout, killedCheckoutP99}} {
		during, before := Count(tl, b.op, fault), Count(tl, b.op, run.Before())
		checks = append(checks, checkf(fmt.Sprintf("%s p99 while inventory/2 is dead ≤ %s", b.op, ms(b.bound)),
			during.Due() > 0 && during.WorstP99 <= b.bound,
			"worst second's p99 %s (before the kill: %s)", ms(during.WorstP99), ms(before.WorstP99)))
	}
	kill, _ := run.Mark(MarkFault)
	restart, _ := run.Mark(MarkRecover)
	back := restart.At + restart.Took
	for _, caller := range []string{"gateway/1", "orders/1"} {
		s := run.SeriesNamed(InstancesSeries(caller, "inventory"))
		left, ok := s.FirstAt(kill.At, func(v float64) bool { return v <= 1 })
		checks = append(checks, delayCheck(fmt.Sprintf("%s drops the dead replica within %s", caller, leaveWithin),
			left, ok, kill.At, leaveWithin, "after the kill"))
		joined, ok := s.FirstAt(back, func(v float64) bool { return v >= 2 })
		checks = append(checks, delayCheck(fmt.Sprintf("%s takes it back within %s of its restart", caller, rejoinWithin),
			joined, ok, back, rejoinWithin, "after it was ready"))
	}
	return append(checks, invariantChecks(run)...)
}

// 2. Every payments replica down, then back.

// Bounds of PaymentsDown.
const (
	// With payments gone a checkout must fail fast: well under one
	// attempt timeout, so no customer waits on a dead dependency.
	downFailP99 = 500 * time.Millisecond
	// Once payments is back, checkouts must succeed again within a few
	// check intervals.
	paymentsRecoverWithin = 5 * checkInterval
	// Any breaker that opened must be closed again by then too.
	breakersCloseWithin = 5 * checkInterval
)

// PaymentsDown SIGKILLs every payments replica, then restarts them.
func PaymentsDown() Experiment {
	return Experiment{
		Name:  "payments-down",
		Title: "Kill every payments replica, then restart them",
		Hypothesis: fmt.Sprintf("With no payments instance, orders fails a checkout fast and gives the stock back: "+
			"every failed checkout is a 503 unavailable, their p99 is ≤ %s, browse, login and order views are "+
			"unaffected, and no stock stays reserved. Once payments is back, checkouts succeed again within %s "+
			"and any payments breaker orders opened is closed within %s.", ms(downFailP99), paymentsRecoverWithin, breakersCloseWithin),
		Streams: mainStream(steadyLoad(30 * time.Second)),
		Steps: []Step{
			{At: 8 * time.Second, Mark: MarkFault, Action: Kill("payments/1", "payments/2")},
			{At: 16 * time.Second, Mark: MarkRecover, Action: Restart("payments/1", "payments/2")},
		},
		Probes: []Probe{
			Passing("payments"),
			InstancesSeen("orders/1", "payments"),
			Breakers("orders/1", "payments"),
			Unavailable("orders/1", "payments"),
		},
		Judge: judgePaymentsDown,
	}
}

func judgePaymentsDown(run *Run) []Check {
	checks := []Check{scheduled(run)}
	main, fault := run.Main(), run.FaultWindow()
	tl := main.Report.Timeline
	failed := main.requests(loadgen.Checkout, fault, Request.Failed)
	p99, n := latencyPercentile(failed, 99)
	p50, _ := latencyPercentile(failed, 50)
	checks = append(checks, checkf(fmt.Sprintf("checkouts fail fast while payments is down: p99 ≤ %s", ms(downFailP99)),
		n > 0 && p99 <= downFailP99, "p99 %s, median %s, of %d failed checkouts", ms(p99), ms(p50), n))
	not503 := 0
	for _, r := range failed {
		if r.Status != http.StatusServiceUnavailable {
			not503++
		}
	}
	during := Count(tl, loadgen.Checkout, fault)
	checks = append(checks, checkf("every failed checkout is a 503 unavailable",
		n > 0 && not503 == 0 && during.FailedOnly("unavailable"), "codes %s; %d answers other than 503", codes(during.Codes), not503))
	checks = append(checks, noneFail("browse, login and order views are unaffected", tl, Window{0, run.end()}, loadgen.Browse, loadgen.Login, loadgen.Orders))
	inv := run.Invariants
	checks = append(checks, checkf("no stock stays reserved", inv.Err == "" && inv.Held == 0 && len(inv.Of(StockNotConserved)) == 0,
		"%d units held %s after the load; %d orders FAILED and gave their stock back", inv.Held, seconds(inv.Quiet), inv.Orders[orders.Failed]))
	back := fault.To
	at, ok := RecoveredAt(tl, loadgen.Checkout, back, 1)
	checks = append(checks, delayCheck(fmt.Sprintf("checkouts succeed again within %s of payments' return", paymentsRecoverWithin),
		at, ok, back, paymentsRecoverWithin, "(to the second)"))
	checks = append(checks, breakersClosed(run, "orders/1", "payments", back, breakersCloseWithin))
	return append(checks, invariantChecks(run)...)
}

// 3. Kill orders in the middle of checkouts.

// Bounds of KillOrdersMidCheckout.
const (
	// Checkouts must work again within a few check intervals of orders'
	// restart.
	ordersRecoverWithin = 5 * checkInterval
	// slowCharge keeps sagas in flight long enough to be caught.
	slowCharge = 400 * time.Millisecond
)

// KillOrdersMidCheckout SIGKILLs orders while checkouts are mid-saga
// (payments slowed down so that many are), then restarts it.
func KillOrdersMidCheckout() Experiment {
	return Experiment{
		Name:  "kill-orders-mid-checkout",
		Title: "Kill orders while checkouts are in flight, then restart it",
		Hypothesis: fmt.Sprintf("A checkout's saga records each step before relying on it, and orders' recovery finishes "+
			"or compensates whatever a crash interrupted: the kill catches checkouts mid-saga; after the restart every "+
			"order reaches an end (nothing left PENDING), stock is conserved with nothing left reserved, no order is "+
			"charged twice, every charge belongs to a CONFIRMED order or was refunded, and checkouts succeed again within %s. "+
			"No outbox row is lost or applied twice: every confirmed order reaches recommendations exactly once within %s of the load's end.",
			ordersRecoverWithin, eventsDeliveredWithin),
		Streams: mainStream(Load{Rate: 20, Duration: 20 * time.Second, Mix: loadgen.Mix{loadgen.Checkout: 60, loadgen.Browse: 30, loadgen.Orders: 10}, Users: 10}),
		// Every charge waits, so that sagas are caught between steps.
		Setup: func(ctx context.Context, env *Env) error { return env.setPaymentsFaults(ctx, 0, slowCharge) },
		Steps: []Step{
			{At: 6 * time.Second, Mark: MarkFault, Action: KillMidCheckout("orders/1", 3, 10*time.Second)},
			{At: 9 * time.Second, Mark: MarkRecover, Action: Restart("orders/1")},
		},
		Probes:  []Probe{PendingOrders(), Passing("orders"), EventProbes()},
		Measure: eventsDelivered,
		Judge:   judgeKillOrdersMidCheckout,
	}
}

func judgeKillOrdersMidCheckout(run *Run) []Check {
	checks := []Check{scheduled(run)}
	tl, fault := run.Main().Report.Timeline, run.FaultWindow()
	pending, _ := run.Value(ValuePendingAtKill)
	seen := Count(tl, loadgen.Checkout, fault)
	checks = append(checks, checkf("the kill catches checkouts mid-saga", pending >= 1,
		"%.0f orders left PENDING by the crash; customers saw %s while orders was down", pending, codes(seen.Codes)))
	at, ok := RecoveredAt(tl, loadgen.Checkout, fault.To, 1)
	checks = append(checks, delayCheck(fmt.Sprintf("checkouts succeed again within %s of the restart", ordersRecoverWithin),
		at, ok, fault.To, ordersRecoverWithin, "(to the second)"))
	// The crash catches outbox rows claimed and not yet marked published:
	// the next relay publishes them again, and NATS' dedup window and
	// recommendations' processed events keep each to one.
	checks = append(checks, eventChecks(run)...)
	return append(checks, invariantChecks(run)...)
}

// 4. Consul down, then back.

// Bounds of ConsulDown.
const (
	// Callers keep their last known instances while Consul is away.
	consulDownErrors = 0.001
	// Every instance must be registered and passing again within this of
	// Consul's return: the registrar's resync (5s) or, after a long
	// outage, its capped backoff (10s), plus a check interval.
	reregisterWithin = 15 * time.Second
	// Meanwhile requests are served, or refused at once.
	reregisterP99 = 500 * time.Millisecond
)

// ConsulDown SIGKILLs the Consul agent and restarts it ten seconds later.
// The local agent runs in dev mode: it comes back empty, as a real agent
// that lost its state would.
func ConsulDown() Experiment {
	return Experiment{
		Name:  "consul-down",
		Title: "Kill the Consul agent, then restart it",
		Hypothesis: fmt.Sprintf("Callers keep routing to the instances they last saw, so traffic flows while Consul is "+
			"down (error ratio ≤ %s); when it returns, empty, every instance registers again by itself and passes "+
			"its check within %s; meanwhile a request that finds a service not yet registered fails fast as 503 "+
			"unavailable (p99 ≤ %s).", percent(consulDownErrors), reregisterWithin, ms(reregisterP99)),
		Streams: mainStream(steadyLoad(35 * time.Second)),
		Steps: []Step{
			{At: 8 * time.Second, Mark: MarkFault, Action: Kill("consul")},
			{At: 18 * time.Second, Mark: MarkRecover, Action: Restart("consul")},
		},
		Probes: []Probe{
			Passing(services.Names()...),
			KnownInstances("gateway/1"),
			KnownInstances("orders/1"),
		},
		Measure: recordReplicas,
		Judge:   judgeConsulDown,
	}
}

// recordReplicas records how many instances each service runs, for the
// judge to know what "every instance" is.
func recordReplicas(_ context.Context, env *Env, run *Run) error {
	for _, svc := range services.Names() {
		run.SetValue(replicasValue(svc), float64(len(env.Stack.Instances(svc))))
	}
	return nil
}

func replicasValue(service string) string { return "replicas/" + service }

func judgeConsulDown(run *Run) []Check {
	checks := []Check{scheduled(run)}
	tl, fault := run.Main().Report.Timeline, run.FaultWindow()
	// The seconds Consul was down throughout: the one it came back in
	// belongs to the re-registration.
	during := Count(tl, "", fault.Whole())
	checks = append(checks, checkf(fmt.Sprintf("traffic flows while Consul is down: error ratio ≤ %s", percent(consulDownErrors)),
		during.Due() > 0 && during.ErrorRatio() <= consulDownErrors, "%s (codes %s)", during.summary(), codes(during.Codes)))
	back := fault.To
	var (
		times []string
		worst time.Duration
		all   = true
	)
	for _, svc := range services.Names() {
		want, ok := run.Value(replicasValue(svc))
		s := run.SeriesNamed(PassingSeries(svc))
		at, settled := s.SettledAt(back, func(v float64) bool { return v >= want })
		if !ok || !settled {
			all = false
			times = append(times, svc+" never")
			continue
		}
		worst = max(worst, at-back)
		times = append(times, fmt.Sprintf("%s %s", svc, seconds(at-back)))
	}
	summary := fmt.Sprintf("all passing %s after Consul's return", seconds(worst))
	if !all {
		summary = "not all passing again by the end of the load"
	}
	checks = append(checks, checkf(fmt.Sprintf("every instance registers again by itself within %s", reregisterWithin),
		all && worst <= reregisterWithin, "%s (%s)", summary, strings.Join(times, ", ")))
	// Until the last instance is back, and a second more for callers to
	// learn of it; to the end of the load if one never came back.
	rereg := Window{back, back + worst + time.Second}
	if !all {
		rereg.To = run.end()
	}
	// Callers keep their instances until they next read Consul, and may
	// then find a service not registered yet: a request that cannot be
	// served must fail fast, as 503 unavailable. How many do is reported:
	// it depends on how the registrars' and the instancers' backoffs
	// fall.
	after := Count(tl, "", rereg)
	checks = append(checks, checkf(fmt.Sprintf("while they re-register, what cannot be served fails fast as unavailable (p99 ≤ %s)", ms(reregisterP99)),
		after.Due() > 0 && after.FailedOnly("unavailable") && after.WorstP99 <= reregisterP99,
		"%s in %s (codes %s); worst second's p99 %s", after.summary(), rereg, codes(after.Codes), ms(after.WorstP99)))
	return append(checks, invariantChecks(run)...)
}

// 5. Jaeger down, then back.

// Bounds of JaegerDown.
const (
	// Tracing must cost requests nothing when its collector is gone: the
	// error ratio may not rise by more than this...
	jaegerExtraErrors = 0.001
	// ...and the p99 of the outage's median second may not exceed the
	// baseline's by more than this factor (a median of per-second p99s,
	// so that one noisy second of a busy 2-core machine does not decide).
	jaegerLatencyFactor = 1.5
	jaegerLatencySlack  = 20 * time.Millisecond
	// The batch span processor's queue holds at most 2048 spans, and a
	// batch whose export fails is dropped: the heap may not grow more than
	// this while the collector is gone. It guards against a runaway; at
	// this load a buffer that kept every lost span would grow only a few
	// MiB in the outage, which the report shows beside the measurement.
	jaegerHeapGrowth = 32 << 20
	// spanSize is roughly what one finished span holds in memory, to say
	// what keeping the lost spans would have cost.
	spanSize = 2 << 10
	// A checkout after Jaeger's return must be found in it within this.
	traceWithin = 30 * time.Second
)

// Trace purposes.
const (
	TraceAfterJaegerReturns = "a checkout after Jaeger's return"
	TraceErrorFault         = "a checkout asking for fault.payments=error"
	TraceDelayFault         = "a checkout asking for a charge delay"
	TraceClean              = "a clean checkout beside them"
)

// JaegerDown SIGKILLs Jaeger, restarts it fifteen seconds later, and
// compares the outage with the time before it.
func JaegerDown() Experiment {
	return Experiment{
		Name:  "jaeger-down",
		Title: "Kill Jaeger, then restart it",
		Hypothesis: fmt.Sprintf("Spans are exported in the background from a bounded queue, so losing the collector "+
			"costs requests nothing: during the outage the error ratio is at most %s above the baseline's and the "+
			"median second's p99 at most %.1f× the baseline's (+%s); the lost spans are counted "+
			"(glasshouse_spans_exported_total{result=\"failure\"} grows); the gateway's heap grows by less than %d MiB; "+
			"and a checkout after Jaeger's return is in Jaeger within %s.",
			percent(jaegerExtraErrors), jaegerLatencyFactor, ms(jaegerLatencySlack), jaegerHeapGrowth>>20, traceWithin),
		Streams: mainStream(steadyLoad(40 * time.Second)),
		Steps: []Step{
			{At: 12 * time.Second, Mark: MarkFault, Action: Kill("jaeger")},
			{At: 27 * time.Second, Mark: MarkRecover, Action: Restart("jaeger")},
		},
		Probes: []Probe{SpansExported("gateway/1"), SpansExported("orders/1"), Memory("gateway/1")},
		Measure: func(ctx context.Context, env *Env, run *Run) error {
			status, id, err := env.Customer.Checkout(ctx)
			if err != nil || status != http.StatusCreated {
				return fmt.Errorf("a checkout after Jaeger's return: %d %v", status, err)
			}
			run.Traces = append(run.Traces, env.Trace(ctx, TraceAfterJaegerReturns, id, traceWithin))
			return nil
		},
		Judge: judgeJaegerDown,
	}
}

func judgeJaegerDown(run *Run) []Check {
	checks := []Check{scheduled(run)}
	tl, fault := run.Main().Report.Timeline, run.FaultWindow()
	// The first seconds warm connections up; the baseline starts after.
	before := Window{From: min(2*time.Second, run.Before().To), To: run.Before().To}
	b, d := Count(tl, "", before), Count(tl, "", fault)
	checks = append(checks, checkf(fmt.Sprintf("the error ratio does not rise by more than %s", percent(jaegerExtraErrors)),
		d.Due() > 0 && d.ErrorRatio() <= b.ErrorRatio()+jaegerExtraErrors,
		"%s during the outage, %s before", percent(d.ErrorRatio()), percent(b.ErrorRatio())))
	bp, dp := medianP99(tl, before), medianP99(tl, fault)
	bound := time.Duration(jaegerLatencyFactor*float64(bp)) + jaegerLatencySlack
	checks = append(checks, checkf(fmt.Sprintf("latency is unaffected: median second's p99 ≤ %.1f× the baseline's + %s", jaegerLatencyFactor, ms(jaegerLatencySlack)),
		dp > 0 && dp <= bound, "%s during the outage, %s before (bound %s); worst second %s vs %s",
		ms(dp), ms(bp), ms(bound), ms(d.WorstP99), ms(b.WorstP99)))
	lost := run.SeriesNamed(SpansSeries("gateway/1", "failure")).Increase(fault)
	sent := run.SeriesNamed(SpansSeries("gateway/1", "success")).Increase(before)
	checks = append(checks, checkf("the spans lost are counted", lost > 0,
		"gateway/1 counted %.0f spans failed to export during the outage (it exported %.0f in the %s before)", lost, sent, seconds(before.Len())))
	heap, rss := run.SeriesNamed(MemorySeries("gateway/1", "heap in use")), run.SeriesNamed(MemorySeries("gateway/1", "RSS"))
	h0, ok0 := heap.Last(run.Before())
	h1, ok1 := heap.Max(fault)
	r0, _ := rss.Last(run.Before())
	r1, _ := rss.Max(fault)
	rEnd, _ := rss.Last(Window{0, run.end() + time.Minute})
	checks = append(checks, checkf(fmt.Sprintf("memory stays bounded: the gateway's heap grows < %d MiB", jaegerHeapGrowth>>20),
		ok0 && ok1 && h1-h0 < jaegerHeapGrowth, "heap %s before, at most %s during; RSS %s before, at most %s during, %s at the end "+
			"(keeping the %.0f lost spans would have taken about %s)",
		mib(h0), mib(h1), mib(r0), mib(r1), mib(rEnd), lost, mib(lost*spanSize)))
	tr, _ := run.Trace(TraceAfterJaegerReturns)
	checks = append(checks, checkf(fmt.Sprintf("traces appear again: a checkout after the return is in Jaeger within %s", traceWithin),
		tr.Found, "%s", describeTrace(tr)))
	return append(checks, invariantChecks(run)...)
}

// medianP99 is the median of the per-second p99 latencies of every
// request due in w.
func medianP99(tl []loadgen.Second, w Window) time.Duration {
	var p99s []time.Duration
	for _, s := range tl {
		if w.overlaps(s.Start) && s.Total.OK+s.Total.Failed() > 0 {
			p99s = append(p99s, s.Total.Latency.P99)
		}
	}
	if len(p99s) == 0 {
		return 0
	}
	slices.Sort(p99s)
	return p99s[len(p99s)/2]
}

func mib(bytes float64) string { return fmt.Sprintf("%.1f MiB", bytes/(1<<20)) }

// 6. Payments slower than orders' per-attempt timeout.

// Bounds of SlowPayments.
const (
	// slowPaymentsBy is above the 1s attempt timeout: every charge to a
	// slowed instance times out.
	slowPaymentsBy = 1500 * time.Millisecond
	// Five timeouts in a row open a breaker: with half the charges sent
	// to the slow instance, a couple of seconds.
	breakerOpensWithin = 5 * time.Second
	// With one instance slow, a checkout fails only when every attempt of
	// its charge picks that instance. Round robin is shared by every
	// charge in flight, so after an attempt has waited out its timeout
	// the next one picks either instance: at most (1/2)³ = 12.5% of
	// checkouts fail, fewer once the breaker is open (a refusal costs no
	// time, and the next attempt takes the next instance). The bound
	// doubles it for noise; without retries half of them would fail.
	oneSlowFailures = 0.25
	// No checkout may wait much longer than orders' deadline on payments:
	// the deadline plus the rest of the saga and the gateway.
	slowCheckoutP99 = paymentsDeadline + time.Second
	// After the slowdown, a breaker waits out its open period, then one
	// probe closes it.
	slowRecoverWithin = breakerOpenFor + 5*time.Second
	// Browsing does not touch payments: its p99 must stay low.
	slowBrowseP99 = 250 * time.Millisecond
)

// MarkAllSlow is SlowPayments' step that slows the second instance too.
const MarkAllSlow = "all-slow"

// SlowPayments turns one payments instance's latency knob above orders'
// per-attempt timeout, then the other's, then both off.
func SlowPayments() Experiment {
	return Experiment{
		Name:  "slow-payments",
		Title: fmt.Sprintf("Slow payments/2, then payments/1 too, to %s (above the %s attempt timeout)", slowPaymentsBy, attemptTimeout),
		Hypothesis: fmt.Sprintf("Orders bounds every call to payments (%s per attempt, %s in all), retries a timed-out "+
			"charge, and trips the breaker of an instance that keeps timing out. With one instance slow, at most %s "+
			"of checkouts fail (all three attempts on the slow instance); its breaker opens within %s, after which "+
			"only its half-open probes wait for a timeout. With both slow, timeouts fire, failed checkouts are 503 unavailable and checkout p99 stays ≤ %s. "+
			"Browsing is unaffected throughout (no failure, p99 ≤ %s). After the slowdown checkouts succeed again "+
			"within %s and the breakers close.",
			attemptTimeout, paymentsDeadline, percent(oneSlowFailures), breakerOpensWithin, slowCheckoutP99,
			ms(slowBrowseP99), slowRecoverWithin),
		Streams: mainStream(steadyLoad(36 * time.Second)),
		Steps: []Step{
			{At: 6 * time.Second, Mark: MarkFault, Action: SlowPaymentsBy(slowPaymentsBy, "payments/2")},
			{At: 16 * time.Second, Mark: MarkAllSlow, Action: SlowPaymentsBy(slowPaymentsBy, "payments/1")},
			{At: 26 * time.Second, Mark: MarkRecover, Action: SlowPaymentsBy(0, "payments/1", "payments/2")},
		},
		Probes: []Probe{Breakers("orders/1", "payments"), Unavailable("orders/1", "payments")},
		Judge:  judgeSlowPayments,
	}
}

func judgeSlowPayments(run *Run) []Check {
	checks := []Check{scheduled(run)}
	main, fault := run.Main(), run.FaultWindow()
	tl := main.Report.Timeline
	both, ok := run.Mark(MarkAllSlow)
	if !ok {
		return append(checks, checkf("the second instance was slowed down", false, "no %s step", MarkAllSlow))
	}
	one := Window{fault.From, both.At}
	all := Window{both.At, fault.To}

	// One instance slow: retries hide most of it, the breaker ejects it.
	oneSlow := Count(tl, loadgen.Checkout, one.Whole())
	checks = append(checks, checkf(fmt.Sprintf("with payments/2 slow, retries keep failed checkouts ≤ %s", percent(oneSlowFailures)),
		oneSlow.Due() > 0 && oneSlow.ErrorRatio() <= oneSlowFailures, "%s (codes %s)", oneSlow.summary(), codes(oneSlow.Codes)))
	slow := run.SeriesNamed(BreakerSeries("orders/1", "payments/2"))
	opened, isOpen := slow.FirstAt(one.From, func(v float64) bool { return v == 2 })
	checks = append(checks, delayCheck(fmt.Sprintf("orders opens its breaker on payments/2 within %s", breakerOpensWithin),
		opened, isOpen && opened < one.To, one.From, breakerOpensWithin, "after it was slowed"))
	if !isOpen || opened >= one.To {
		opened = one.To
	}
	// Once it is open, only the breaker's half-open probe, one per open
	// period, lets a charge through to wait for its timeout.
	waitedBefore := timedOut(main.requests(loadgen.Checkout, Window{one.From, opened}, nil))
	after := main.requests(loadgen.Checkout, Window{opened, one.To}, nil)
	waited := timedOut(after)
	probes := int((one.To-opened)/breakerOpenFor) + 1
	checks = append(checks, checkf("with its breaker open, only its half-open probes wait for a timeout",
		isOpen && len(after) > 0 && waited <= probes,
		"%d of %d checkouts took ≥ %s from %s to %s, where at most %d probes fit (%d did before the breaker opened)",
		waited, len(after), attemptTimeout, seconds(opened), seconds(one.To), probes, waitedBefore))

	// Both slow: timeouts bound every checkout, which fails.
	allSlow := Count(tl, loadgen.Checkout, all.Whole())
	unavailable := func(reason string) float64 {
		return run.SeriesNamed(UnavailableSeries("orders/1", "payments", reason)).Increase(all)
	}
	timedOutCalls, refused := unavailable("failed")+unavailable("deadline"), unavailable("breaker_open")
	var states []string
	for _, s := range breakerSeries(run, "orders/1", "payments") {
		if at, ok := s.FirstAt(all.From, func(v float64) bool { return v == 2 }); ok && at < all.To {
			states = append(states, fmt.Sprintf("%s open at %s", strings.TrimPrefix(s.Name, "orders/1 → "), seconds(at)))
		} else {
			states = append(states, strings.TrimPrefix(s.Name, "orders/1 → ")+" not open")
		}
	}
	checks = append(checks, checkf("with both slow, timeouts fire: orders gives up on slow payments calls", timedOutCalls > 0,
		"orders gave up %.0f payments calls after their attempts timed out and refused %.0f at open breakers (%s)",
		timedOutCalls, refused, strings.Join(orNone(states), ", ")))
	checks = append(checks, checkf(fmt.Sprintf("with both slow, checkout p99 stays ≤ %s", slowCheckoutP99),
		allSlow.Due() > 0 && allSlow.WorstP99 <= slowCheckoutP99, "worst second's p99 %s (before the slowdown: %s)",
		ms(allSlow.WorstP99), ms(Count(tl, loadgen.Checkout, run.Before()).WorstP99)))
	checks = append(checks, checkf("with both slow, failed checkouts are 503 unavailable", allSlow.Failed > 0 && allSlow.FailedOnly("unavailable"),
		"%s (codes %s)", allSlow.summary(), codes(allSlow.Codes)))

	browse := Count(tl, loadgen.Browse, Window{0, run.end()})
	browseDuring := Count(tl, loadgen.Browse, fault)
	checks = append(checks, checkf(fmt.Sprintf("browsing is unaffected: no failure, p99 ≤ %s", ms(slowBrowseP99)),
		browse.Due() > 0 && browse.Unserved() == 0 && browseDuring.WorstP99 <= slowBrowseP99,
		"%s; worst second's p99 during the slowdown %s", browse.summary(), ms(browseDuring.WorstP99)))
	at, ok := RecoveredAt(tl, loadgen.Checkout, fault.To, 1)
	checks = append(checks, delayCheck(fmt.Sprintf("checkouts succeed again within %s of the slowdown's end", slowRecoverWithin),
		at, ok, fault.To, slowRecoverWithin, "(to the second)"))
	checks = append(checks, breakersClosed(run, "orders/1", "payments", fault.To, slowRecoverWithin))
	return append(checks, invariantChecks(run)...)
}

// timedOut counts the requests that took at least an attempt timeout.
func timedOut(reqs []Request) int {
	n := 0
	for _, r := range reqs {
		if r.Latency >= attemptTimeout {
			n++
		}
	}
	return n
}

// 7. Per-request faults.

// Baggage of RequestFaults' faulted streams.
const (
	errorBaggage = "fault.payments=error"
	delayBaggage = "fault.payments.Charge=delay:300ms"
	injectDelay  = 300 * time.Millisecond
)

// RequestFaults sends three streams at once: a clean one, one whose
// checkouts ask payments to fail, and one whose checkouts ask payments'
// Charge to wait 300ms.
func RequestFaults() Experiment {
	checkoutsOnly := loadgen.Mix{loadgen.Checkout: 1}
	return Experiment{
		Name:  "request-faults",
		Title: "Per-request faults in baggage beside clean traffic",
		Hypothesis: fmt.Sprintf("A fault asked for in a request's baggage hits that request only, and is marked on "+
			"its span: every checkout with %q fails; every checkout with %q succeeds and takes ≥ %s; the clean "+
			"stream beside them loses no request and its checkout p99 stays under %s; and the traces show a "+
			"fault.injected event on a payments span for both faulted checkouts and none for a clean one.",
			errorBaggage, delayBaggage, ms(injectDelay), ms(injectDelay)),
		Streams: []Stream{
			{Name: "clean", Load: Load{Rate: 30, Duration: 20 * time.Second, Mix: loadgen.DefaultMix(), Users: 10}},
			// One faulted checkout a second each: evidence enough. An
			// injected error counts against orders' breaker on a payments
			// instance like a real one, and the clean stream shares those
			// breakers: more faulted traffic would trip them.
			{Name: "error", Load: Load{Rate: 1, Duration: 20 * time.Second, Mix: checkoutsOnly, Users: 2}, Baggage: errorBaggage},
			{Name: "delay", Load: Load{Rate: 1, Duration: 20 * time.Second, Mix: checkoutsOnly, Users: 2}, Baggage: delayBaggage},
		},
		Probes: []Probe{Breakers("orders/1", "payments")},
		Measure: func(ctx context.Context, env *Env, run *Run) error {
			for _, t := range []struct{ purpose, stream string }{
				{TraceErrorFault, "error"}, {TraceDelayFault, "delay"}, {TraceClean, "clean"},
			} {
				run.Traces = append(run.Traces, env.Trace(ctx, t.purpose, firstCheckout(run.StreamNamed(t.stream)), traceWithin))
			}
			return nil
		},
		Judge: judgeRequestFaults,
	}
}

// firstCheckout returns the trace ID of the stream's first checkout that
// got an answer.
func firstCheckout(s *StreamRun) string {
	for _, r := range s.Requests {
		if r.Op == loadgen.Checkout && r.At >= 0 && r.Status != 0 && r.TraceID != "" {
			return r.TraceID
		}
	}
	return ""
}

func judgeRequestFaults(run *Run) []Check {
	var checks []Check
	all := Window{0, run.end() + time.Minute} // the streams started at slightly different times
	errs := Count(run.StreamNamed("error").Report.Timeline, loadgen.Checkout, all)
	checks = append(checks, checkf(fmt.Sprintf("every checkout asking for %s fails", errorBaggage),
		errs.Due() > 0 && errs.OK == 0, "%d of %d failed (codes %s)", errs.Failed, errs.Due(), codes(errs.Codes)))
	delay := run.StreamNamed("delay")
	slow := Count(delay.Report.Timeline, loadgen.Checkout, all)
	delayed := delay.requests(loadgen.Checkout, Window{0, all.To}, nil)
	fastest, _ := latencyPercentile(delayed, 0)
	median, _ := latencyPercentile(delayed, 50)
	checks = append(checks, checkf(fmt.Sprintf("every checkout asking for a %s charge delay succeeds and takes ≥ %s", ms(injectDelay), ms(injectDelay)),
		slow.Due() > 0 && slow.Unserved() == 0 && len(delayed) > 0 && fastest >= injectDelay,
		"%s; fastest %s, median %s (from sending to the answer)", slow.summary(), ms(fastest), ms(median)))
	cleanRun := run.StreamNamed("clean")
	clean := Count(cleanRun.Report.Timeline, "", all)
	opened := 0
	for _, s := range breakerSeries(run, "orders/1", "payments") {
		if m, ok := s.Max(all); ok && m == 2 {
			opened++
		}
	}
	checks = append(checks, checkf("the clean stream loses no request", clean.Due() > 0 && clean.Unserved() == 0,
		"%s (codes %s); orders opened %d payments breakers meanwhile", clean.summary(), codes(clean.Codes), opened))
	cleanCheckouts := Count(cleanRun.Report.Timeline, loadgen.Checkout, all)
	checks = append(checks, checkf(fmt.Sprintf("clean checkouts are not slowed: p99 < %s", ms(injectDelay)),
		cleanCheckouts.Due() > 0 && cleanCheckouts.WorstP99 < injectDelay, "worst second's p99 %s", ms(cleanCheckouts.WorstP99)))
	for _, t := range []struct {
		purpose string
		want    bool
	}{{TraceErrorFault, true}, {TraceDelayFault, true}, {TraceClean, false}} {
		tr, _ := run.Trace(t.purpose)
		claim := "the trace of " + t.purpose + " shows fault.injected on a payments span"
		if !t.want {
			claim = "the trace of " + t.purpose + " shows no injected fault"
		}
		checks = append(checks, checkf(claim, tr.Found && (tr.FaultEvents > 0) == t.want, "%s", describeTrace(tr)))
	}
	return append(checks, invariantChecks(run)...)
}

// Shared checks.

// scheduled checks that the experiment's faults and repairs happened.
func scheduled(run *Run) Check {
	var parts []string
	ok := len(run.Marks) > 0
	for _, m := range run.Marks {
		part := fmt.Sprintf("%s at %s (%s)", m.Label, seconds(m.At), m.Took.Round(time.Millisecond))
		if m.Err != "" {
			ok = false
			part += ": " + m.Err
		}
		parts = append(parts, part)
	}
	for _, key := range []string{MarkFault, MarkRecover} {
		if _, found := run.Mark(key); !found {
			ok = false
			parts = append(parts, "no "+key+" step")
		}
	}
	return checkf("the faults and repairs were carried out as scheduled", ok, "%s", strings.Join(parts, "; "))
}

// delayCheck checks that something happened at at (found says whether it
// did), within bound of since.
func delayCheck(claim string, at time.Duration, found bool, since, bound time.Duration, what string) Check {
	if !found {
		return checkf(claim, false, "never, in the run")
	}
	d := max(at-since, 0)
	return checkf(claim, d <= bound, "%s %s", seconds(d), what)
}

// breakersClosed checks that every breaker caller holds for remote is
// closed within bound of since, and stays closed.
func breakersClosed(run *Run, caller, remote string, since, bound time.Duration) Check {
	claim := fmt.Sprintf("%s's breakers on %s are closed within %s", caller, remote, bound)
	var (
		parts []string
		worst time.Duration
		ok    = true
	)
	for _, s := range breakerSeries(run, caller, remote) {
		name := strings.TrimPrefix(s.Name, caller+" → ")
		opened, wasOpen := s.Max(Window{0, since + time.Hour})
		at, closed := s.SettledAt(since, func(v float64) bool { return v == 0 })
		last, any := s.Last(Window{since, since + time.Hour})
		switch {
		case !any:
			parts = append(parts, name+" forgotten (left discovery)")
		case !closed || last != 0:
			ok = false
			parts = append(parts, name+" still not closed")
		default:
			worst = max(worst, at-since)
			state := "never opened"
			if wasOpen && opened > 0 {
				state = "opened, closed " + seconds(at-since) + " after"
			}
			parts = append(parts, name+" "+state)
		}
	}
	if len(parts) == 0 {
		parts = []string{"orders held no breaker on payments"}
	}
	return checkf(claim, ok && worst <= bound, "%s", strings.Join(parts, "; "))
}

// noneFail checks that ops were sent in w and none of them failed or was
// skipped, naming each one's count (and codes, when some failed).
func noneFail(claim string, tl []loadgen.Second, w Window, ops ...loadgen.Op) Check {
	var parts []string
	clean := true
	for _, op := range ops {
		t := Count(tl, op, w)
		clean = clean && t.Due() > 0 && t.Unserved() == 0
		part := fmt.Sprintf("%s %d of %d", op, t.Unserved(), t.Due())
		if t.Unserved() > 0 {
			part += " (codes " + codes(t.Codes) + ")"
		}
		parts = append(parts, part)
	}
	return checkf(claim, clean, "failed: %s", strings.Join(parts, ", "))
}

// invariantChecks are the checkout's promises, checked after every
// experiment once its sagas have ended.
func invariantChecks(run *Run) []Check {
	inv := run.Invariants
	if inv.Err != "" {
		return []Check{checkf("the services' stores can be read", false, "%s", inv.Err)}
	}
	first := func(kind string) string {
		vs := inv.Of(kind)
		if len(vs) == 0 {
			return ""
		}
		more := ""
		if len(vs) > 1 {
			more = fmt.Sprintf(" (and %d more)", len(vs)-1)
		}
		return "; e.g. " + vs[0].Detail + more
	}
	total := 0
	for _, n := range inv.Orders {
		total += n
	}
	ended := checkf("every order reaches an end", true, "%d orders (%s), none PENDING (read %s after the load)", total, statuses(inv.Orders), seconds(inv.Quiet))
	if pending := inv.Orders[orders.Pending]; pending > 0 {
		ended = checkf(ended.Claim, false, "%d orders (%s): %d still PENDING %s after the load", total, statuses(inv.Orders), pending, seconds(inv.Quiet))
	}
	return []Check{
		ended,
		checkf("stock is conserved, none left reserved", len(inv.Of(StockNotConserved)) == 0,
			"%d units held%s", inv.Held, first(StockNotConserved)),
		checkf("no order is charged twice", len(inv.Of(DoubleCharge)) == 0, "%d charges%s", inv.Charges, first(DoubleCharge)),
		checkf("every charge belongs to a CONFIRMED order, or was refunded", len(inv.Of(StrayCharge)) == 0,
			"%d charges, %d refunded%s", inv.Charges, inv.Refunded, first(StrayCharge)),
	}
}

func statuses(counts map[orders.Status]int) string {
	var parts []string
	for _, s := range []orders.Status{orders.Confirmed, orders.Failed, orders.Rejected, orders.Pending} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	return strings.Join(orNone(parts), ", ")
}

// codes writes error counts by code, most frequent first.
func codes(c map[string]int) string {
	var keys []string
	for k, n := range c {
		if n > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c[a] != c[b] {
			return c[b] - c[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
	}
	return strings.Join(orNone(parts), ", ")
}

func orNone(parts []string) []string {
	if len(parts) == 0 {
		return []string{"none"}
	}
	return parts
}

func describeTrace(t TraceEvidence) string {
	switch {
	case t.TraceID == "":
		return "no trace to read: " + t.Err
	case !t.Found && t.Spans == 0:
		return fmt.Sprintf("trace %s not in Jaeger: %s", t.TraceID, t.Err)
	case !t.Found:
		return fmt.Sprintf("trace %s incomplete (%d spans): %s", t.TraceID, t.Spans, t.Err)
	}
	return fmt.Sprintf("trace %s: %d spans, %d payments spans with fault.injected", t.TraceID, t.Spans, t.FaultEvents)
}
