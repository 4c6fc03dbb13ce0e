package chaos

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/services"
)

const sec = time.Second

// Each experiment's judge passes a healthy run, and fails each broken
// variant on the claims that the broken mechanism answers for, and on
// those only.

func TestKillInventoryReplicaVerdicts(t *testing.T) {
	healthy := func(s *synth) *Run {
		run := newRun(s.report(), 8*sec, 18*sec)
		for _, caller := range []string{"gateway/1", "orders/1"} {
			run.addSeries(InstancesSeries(caller, "inventory"), PanelCallers, Gauge, 25*sec,
				steps([]time.Duration{0, 8300 * time.Millisecond, 18600 * time.Millisecond}, []float64{2, 1, 2}))
		}
		return run
	}
	t.Run("healthy", func(t *testing.T) {
		expectFailures(t, judgeKillInventoryReplica(healthy(shop(25))))
	})
	t.Run("retries disabled: calls sent to the dead replica fail", func(t *testing.T) {
		run := healthy(shop(25).fail(8, 9, loadgen.Browse, 6, "unavailable").fail(8, 9, loadgen.Checkout, 2, "unavailable"))
		expectFailures(t, judgeKillInventoryReplica(run), "no browse fails", "no checkout fails")
	})
	t.Run("a hung replica: every retry waits for a timeout", func(t *testing.T) {
		run := healthy(shop(25).slow(8, 10, loadgen.Browse, time.Second).slow(8, 10, loadgen.Checkout, time.Second))
		expectFailures(t, judgeKillInventoryReplica(run), "browse p99", "checkout p99")
	})
	t.Run("discovery never drops the dead replica", func(t *testing.T) {
		run := newRun(shop(25).report(), 8*sec, 18*sec)
		for _, caller := range []string{"gateway/1", "orders/1"} {
			run.addSeries(InstancesSeries(caller, "inventory"), PanelCallers, Gauge, 25*sec, step(0, 2, 2))
		}
		expectFailures(t, judgeKillInventoryReplica(run), "drops the dead replica")
	})
	t.Run("the kill never happened", func(t *testing.T) {
		run := healthy(shop(25))
		run.Marks[0].Err = "no process"
		expectFailures(t, judgeKillInventoryReplica(run), "carried out as scheduled")
	})
}

func TestPaymentsDownVerdicts(t *testing.T) {
	build := func(failLatency time.Duration, breaker func(time.Duration) (float64, bool)) *Run {
		run := newRun(shop(30).fail(8, 17, loadgen.Checkout, 8, "unavailable").report(), 8*sec, 16*sec)
		run.tapRequests(loadgen.Checkout, 8*sec, 16*sec, 8, http.StatusServiceUnavailable, failLatency)
		run.addSeries(BreakerSeries("orders/1", "payments/1"), PanelBreakers, Breaker, 30*sec, breaker)
		return run
	}
	// Open from 8.2s until payments/1 leaves discovery at 9s (the
	// breaker is forgotten), new and closed after its return.
	healthyBreaker := func(t time.Duration) (float64, bool) {
		switch {
		case t < 8200*time.Millisecond:
			return 0, true
		case t < 9*sec:
			return 2, true
		case t < 16500*time.Millisecond:
			return 0, false
		}
		return 0, true
	}
	t.Run("healthy", func(t *testing.T) {
		expectFailures(t, judgePaymentsDown(build(6*time.Millisecond, healthyBreaker)))
	})
	t.Run("no fail-fast: each checkout waits out the payments deadline", func(t *testing.T) {
		expectFailures(t, judgePaymentsDown(build(3*time.Second, healthyBreaker)), "fail fast")
	})
	t.Run("no compensation: failed checkouts keep their stock", func(t *testing.T) {
		run := build(6*time.Millisecond, healthyBreaker)
		run.Invariants.Held = 72
		run.Invariants.Broken = []Violation{{StockNotConserved, "GH-MUG-01: held 72"}}
		expectFailures(t, judgePaymentsDown(run), "no stock stays reserved", "stock is conserved")
	})
	t.Run("the breaker never closes again", func(t *testing.T) {
		run := newRun(shop(30).fail(8, 30, loadgen.Checkout, 8, "unavailable").report(), 8*sec, 16*sec)
		run.tapRequests(loadgen.Checkout, 8*sec, 16*sec, 8, http.StatusServiceUnavailable, 6*time.Millisecond)
		run.addSeries(BreakerSeries("orders/1", "payments/1"), PanelBreakers, Breaker, 30*sec, step(8200*time.Millisecond, 0, 2))
		expectFailures(t, judgePaymentsDown(run), "succeed again", "breakers on payments are closed")
	})
	t.Run("payments down breaks browsing too", func(t *testing.T) {
		run := build(6*time.Millisecond, healthyBreaker)
		run.Streams[0].Report = shop(30).fail(8, 17, loadgen.Checkout, 8, "unavailable").fail(10, 11, loadgen.Browse, 3, "unavailable").report()
		expectFailures(t, judgePaymentsDown(run), "unaffected")
	})
	t.Run("failures of another kind", func(t *testing.T) {
		run := build(6*time.Millisecond, healthyBreaker)
		run.Streams[0].Report = shop(30).fail(8, 17, loadgen.Checkout, 8, "internal").report()
		run.Main().Requests = nil
		run.tapRequests(loadgen.Checkout, 8*sec, 16*sec, 8, http.StatusInternalServerError, 6*time.Millisecond)
		expectFailures(t, judgePaymentsDown(run), "503 unavailable")
	})
}

