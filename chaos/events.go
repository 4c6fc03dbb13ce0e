package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
	"go.opentelemetry.io/otel/trace/noop"
)

// Events: orders' outbox, NATS JetStream, and recommendations' consumer.

// Bounds of the event experiments.
const (
	// Once the load is over, every confirmed order must have reached
	// recommendations within this: the relay's longest backoff (5s) and
	// a consumer session's (5s), twice over.
	eventsDeliveredWithin = 20 * time.Second
	// After NATS returns, the relay publishes the backlog within its
	// longest backoff (5s), the client's reconnect and a pass or two.
	outboxDrainWithin = 10 * time.Second
	// natsDownFor and recommendationsDownFor are how long each stays dead.
	natsDownFor            = 10 * time.Second
	recommendationsDownFor = 10 * time.Second
)

// Values the event experiments record.
const (
	// ValueConfirmed, ValueDelivered, ValueMissing and ValueDuplicated
	// compare orders' confirmed orders with the events recommendations
	// applied: how many of each, how many never arrived, and how many
	// were applied more than once.
	ValueConfirmed  = "events/confirmed"
	ValueDelivered  = "events/delivered"
	ValueMissing    = "events/missing"
	ValueDuplicated = "events/duplicated"
	ValueStray      = "events/stray"
	// ValueDeliveredAfter is how long after the load the last one arrived.
	ValueDeliveredAfter = "events/delivered_after_seconds"
	// ValueLagAfter is recommendations' consumer lag once the load is over
	// and every event arrived: the last value read, 0 once it caught up.
	ValueLagAfter = "events/lag_after_load"
)

// lagSettleWithin bounds the wait, after the load, for the consumer's lag
// gauge to read 0: the consumer reads its lag from the server every 2s
// (events.ConsumerConfig.LagEvery), so a few of its readings.
const lagSettleWithin = 10 * time.Second

// Series of the event probes.
const (
	PanelEvents = "Events: outbox depth and consumer lag"
	// SeriesOutbox is orders' unpublished outbox rows.
	SeriesOutbox = "orders outbox depth"
	// SeriesLag is recommendations' consumer lag: messages not yet
	// delivered plus those delivered and not yet acknowledged.
	SeriesLag = "recommendations consumer lag"
	// SeriesFallback is 1 while the gateway answers recommendations with
	// its fallback.
	SeriesFallback = "gateway recommendations: fallback"
)

// eventCoverage compares the confirmed orders in orders' store with the
// events recommendations' store applied.
type eventCoverage struct {
	confirmed, delivered, missing, duplicated, stray int
}

func (c eventCoverage) complete() bool { return c.missing == 0 && c.duplicated == 0 && c.stray == 0 }

func (e *Env) eventCoverage(ctx context.Context) (eventCoverage, error) {
	var c eventCoverage
	tp := noop.NewTracerProvider()
	ord, err := orders.OpenStore(ctx, e.Stack.StoreSource("orders"), tp)
	if err != nil {
		return c, err
	}
	defer ord.Close()
	rec, err := recommendations.OpenStore(ctx, e.Stack.StoreSource("recommendations"), tp)
	if err != nil {
		return c, err
	}
	defer rec.Close()
	// recommendations first: an order confirmed between the reads is
	// then missing for a moment, never stray.
	applied, err := rec.ProcessedOrders(ctx)
	if err != nil {
		return c, err
	}
	rows, err := ord.SQL.QueryContext(ctx, `SELECT id FROM orders WHERE status = $1`, string(orders.Confirmed))
	if err != nil {
		return c, err
	}
	defer rows.Close()
	confirmed := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return c, err
		}
		confirmed[id] = true
		switch n := applied[id]; {
		case n == 0:
			c.missing++
		case n > 1:
			c.duplicated++
		}
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	for id := range applied {
		if !confirmed[id] {
			c.stray++
		}
	}
	c.confirmed, c.delivered = len(confirmed), len(applied)
	return c, nil
}

// eventsDelivered waits, once the load is over, until every confirmed
// order has reached recommendations (or eventsDeliveredWithin passes),
// and records what it found.
func eventsDelivered(ctx context.Context, env *Env, run *Run) error {
	start := time.Now()
	var (
		c       eventCoverage
		readErr error
	)
	// A wait that runs out is a finding, for the judge; stores that
	// cannot be read are not.
	_ = poll(ctx, eventsDeliveredWithin, 250*time.Millisecond, func() error {
		if c, readErr = env.eventCoverage(ctx); readErr != nil {
			return readErr
		}
		if !c.complete() {
			return fmt.Errorf("%d confirmed orders not in recommendations", c.missing)
		}
		return nil
	})
	if readErr != nil {
		return readErr
	}
	run.SetValue(ValueConfirmed, float64(c.confirmed))
	run.SetValue(ValueDelivered, float64(c.delivered))
	run.SetValue(ValueMissing, float64(c.missing))
	run.SetValue(ValueDuplicated, float64(c.duplicated))
	run.SetValue(ValueStray, float64(c.stray))
	if c.complete() {
		run.SetValue(ValueDeliveredAfter, time.Since(start).Seconds())
	}
	return nil
}

