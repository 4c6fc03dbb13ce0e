package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
	"github.com/glasshouse-dev/glasshouse/stack"
	"github.com/glasshouse-dev/glasshouse/storage"
	"go.opentelemetry.io/otel/trace/noop"
)

// BenchmarkOutbox measures what the outbox costs a checkout and how long
// an event takes to reach its consumer, on the local stack (SQLite, every
// service traced), in one run on one machine: once with orders writing
// its events to the outbox (the platform as it runs) and once with none
// written (EVENTS_OUTBOX=false). Each drives checkouts only, first at
// 100/s, where the outbox case also reports the
// event latency: from the order's commit (its outbox row's created_at)
// to recommendations' commit (its processed_events row), p50 and p99;
// then at saturation (250/s offered, at most 64 in flight: the rate
// answered is the capacity).
//
//	go test -run '^$' -bench Outbox -benchtime 1x ./e2e
func BenchmarkOutbox(b *testing.B) {
	for _, variant := range []struct {
		name string
		env  []string
	}{{"outbox", nil}, {"none", []string{"EVENTS_OUTBOX=false"}}} {
		b.Run(variant.name, func(b *testing.B) {
			s := startStackOn(b, stack.StoreSQLite, map[string][]string{"orders": variant.env})
			run := func(rate float64) loadgen.Stats {
				rep, err := loadgen.Run(context.Background(), loadgen.Config{
					Target: s.GatewayURL, Rate: rate, Duration: 20 * time.Second, MaxInFlight: 64,
					Users: 16, Mix: loadgen.Mix{loadgen.Checkout: 1},
				})
				if err != nil {
					b.Fatal(err)
				}
				return rep.ByOp[loadgen.Checkout]
			}
			for range b.N {
				// 100/s first, so that no backlog of the saturated run
				// is in its figures.
				since := time.Now()
				at100 := run(100)
				b.ReportMetric(float64(at100.OK)/20, "checkouts/s@100")
				b.ReportMetric(float64(at100.Latency.P50.Microseconds())/1000, "p50-ms@100")
				b.ReportMetric(float64(at100.Latency.P99.Microseconds())/1000, "p99-ms@100")
				if variant.env == nil {
					p50, p99, n := eventLatency(b, s, since)
					b.ReportMetric(float64(p50.Microseconds())/1000, "event-p50-ms@100")
					b.ReportMetric(float64(p99.Microseconds())/1000, "event-p99-ms@100")
					b.ReportMetric(float64(n), "events@100")
				}
				sat := run(250)
				b.ReportMetric(float64(sat.OK)/20, "saturated-checkouts/s")
				b.ReportMetric(float64(sat.Latency.P99.Microseconds())/1000, "saturated-p99-ms")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// eventLatency reads, for every order.confirmed event written since t,
// how long after its commit recommendations committed it, once every one
// of them has arrived (within 30 s).
func eventLatency(b *testing.B, s *stack.Stack, since time.Time) (p50, p99 time.Duration, n int) {
	ctx := context.Background()
	tp := noop.NewTracerProvider()
	ord, err := orders.OpenStore(ctx, s.StoreSource("orders"), tp)
	if err != nil {
		b.Fatal(err)
	}
	defer ord.Close()
	rec, err := recommendations.OpenStore(ctx, s.StoreSource("recommendations"), tp)
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	written := eventTimes(b, ord.DB, `SELECT id, created_at FROM outbox WHERE subject = 'orders.confirmed' AND created_at >= $1`, since)
	var lat []time.Duration
	testenv.Eventually(b, 30*time.Second, "every event written reaches recommendations", func() error {
		lat = lat[:0]
		for id, at := range eventTimes(b, rec.DB, `SELECT event_id, processed_at FROM processed_events WHERE processed_at >= $1`, since) {
			if w, ok := written[id]; ok {
				lat = append(lat, time.Duration(at-w)*time.Millisecond)
			}
		}
		if len(written) == 0 || len(lat) < len(written) {
			return fmt.Errorf("%d of %d events reached recommendations", len(lat), len(written))
		}
		return nil
	})
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], len(lat)
}

// eventTimes runs query, which selects an event ID and a time in unix
// milliseconds from since on, into a map.
func eventTimes(b *testing.B, db *storage.DB, query string, since time.Time) map[string]int64 {
	rows, err := db.SQL.QueryContext(context.Background(), query, since.UnixMilli())
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			b.Fatal(err)
		}
		out[id] = at
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}