func TestKillOrdersMidCheckoutVerdicts(t *testing.T) {
	build := func() *Run {
		run := newRun(shop(20).fail(6, 10, loadgen.Checkout, 8, "unavailable").report(), 6*sec, 9*sec)
		run.SetValue(ValuePendingAtKill, 4)
		eventsArrived(run, 180, 0, 0)
		return run
	}
	t.Run("an outbox row lost in the crash", func(t *testing.T) {
		run := build()
		eventsArrived(run, 180, 1, 0)
		expectFailures(t, judgeKillOrdersMidCheckout(run), "reaches recommendations")
	})
	t.Run("an outbox row applied twice", func(t *testing.T) {
		run := build()
		eventsArrived(run, 180, 0, 1)
		expectFailures(t, judgeKillOrdersMidCheckout(run), "applied twice")
	})
	t.Run("healthy", func(t *testing.T) {
		expectFailures(t, judgeKillOrdersMidCheckout(build()))
	})
	t.Run("recovery disabled: interrupted sagas stay PENDING, their stock held", func(t *testing.T) {
		run := build()
		run.Invariants.Orders["PENDING"] = 4
		run.Invariants.Held = 5
		run.Invariants.Broken = []Violation{{Unfinished, "4 orders PENDING"}, {StockNotConserved, "GH-TEE-01: held 5"}}
		expectFailures(t, judgeKillOrdersMidCheckout(run), "reaches an end", "stock is conserved")
	})
	t.Run("recovery charges again or keeps money for failed orders", func(t *testing.T) {
		run := build()
		run.Invariants.Broken = []Violation{{DoubleCharge, "order ord_1 has 2 charges"}, {StrayCharge, "succeeded charge ch_2 belongs to order ord_2 in status FAILED"}}
		expectFailures(t, judgeKillOrdersMidCheckout(run), "charged twice", "every charge belongs")
	})
	t.Run("the kill caught no saga: the run proves nothing", func(t *testing.T) {
		run := build()
		run.SetValue(ValuePendingAtKill, 0)
		expectFailures(t, judgeKillOrdersMidCheckout(run), "catches checkouts mid-saga")
	})
	t.Run("orders does not come back", func(t *testing.T) {
		run := build()
		run.Streams[0].Report = shop(20).fail(6, 20, loadgen.Checkout, 8, "unavailable").report()
		expectFailures(t, judgeKillOrdersMidCheckout(run), "succeed again")
	})
}

