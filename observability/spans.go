package observability

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// spanCounter makes the health of span export visible: how many spans went
// out and how many the collector refused or never received. When the
// collector is down these counters show the loss, while the bounded batch
// queue keeps memory flat.
//
// The batch processor drops a span, without a word, when its queue is
// full (a collector slower than the spans coming, not only one that is
// down). So the spans that ended are counted too: ended minus exported
// is what never reached the exporter, dropped or still queued, and
// tracing every request cannot quietly become sampling under load.
type spanCounter struct {
	exported *prometheus.CounterVec
	ended    prometheus.Counter
}

func newSpanCounter(reg prometheus.Registerer) *spanCounter {
	c := &spanCounter{
		exported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_spans_exported_total",
			Help: "Spans handed to the OTLP exporter, by result (success or failure).",
		}, []string{"result"}),
		ended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glasshouse_spans_ended_total",
			Help: "Sampled spans that ended, to export; those not in glasshouse_spans_exported_total were dropped by the full batch queue or wait in it.",
		}),
	}
	reg.MustRegister(c.exported, c.ended)
	return c
}

// processor counts the sampled spans that end. It runs before the batch
// processor, in the caller's goroutine: an atomic add.
func (c *spanCounter) processor() sdktrace.SpanProcessor { return endCounter{c.ended} }

type endCounter struct{ ended prometheus.Counter }

func (endCounter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (e endCounter) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		e.ended.Inc()
	}
}

func (endCounter) Shutdown(context.Context) error   { return nil }
func (endCounter) ForceFlush(context.Context) error { return nil }

func (c *spanCounter) wrap(exp sdktrace.SpanExporter) sdktrace.SpanExporter {
	return countingExporter{SpanExporter: exp, c: c}
}

type countingExporter struct {
	sdktrace.SpanExporter
	c *spanCounter
}

func (e countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	result := "success"
	if err != nil {
		result = "failure"
	}
	e.c.exported.WithLabelValues(result).Add(float64(len(spans)))
	return err
}
