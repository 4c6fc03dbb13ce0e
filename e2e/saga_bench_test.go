package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/stack"
)

// BenchmarkCheckoutSaga drives the local stack (SQLite, every service
// traced) at saturation with checkouts only, once with orders calling
// inventory and payments over gRPC and once over HTTP, in one run and on
// the same machine, and reports the checkouts answered per second and
// their latency. More is offered than the stack can take (250/s, at most
// 64 in flight), so the rate answered is the stack's capacity.
//
//	go test -run '^$' -bench CheckoutSaga -benchtime 1x ./e2e
func BenchmarkCheckoutSaga(b *testing.B) {
	for _, over := range []string{"grpc", "http"} {
		b.Run(over, func(b *testing.B) {
			s := startStackOn(b, stack.StoreSQLite, map[string][]string{
				"orders": {"INVENTORY_TRANSPORT=" + over, "PAYMENTS_TRANSPORT=" + over},
			})
			cfg := loadgen.Config{
				Target: s.GatewayURL, Rate: 250, Duration: 20 * time.Second, MaxInFlight: 64,
				Users: 16, Mix: loadgen.Mix{loadgen.Checkout: 1},
			}
			var ok, failed int
			var p50, p99 time.Duration
			for range b.N {
				rep, err := loadgen.Run(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				st := rep.ByOp[loadgen.Checkout]
				ok += st.OK
				failed += st.Failed()
				p50, p99 = max(p50, st.Latency.P50), max(p99, st.Latency.P99)
			}
			seconds := cfg.Duration.Seconds() * float64(b.N)
			b.ReportMetric(float64(ok)/seconds, "checkouts/s")
			b.ReportMetric(float64(failed)/seconds, "failed/s")
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