func TestConsulDownVerdicts(t *testing.T) {
	build := func(rep *loadgen.Report, reregistered bool) *Run {
		run := newRun(rep, 8*sec, 18*sec)
		for _, spec := range services.All() {
			svc, n := spec.Name, float64(spec.Replicas)
			run.SetValue(replicasValue(svc), n)
			run.addSeries(PassingSeries(svc), PanelConsul, Gauge, 35*sec, func(t time.Duration) (float64, bool) {
				switch {
				case t < 8*sec:
					return n, true
				case t < 18200*time.Millisecond:
					return 0, false // Consul is down: nothing to read
				case t < 23*sec || !reregistered:
					return 0, true // back, empty
				}
				return n, true
			})
		}
		return run
	}
	t.Run("healthy", func(t *testing.T) {
		expectFailures(t, judgeConsulDown(build(shop(35).report(), true)))
	})
	t.Run("no cached instances: callers lose every instance with Consul", func(t *testing.T) {
		expectFailures(t, judgeConsulDown(build(shop(35).fail(9, 18, loadgen.Browse, 24, "unavailable").report(), true)),
			"while Consul is down")
	})
	t.Run("no re-registration after Consul returns empty", func(t *testing.T) {
		expectFailures(t, judgeConsulDown(build(shop(35).report(), false)), "registers again")
	})
	t.Run("callers that lost every instance answer fast", func(t *testing.T) {
		expectFailures(t, judgeConsulDown(build(shop(35).fail(19, 21, loadgen.Checkout, 8, "unavailable").report(), true)))
	})
	t.Run("callers that lost every instance hang", func(t *testing.T) {
		run := build(shop(35).fail(19, 21, loadgen.Checkout, 8, "transport_error").slow(19, 21, loadgen.Checkout, 10*time.Second).report(), true)
		expectFailures(t, judgeConsulDown(run), "while they re-register")
	})
}

func TestJaegerDownVerdicts(t *testing.T) {
	build := func(rep *loadgen.Report, failures func(time.Duration) (float64, bool), heapGrowth float64, found bool) *Run {
		run := newRun(rep, 12*sec, 27*sec)
		run.addSeries(SpansSeries("gateway/1", "success"), PanelSpans, Counter, 40*sec, func(t time.Duration) (float64, bool) {
			return math.Floor(min(t, 12*sec).Seconds() * 160), true
		})
		run.addSeries(SpansSeries("gateway/1", "failure"), PanelSpans, Counter, 40*sec, failures)
		run.addSeries(MemorySeries("gateway/1", "heap in use"), PanelMemory, Bytes, 40*sec, func(t time.Duration) (float64, bool) {
			if t < 12*sec {
				return 7 << 20, true
			}
			return 7<<20 + heapGrowth*min(t-12*sec, 15*sec).Seconds()/15, true
		})
		run.addSeries(MemorySeries("gateway/1", "RSS"), PanelMemory, Bytes, 40*sec, step(0, 30<<20, 30<<20))
		run.Traces = []TraceEvidence{{Purpose: TraceAfterJaegerReturns, TraceID: "0af7651916cd43dd8448eb211c80319c", Found: found, Spans: 51}}
		if !found {
			run.Traces[0].Err = "trace not found"
		}
		return run
	}
	counted := func(t time.Duration) (float64, bool) {
		return math.Floor(max(min(t, 27*sec)-12*sec, 0).Seconds() * 160), true
	}
	t.Run("healthy", func(t *testing.T) {
		expectFailures(t, judgeJaegerDown(build(shop(40).report(), counted, 1<<20, true)))
	})
	t.Run("export blocks requests while the collector is gone", func(t *testing.T) {
		expectFailures(t, judgeJaegerDown(build(shop(40).slow(12, 27, loadgen.Browse, 800*time.Millisecond).report(), counted, 1<<20, true)),
			"latency is unaffected")
	})
	t.Run("export failures turn into request errors", func(t *testing.T) {
		expectFailures(t, judgeJaegerDown(build(shop(40).fail(12, 27, loadgen.Checkout, 2, "internal").report(), counted, 1<<20, true)),
			"error ratio")
	})
	t.Run("lost spans are not counted", func(t *testing.T) {
		expectFailures(t, judgeJaegerDown(build(shop(40).report(), step(0, 0, 0), 1<<20, true)), "lost are counted")
	})
	t.Run("an unbounded queue keeps every span", func(t *testing.T) {
		expectFailures(t, judgeJaegerDown(build(shop(40).report(), counted, 200<<20, true)), "memory stays bounded")
	})
	t.Run("export never resumes", func(t *testing.T) {
		expectFailures(t, judgeJaegerDown(build(shop(40).report(), counted, 1<<20, false)), "traces appear again")
	})
}