// lagAfterLoad reads recommendations' consumer lag (pending plus
// awaiting acknowledgement) once the load is over, until it is 0 or
// lagSettleWithin has passed, and records the last reading.
func lagAfterLoad(ctx context.Context, env *Env, run *Run) error {
	var lag float64
	read := false
	_ = poll(ctx, lagSettleWithin, 250*time.Millisecond, func() error {
		m, err := env.metricsOf(ctx, "recommendations/1")
		if err != nil {
			return err
		}
		pending, ok1 := m.sum("glasshouse_consumer_pending_messages", nil)
		acking, ok2 := m.sum("glasshouse_consumer_ack_pending_messages", nil)
		if !ok1 || !ok2 {
			return errors.New("recommendations reports no consumer lag")
		}
		lag, read = pending+acking, true
		if lag != 0 {
			return fmt.Errorf("lag %.0f", lag)
		}
		return nil
	})
	if read {
		run.SetValue(ValueLagAfter, lag)
	}
	return nil
}

// eventChecks: every confirmed order reached recommendations exactly once.
func eventChecks(run *Run) []Check {
	confirmed, _ := run.Value(ValueConfirmed)
	delivered, _ := run.Value(ValueDelivered)
	missing, okMissing := run.Value(ValueMissing)
	duplicated, _ := run.Value(ValueDuplicated)
	stray, _ := run.Value(ValueStray)
	after, arrived := run.Value(ValueDeliveredAfter)
	when := fmt.Sprintf("not all within %s of the load's end", eventsDeliveredWithin)
	if arrived {
		when = fmt.Sprintf("all %.1fs after the load's end", after)
	}
	return []Check{
		checkf(fmt.Sprintf("every confirmed order reaches recommendations within %s of the load's end", eventsDeliveredWithin),
			okMissing && confirmed > 0 && missing == 0 && arrived,
			"%.0f confirmed, %.0f applied, %.0f missing; %s", confirmed, delivered, missing, when),
		checkf("no order's event is applied twice, and none that was not confirmed", okMissing && duplicated == 0 && stray == 0,
			"%.0f applied more than once, %.0f without a confirmed order", duplicated, stray),
	}
}

// EventProbes sample orders' outbox depth and recommendations' consumer
// lag from their /metrics.
func EventProbes() Probe {
	return Probe{Panel: PanelEvents, Kind: Gauge, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		out := map[string]float64{}
		if m, err := env.metricsOf(ctx, "orders/1"); err == nil {
			if v, ok := m.sum("glasshouse_outbox_depth", nil); ok {
				out[SeriesOutbox] = v
			}
		}
		if m, err := env.metricsOf(ctx, "recommendations/1"); err == nil {
			pending, ok1 := m.sum("glasshouse_consumer_pending_messages", nil)
			acking, ok2 := m.sum("glasshouse_consumer_ack_pending_messages", nil)
			if ok1 && ok2 {
				out[SeriesLag] = pending + acking
			}
		}
		if len(out) == 0 {
			return nil, errors.New("neither orders nor recommendations answered")
		}
		return out, nil
	}}
}

// Fallbacks samples whether the gateway answers a product's
// recommendations with its fallback (1) or with recommendations' own
// answer (0).
func Fallbacks() Probe {
	return Probe{Panel: PanelEvents, Kind: Gauge, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		var answer struct {
			Fallback bool `json:"fallback"`
		}
		if err := env.getJSON(ctx, "/api/products/GH-MUG-01/recommendations", &answer); err != nil {
			return nil, err
		}
		v := 0.0
		if answer.Fallback {
			v = 1
		}
		return map[string]float64{SeriesFallback: v}, nil
	}}
}

// getJSON reads path from the gateway into v; any answer but a 200 is
// an error.
func (e *Env) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.Stack.GatewayURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// eventsLoad is the steady load with more checkouts, so that there are
// events to lose.
func eventsLoad(d time.Duration) Load {
	return Load{Rate: 40, Duration: d, Mix: loadgen.Mix{loadgen.Browse: 50, loadgen.Login: 5, loadgen.Checkout: 40, loadgen.Orders: 5}, Users: 10}
}

// NATSDown SIGKILLs the NATS server under checkout load and restarts it
// ten seconds later.
func NATSDown() Experiment {
	return Experiment{
		Name:  "nats-down",
		Title: "Kill NATS under checkout load, then restart it",
		Hypothesis: fmt.Sprintf("Checkouts never wait for NATS: no request fails while it is down for %s, as "+
			"confirmed orders queue in orders' outbox; once it is back the relay publishes them and recommendations "+
			"applies every confirmed order exactly once, within %s of the load's end.", natsDownFor, eventsDeliveredWithin),
		Streams: mainStream(eventsLoad(30 * time.Second)),
		Steps: []Step{
			{At: 8 * time.Second, Mark: MarkFault, Action: Kill("nats")},
			{At: 8*time.Second + natsDownFor, Mark: MarkRecover, Action: Restart("nats")},
		},
		Probes:  []Probe{EventProbes()},
		Measure: eventsDelivered,
		Judge:   judgeNATSDown,
	}
}

