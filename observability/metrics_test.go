package observability_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestResultCounterCountsSuccessByItsWordAndFailuresByCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	calls := observability.NewResultCounter(reg, "test_calls_total", "Calls by operation and result.", "succeeded", "operation")

	calls.Count(nil, "charge")
	calls.Count(nil, "charge")
	calls.Count(errs.E(errs.Declined, "card_declined", "no"), "charge")
	calls.Count(errors.New("disk on fire"), "refund")
	calls.Count(context.Canceled, "refund")

	want := `
# HELP test_calls_total Calls by operation and result.
# TYPE test_calls_total counter
test_calls_total{operation="charge",result="card_declined"} 1
test_calls_total{operation="charge",result="succeeded"} 2
test_calls_total{operation="refund",result="canceled"} 1
test_calls_total{operation="refund",result="internal"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestStartAtZeroShowsKnownSeriesBeforeTheFirstEvent(t *testing.T) {
	reg := prometheus.NewRegistry()
	actions := observability.NewCounterVec(reg, "test_actions_total", "Actions taken.", "action")
	observability.StartAtZero(actions, "release", "refund")

	want := `
# HELP test_actions_total Actions taken.
# TYPE test_actions_total counter
test_actions_total{action="refund"} 0
test_actions_total{action="release"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestMetricsOnANilRegistryAreRegisteredNowhere(t *testing.T) {
	// Registered anywhere (the default registry), the second would panic
	// as a duplicate.
	for range 2 {
		c := observability.NewCounterVec(nil, "test_unregistered_total", "Not registered.", "op")
		c.WithLabelValues("x").Inc()
		if got := testutil.ToFloat64(c.WithLabelValues("x")); got != 1 {
			t.Errorf("counter = %v, want 1", got)
		}
	}
}