func TestSlowPaymentsVerdicts(t *testing.T) {
	const (
		fault, both, repair = 6, 16, 26
		opened              = 7500 * time.Millisecond // payments/2's breaker
	)
	// phaseA taps the checkouts while payments/2 alone is slow: half of
	// them wait for its timeout until its breaker opens at openAt, then
	// only one half-open probe does.
	phaseA := func(run *Run, openAt time.Duration, slow time.Duration, status int) {
		i := 0
		for at := fault * sec; at < both*sec; at += sec / 8 {
			latency := 10 * time.Millisecond
			if (at < openAt && i%2 == 0) || (at >= 12500*time.Millisecond && at < 12625*time.Millisecond) {
				latency = slow
			}
			run.Main().Requests = append(run.Main().Requests, Request{Op: loadgen.Checkout, At: at, Latency: latency, Status: status})
			i++
		}
	}
	healthy := func() *Run {
		s := shop(36).slow(both, both+2, loadgen.Checkout, 2*time.Second).fail(both, repair+1, loadgen.Checkout, 8, "unavailable")
		run := newRun(s.report(), fault*sec, repair*sec)
		run.Marks = append(run.Marks, Mark{Key: MarkAllSlow, Label: "payments/1 slow", At: both * sec})
		phaseA(run, opened, 1050*time.Millisecond, http.StatusCreated)
		run.addSeries(BreakerSeries("orders/1", "payments/1"), PanelBreakers, Breaker, 36*sec,
			steps([]time.Duration{0, 18 * sec, 27 * sec}, []float64{0, 2, 0}))
		run.addSeries(BreakerSeries("orders/1", "payments/2"), PanelBreakers, Breaker, 36*sec,
			steps([]time.Duration{0, opened, 12500 * time.Millisecond, 13500 * time.Millisecond, 27 * sec}, []float64{0, 2, 1, 2, 0}))
		run.addSeries(UnavailableSeries("orders/1", "payments", "failed"), PanelFailures, Counter, 36*sec,
			steps([]time.Duration{0, 17 * sec, 18 * sec}, []float64{0, 10, 16}))
		return run
	}
	t.Run("healthy", func(t *testing.T) {
		expectFailures(t, judgeSlowPayments(healthy()))
	})
	t.Run("no retry: every checkout sent to the slow instance fails", func(t *testing.T) {
		run := healthy()
		run.Streams[0].Report = shop(36).fail(fault, both, loadgen.Checkout, 4, "unavailable").
			slow(both, both+2, loadgen.Checkout, 2*time.Second).fail(both, repair+1, loadgen.Checkout, 8, "unavailable").report()
		expectFailures(t, judgeSlowPayments(run), "retries keep failed checkouts")
	})
	t.Run("as many failures as three attempts allow", func(t *testing.T) {
		run := healthy()
		run.Streams[0].Report = shop(36).fail(fault, both, loadgen.Checkout, 1, "unavailable").
			slow(both, both+2, loadgen.Checkout, 2*time.Second).fail(both, repair+1, loadgen.Checkout, 8, "unavailable").report()
		expectFailures(t, judgeSlowPayments(run))
	})
	t.Run("no breaker: half the checkouts keep waiting for the slow instance", func(t *testing.T) {
		run := healthy()
		run.Main().Requests = nil
		phaseA(run, both*sec, 1050*time.Millisecond, http.StatusCreated)
		run.Series = withoutBreakers(run.Series)
		for _, inst := range []string{"payments/1", "payments/2"} {
			run.addSeries(BreakerSeries("orders/1", inst), PanelBreakers, Breaker, 36*sec, step(0, 0, 0))
		}
		expectFailures(t, judgeSlowPayments(run), "opens its breaker on payments/2", "probes wait for a timeout")
	})
	t.Run("no attempt timeout: checkouts wait for the slow charges, and succeed", func(t *testing.T) {
		s := shop(36).slow(fault, repair, loadgen.Checkout, 1600*time.Millisecond)
		run := newRun(s.report(), fault*sec, repair*sec)
		run.Marks = append(run.Marks, Mark{Key: MarkAllSlow, Label: "payments/1 slow", At: both * sec})
		phaseA(run, both*sec, 1600*time.Millisecond, http.StatusCreated)
		for _, inst := range []string{"payments/1", "payments/2"} {
			run.addSeries(BreakerSeries("orders/1", inst), PanelBreakers, Breaker, 36*sec, step(0, 0, 0))
		}
		run.addSeries(UnavailableSeries("orders/1", "payments", "failed"), PanelFailures, Counter, 36*sec, step(0, 0, 0))
		expectFailures(t, judgeSlowPayments(run), "opens its breaker", "probes wait for a timeout", "timeouts fire", "503 unavailable")
	})
	t.Run("unbounded retries: checkouts wait far past the deadline", func(t *testing.T) {
		run := healthy()
		run.Streams[0].Report = shop(36).slow(both, both+2, loadgen.Checkout, 9*time.Second).fail(both, repair+1, loadgen.Checkout, 8, "unavailable").report()
		expectFailures(t, judgeSlowPayments(run), "checkout p99 stays")
	})
	t.Run("a slow dependency slows browsing too", func(t *testing.T) {
		run := healthy()
		run.Streams[0].Report = shop(36).slow(both, both+2, loadgen.Checkout, 2*time.Second).fail(both, repair+1, loadgen.Checkout, 8, "unavailable").
			slow(both, repair, loadgen.Browse, 900*time.Millisecond).report()
		expectFailures(t, judgeSlowPayments(run), "browsing is unaffected")
	})
	t.Run("the breakers never close", func(t *testing.T) {
		run := healthy()
		run.Streams[0].Report = shop(36).slow(both, both+2, loadgen.Checkout, 2*time.Second).fail(both, 36, loadgen.Checkout, 8, "unavailable").report()
		run.Series = withoutBreakers(run.Series)
		run.addSeries(BreakerSeries("orders/1", "payments/1"), PanelBreakers, Breaker, 36*sec, step(18*sec, 0, 2))
		run.addSeries(BreakerSeries("orders/1", "payments/2"), PanelBreakers, Breaker, 36*sec, step(opened, 0, 2))
		expectFailures(t, judgeSlowPayments(run), "succeed again", "breakers on payments are closed")
	})
}