func judgeNATSDown(run *Run) []Check {
	tl := run.Main().Report.Timeline
	recovered, _ := run.Mark(MarkRecover)
	checks := []Check{scheduled(run),
		noneFail("no request fails while NATS is down, or after", tl, Window{0, run.end()}, loadgen.Browse, loadgen.Checkout, loadgen.Orders),
	}
	depth := run.SeriesNamed(SeriesOutbox)
	peak, ok := 0.0, false
	if depth != nil {
		peak, ok = depth.Max(run.FaultWindow())
	}
	checks = append(checks, checkf("confirmed orders wait in the outbox while NATS is down", ok && peak > 0,
		"outbox depth peaked at %.0f rows", peak))
	var drained time.Duration
	var settled bool
	if depth != nil {
		// The first empty reading: the load goes on after NATS' return,
		// so a later reading can catch a new order's row between two of
		// the relay's passes without any backlog left.
		drained, settled = depth.FirstAt(recovered.At, func(v float64) bool { return v == 0 })
	}
	checks = append(checks, delayCheck(fmt.Sprintf("the outbox drains within %s of NATS' return", outboxDrainWithin),
		drained, settled && ok && peak > 0, recovered.At, outboxDrainWithin, "after the restart"))
	checks = append(checks, eventChecks(run)...)
	return append(checks, invariantChecks(run)...)
}

// KillRecommendations SIGKILLs recommendations under load and restarts it
// ten seconds later.
func KillRecommendations() Experiment {
	return Experiment{
		Name:  "kill-recommendations",
		Title: "Kill recommendations under load, then restart it",
		Hypothesis: fmt.Sprintf("Nothing depends on recommendations: while it is dead no product, recommendation or "+
			"checkout request fails, and the gateway answers recommendations with its fallback; restarted, its "+
			"consumer catches up (lag back to 0) and every confirmed order is applied exactly once, within %s of the "+
			"load's end.", eventsDeliveredWithin),
		Streams: mainStream(eventsLoad(30 * time.Second)),
		Steps: []Step{
			{At: 8 * time.Second, Mark: MarkFault, Action: Kill("recommendations/1")},
			{At: 8*time.Second + recommendationsDownFor, Mark: MarkRecover, Action: Restart("recommendations/1")},
		},
		Probes: []Probe{EventProbes(), Fallbacks(), Passing("recommendations")},
		Measure: func(ctx context.Context, env *Env, run *Run) error {
			if err := eventsDelivered(ctx, env, run); err != nil {
				return err
			}
			return lagAfterLoad(ctx, env, run)
		},
		Judge: judgeKillRecommendations,
	}
}

// maxFallbackBefore is the share of fallback answers kill-recommendations
// accepts while recommendations is still up.
const maxFallbackBefore = 0.1

func judgeKillRecommendations(run *Run) []Check {
	tl := run.Main().Report.Timeline
	fault := run.FaultWindow()
	checks := []Check{scheduled(run),
		noneFail("no product, recommendation or checkout request fails", tl, Window{0, run.end()}, loadgen.Browse, loadgen.Checkout, loadgen.Orders),
	}
	fb := run.SeriesNamed(SeriesFallback)
	var during, before float64
	var okDuring, okBefore bool
	if fb != nil {
		// From a second after the kill to the restart: all fallbacks.
		if m, ok := run.Mark(MarkRecover); ok {
			during, okDuring = fb.Min(Window{fault.From + time.Second, m.At})
		}
		// Before it: real answers. One that took longer than the
		// gateway's budget is a fallback by design, so a stall or two
		// on a busy machine may show; most must be real.
		before, okBefore = fb.Mean(run.Before())
	}
	checks = append(checks, checkf("the gateway answers fallbacks while recommendations is dead, and real answers before",
		okDuring && during == 1 && okBefore && before <= maxFallbackBefore,
		"fallback flag: lowest %.0f while dead; %.0f%% of answers before the kill were fallbacks (at most %.0f%%)",
		during, 100*before, 100*maxFallbackBefore))
	// Read after the load, not from the last sample during it: under load
	// a message in hand is lag, and a sample may catch one.
	last, okLag := run.Value(ValueLagAfter)
	lagSeen := fmt.Sprintf("lag after the load: %.0f messages", last)
	if !okLag {
		lagSeen = "recommendations' lag could not be read after the load"
	}
	checks = append(checks, checkf("after the restart the consumer's lag returns to 0", okLag && last == 0, "%s", lagSeen))
	checks = append(checks, eventChecks(run)...)
	return append(checks, invariantChecks(run)...)
}
