package inventory

import (
	"context"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// Instrumenting returns a service middleware that counts what happens to
// stock, in business terms: reservation operations by result, and units
// moved by each operation. Endpoint latency and errors are measured one
// layer out, by the endpoint middlewares; this layer says what they meant.
func Instrumenting(reg prometheus.Registerer) func(Service) Service {
	ops := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "glasshouse_inventory_reservation_operations_total",
		Help: "Reservation operations by operation (reserve, commit, release) and result (ok or the error code).",
	}, []string{"operation", "result"})
	units := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "glasshouse_inventory_units_total",
		Help: "Units of stock moved, by operation (reserve, commit, release).",
	}, []string{"operation"})
	reg.MustRegister(ops, units)
	return func(next Service) Service {
		return instrumenting{next: next, ops: ops, units: units}
	}
}

type instrumenting struct {
	next  Service
	ops   *prometheus.CounterVec
	units *prometheus.CounterVec
}

func (m instrumenting) ListProducts(ctx context.Context) ([]Product, error) {
	return m.next.ListProducts(ctx)
}

func (m instrumenting) GetProduct(ctx context.Context, sku string) (Product, error) {
	return m.next.GetProduct(ctx, sku)
}

func (m instrumenting) Reserve(ctx context.Context, orderID string, items []Item) (Reservation, error) {
	r, err := m.next.Reserve(ctx, orderID, items)
	m.observe("reserve", r, err)
	return r, err
}

func (m instrumenting) Commit(ctx context.Context, orderID string) (Reservation, error) {
	r, err := m.next.Commit(ctx, orderID)
	m.observe("commit", r, err)
	return r, err
}

func (m instrumenting) Release(ctx context.Context, orderID string) (Reservation, error) {
	r, err := m.next.Release(ctx, orderID)
	m.observe("release", r, err)
	return r, err
}

func (m instrumenting) observe(op string, r Reservation, err error) {
	if err != nil {
		m.ops.WithLabelValues(op, errs.CodeOf(err)).Inc()
		return
	}
	m.ops.WithLabelValues(op, "ok").Inc()
	n := 0
	for _, it := range r.Items {
		n += it.Quantity
	}
	m.units.WithLabelValues(op).Add(float64(n))
}