func withoutBreakers(series []*Series) []*Series {
	var out []*Series
	for _, s := range series {
		if s.Kind != Breaker {
			out = append(out, s)
		}
	}
	return out
}

func TestRequestFaultsVerdicts(t *testing.T) {
	checkouts := loadgen.Mix{loadgen.Checkout: 1}
	build := func(errorStream, delayStream *synth, delayLatency time.Duration, faultEvents [3]int) *Run {
		run := &Run{
			Streams: []*StreamRun{
				{Stream: Stream{Name: "clean", Load: Load{Mix: loadgen.DefaultMix()}}, Report: shop(20).report()},
				{Stream: Stream{Name: "error", Load: Load{Mix: checkouts}}, Report: errorStream.report()},
				{Stream: Stream{Name: "delay", Load: Load{Mix: checkouts}}, Report: delayStream.report()},
			},
			Invariants: newRun(nil, 0, 0).Invariants,
		}
		for at := time.Duration(0); at < 20*sec; at += 500 * time.Millisecond {
			run.Streams[2].Requests = append(run.Streams[2].Requests, Request{Op: loadgen.Checkout, At: at, Latency: delayLatency, Status: 201})
		}
		for i, purpose := range []string{TraceErrorFault, TraceDelayFault, TraceClean} {
			run.Traces = append(run.Traces, TraceEvidence{Purpose: purpose, TraceID: "0af7651916cd43dd8448eb211c80319c", Found: true, Spans: 60, FaultEvents: faultEvents[i]})
		}
		return run
	}
	only := func() *synth { return steady(20, map[loadgen.Op]int{loadgen.Checkout: 2}, 20*time.Millisecond) }
	t.Run("healthy", func(t *testing.T) {
		expectFailures(t, judgeRequestFaults(build(only().fail(0, 20, loadgen.Checkout, 2, "unavailable"), only().slow(0, 20, loadgen.Checkout, 320*time.Millisecond), 306*time.Millisecond, [3]int{6, 1, 0})))
	})
	t.Run("fault injection off: baggage is ignored", func(t *testing.T) {
		expectFailures(t, judgeRequestFaults(build(only(), only(), 15*time.Millisecond, [3]int{0, 0, 0})),
			"fails", "charge delay succeeds", "fault.payments=error shows", "charge delay shows")
	})
	t.Run("faults leak into clean requests", func(t *testing.T) {
		run := build(only().fail(0, 20, loadgen.Checkout, 2, "unavailable"), only().slow(0, 20, loadgen.Checkout, 320*time.Millisecond), 306*time.Millisecond, [3]int{6, 1, 1})
		run.Streams[0].Report = shop(20).fail(5, 8, loadgen.Checkout, 3, "unavailable").slow(5, 8, loadgen.Checkout, 400*time.Millisecond).report()
		expectFailures(t, judgeRequestFaults(run), "loses no request", "not slowed", "clean checkout beside them")
	})
}

