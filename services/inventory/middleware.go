package inventory

import (
	"context"

	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/prometheus/client_golang/prometheus"
)

// Middleware decorates a Service, as go-kit's service middlewares do.
type Middleware func(Service) Service

// Instrumenting counts what happens to stock, in business terms:
// reservation operations by result, and units moved by each operation.
// Endpoint latency and errors are measured one layer out, by the endpoint
// middlewares; this layer says what they meant.
func Instrumenting(reg prometheus.Registerer) Middleware {
	ops := observability.NewResultCounter(reg, "glasshouse_inventory_reservation_operations_total",
		"Reservation operations by operation (reserve, commit, release) and result (ok or the error code).",
		"ok", "operation")
	units := observability.NewCounterVec(reg, "glasshouse_inventory_units_total",
		"Units of stock moved, by operation (reserve, commit, release).", "operation")
	return func(next Service) Service { return instrumenting{Service: next, ops: ops, units: units} }
}

// instrumenting passes the reads on untouched (the embedded Service) and
// counts the reservation operations.
type instrumenting struct {
	Service
	ops   observability.ResultCounter
	units *prometheus.CounterVec
}

func (m instrumenting) Reserve(ctx context.Context, orderID string, items []Item) (Reservation, error) {
	return m.observe("reserve")(m.Service.Reserve(ctx, orderID, items))
}

func (m instrumenting) Commit(ctx context.Context, orderID string) (Reservation, error) {
	return m.observe("commit")(m.Service.Commit(ctx, orderID))
}

func (m instrumenting) Release(ctx context.Context, orderID string) (Reservation, error) {
	return m.observe("release")(m.Service.Release(ctx, orderID))
}

func (m instrumenting) observe(op string) func(Reservation, error) (Reservation, error) {
	return func(r Reservation, err error) (Reservation, error) {
		m.ops.Count(err, op)
		if err != nil {
			return r, err
		}
		n := 0
		for _, it := range r.Items {
			n += it.Quantity
		}
		m.units.WithLabelValues(op).Add(float64(n))
		return r, nil
	}
}
