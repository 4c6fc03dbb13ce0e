package orders

import (
	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
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
		checkouts: observability.NewCounterVec(reg, "glasshouse_orders_checkouts_total",
			"Checkouts finished, by status (CONFIRMED, REJECTED, FAILED) and code (the failure's error code, or ok).",
			"status", "code"),
		compensations: observability.NewCounterVec(reg, "glasshouse_orders_saga_compensations_total",
			"Compensating actions taken by the checkout saga: release (stock) or refund (charge).", "action"),
		recoveries: observability.NewCounterVec(reg, "glasshouse_orders_recovery_actions_total",
			"What the recovery loop did with interrupted sagas: forward, compensate, deferred, settle.", "action"),
	}
	observability.StartAtZero(m.compensations, "release", "refund")
	observability.StartAtZero(m.recoveries, "forward", "compensate", "deferred", "settle")
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