// eventsArrived records what eventsDelivered would find: confirmed
// orders, of which missing never reached recommendations and duplicated
// were applied twice.
func eventsArrived(run *Run, confirmed, missing, duplicated int) {
	run.SetValue(ValueConfirmed, float64(confirmed))
	run.SetValue(ValueDelivered, float64(confirmed-missing))
	run.SetValue(ValueMissing, float64(missing))
	run.SetValue(ValueDuplicated, float64(duplicated))
	run.SetValue(ValueStray, 0)
	if missing == 0 {
		run.SetValue(ValueDeliveredAfter, 1.5)
	}
}

func TestNATSDownVerdicts(t *testing.T) {
	build := func() *Run {
		run := newRun(shop(30).report(), 8*sec, 18*sec)
		run.addSeries(SeriesOutbox, PanelEvents, Gauge, 30*sec, func(at time.Duration) (float64, bool) {
			if at >= 8*sec && at < 19*sec {
				return float64(at-8*sec) / float64(sec) * 3, true
			}
			return 0, true
		})
		eventsArrived(run, 180, 0, 0)
		return run
	}
	t.Run("healthy", func(t *testing.T) { expectFailures(t, judgeNATSDown(build())) })
	t.Run("the relay never publishes the backlog", func(t *testing.T) {
		run := build()
		run.Series = nil
		run.addSeries(SeriesOutbox, PanelEvents, Gauge, 30*sec, step(8*sec, 0, 40))
		eventsArrived(run, 180, 40, 0)
		expectFailures(t, judgeNATSDown(run), "drains", "reaches recommendations")
	})
	t.Run("a new order's row caught after the backlog drained", func(t *testing.T) {
		run := build()
		depth := run.SeriesNamed(SeriesOutbox)
		for i, p := range depth.Points {
			if p.At >= 28*sec && p.At < 29*sec {
				depth.Points[i].V = 1 // a checkout's row, between two passes
			}
		}
		expectFailures(t, judgeNATSDown(run))
	})
	t.Run("checkouts wait for NATS", func(t *testing.T) {
		run := build()
		run.Streams[0].Report = shop(30).fail(8, 18, loadgen.Checkout, 8, "unavailable").report()
		expectFailures(t, judgeNATSDown(run), "no request fails")
	})
	t.Run("events published outside the outbox are lost", func(t *testing.T) {
		run := build()
		run.SeriesNamed(SeriesOutbox).Points = nil
		eventsArrived(run, 180, 40, 0)
		expectFailures(t, judgeNATSDown(run), "wait in the outbox", "drains", "reaches recommendations")
	})
}

