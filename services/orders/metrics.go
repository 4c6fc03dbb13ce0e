package orders

import (
	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// SagaMetrics count what the checkout saga decides, in business terms:
// checkouts by outcome, compensations by action, recovery by action. A nil
// *SagaMetrics (or its zero value) counts nothing.
//
// The saga counts them itself rather than a service middleware around it:
// a replayed PlaceOrder decides nothing and is not counted, and recovery
// finishes checkouts outside any call a middleware could see.
type SagaMetrics struct {
	checkouts     *prometheus.CounterVec
	compensations *prometheus.CounterVec
	recoveries    *prometheus.CounterVec
}

// NewSagaMetrics registers the saga's metrics on reg.
func NewSagaMetrics(reg prometheus.Registerer) *SagaMetrics {
	m := &SagaMetrics{
		checkouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_orders_checkouts_total",
			Help: "Checkouts finished, by status (CONFIRMED, REJECTED, FAILED) and code (the failure's error code, or ok).",
		}, []string{"status", "code"}),
		compensations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_orders_saga_compensations_total",
			Help: "Compensating actions taken by the checkout saga: release (stock) or refund (charge).",
		}, []string{"action"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_orders_recovery_actions_total",
			Help: "What the recovery loop did with interrupted sagas: forward, compensate, deferred, settle.",
		}, []string{"action"}),
	}
	reg.MustRegister(m.checkouts, m.compensations, m.recoveries)
	// Known series start at zero, so dashboards show 0, not "no data".
	for _, action := range []string{"release", "refund"} {
		m.compensations.WithLabelValues(action)
	}
	for _, action := range []string{"forward", "compensate", "deferred", "settle"} {
		m.recoveries.WithLabelValues(action)
	}
	return m
}

func (m *SagaMetrics) outcome(status Status, cause error) {
	if m.checkouts == nil {
		return
	}
	code := "ok"
	if cause != nil {
		code = errs.CodeOf(cause)
	}
	m.checkouts.WithLabelValues(string(status), code).Inc()
}

func (m *SagaMetrics) compensation(action string) {
	if m.compensations != nil {
		m.compensations.WithLabelValues(action).Inc()
	}
}

func (m *SagaMetrics) recovery(action string) {
	if m.recoveries != nil {
		m.recoveries.WithLabelValues(action).Inc()
	}
}
