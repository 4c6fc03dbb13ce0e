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
type spanCounter struct {
	exported *prometheus.CounterVec
}

func newSpanCounter(reg prometheus.Registerer) *spanCounter {
	c := &spanCounter{
		exported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_spans_exported_total",
			Help: "Spans handed to the OTLP exporter, by result (success or failure).",
		}, []string{"result"}),
	}
	reg.MustRegister(c.exported)
	return c
}

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