func TestKillRecommendationsVerdicts(t *testing.T) {
	build := func() *Run {
		run := newRun(shop(30).report(), 8*sec, 18*sec)
		run.addSeries(SeriesFallback, PanelEvents, Gauge, 30*sec, func(at time.Duration) (float64, bool) {
			return map[bool]float64{true: 1, false: 0}[at >= 8*sec && at < 19*sec], true
		})
		run.addSeries(SeriesLag, PanelEvents, Gauge, 30*sec, func(at time.Duration) (float64, bool) {
			if at >= 8*sec && at < 18*sec {
				return 0, false // dead: nothing to scrape
			}
			return map[bool]float64{true: 12, false: 0}[at >= 18*sec && at < 20*sec], true
		})
		eventsArrived(run, 180, 0, 0)
		run.SetValue(ValueLagAfter, 0)
		return run
	}
	t.Run("healthy", func(t *testing.T) { expectFailures(t, judgeKillRecommendations(build())) })
	t.Run("the gateway fails without recommendations", func(t *testing.T) {
		run := build()
		run.Streams[0].Report = shop(30).fail(8, 18, loadgen.Browse, 8, "unavailable").report()
		run.SeriesNamed(SeriesFallback).Points = nil
		expectFailures(t, judgeKillRecommendations(run), "fails", "fallbacks")
	})
	t.Run("one answer before the kill was too slow for the gateway's budget", func(t *testing.T) {
		run := build()
		fb := run.SeriesNamed(SeriesFallback)
		for i, p := range fb.Points {
			if p.At >= 3*sec {
				fb.Points[i].V = 1
				break
			}
		}
		expectFailures(t, judgeKillRecommendations(run))
	})
	t.Run("the gateway falls back while recommendations is up", func(t *testing.T) {
		run := build()
		run.SeriesNamed(SeriesFallback).Points = nil
		run.addSeries(SeriesFallback, PanelEvents, Gauge, 30*sec, func(time.Duration) (float64, bool) { return 1, true })
		expectFailures(t, judgeKillRecommendations(run), "fallbacks")
	})
	t.Run("acked before commit: the events in hand at the kill are lost", func(t *testing.T) {
		run := build()
		eventsArrived(run, 180, 3, 0)
		expectFailures(t, judgeKillRecommendations(run), "reaches recommendations")
	})
	t.Run("the consumer never catches up", func(t *testing.T) {
		run := build()
		run.addSeries(SeriesLag, PanelEvents, Gauge, 30*sec, step(18*sec, 0, 7))
		run.Series = append(run.Series[:1], run.Series[2:]...) // keep the new lag only
		eventsArrived(run, 180, 7, 0)
		run.SetValue(ValueLagAfter, 7)
		expectFailures(t, judgeKillRecommendations(run), "lag returns to 0", "reaches recommendations")
	})
	t.Run("the lag could not be read after the load", func(t *testing.T) {
		run := build()
		delete(run.Values, ValueLagAfter)
		expectFailures(t, judgeKillRecommendations(run), "lag returns to 0")
	})
}
