package observability

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The constructors below build a component's series and register them on
// the registry the component was handed, in one call: a series cannot be
// built and then forgotten, and no series lands on the global default
// registry. A nil registry registers nothing, for the components whose
// metrics are optional. Registering a name twice on one registry panics,
// as prometheus.MustRegister does: that is a wiring mistake.

// NewCounterVec returns a counter vector called name, with help and the
// given label names, registered on reg.
func NewCounterVec(reg prometheus.Registerer, name, help string, labels ...string) *prometheus.CounterVec {
	return promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// NewGaugeVec returns a gauge vector called name, with help and the given
// label names, registered on reg.
func NewGaugeVec(reg prometheus.Registerer, name, help string, labels ...string) *prometheus.GaugeVec {
	return promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// NewGauge returns a gauge called name, with help, registered on reg.
func NewGauge(reg prometheus.Registerer, name, help string) prometheus.Gauge {
	return promauto.With(reg).NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// StartAtZero creates the series of a one-label counter vector for each
// of values, so that before the first event a dashboard shows 0 for them,
// not "no data". Use it for labels whose values are known in advance (an
// operation, an action), never for error codes.
func StartAtZero(c *prometheus.CounterVec, values ...string) {
	for _, v := range values {
		c.WithLabelValues(v)
	}
}

// ResultCounter counts a service's calls by result, in the business terms
// a service middleware reports: the service's own word for success ("ok",
// "succeeded"), or the failure's stable error code (see Classify), of
// which there are few, so the label's cardinality stays bounded. The
// endpoint histogram says that a call failed; this says what the failure
// meant.
type ResultCounter struct {
	calls   *prometheus.CounterVec
	success string
}

// NewResultCounter returns a ResultCounter called name, registered on reg.
// Its labels are the given ones followed by "result", which is success for
// a call that returned no error.
func NewResultCounter(reg prometheus.Registerer, name, help, success string, labels ...string) ResultCounter {
	return ResultCounter{
		calls:   NewCounterVec(reg, name, help, append(slices.Clip(labels), "result")...),
		success: success,
	}
}

// Count counts one call that returned err. labelValues are the values of
// the labels given to NewResultCounter, in their order; the result is
// added after them.
func (c ResultCounter) Count(err error, labelValues ...string) {
	result := c.success
	if err != nil {
		_, result = Classify(err)
	}
	c.calls.WithLabelValues(append(slices.Clip(labelValues), result)...).Inc()
}
