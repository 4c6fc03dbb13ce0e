package events

import (
	"context"
	"testing"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace/noop"
)

// BenchmarkRelay is the relay's own cost per event: b.N rows written in
// one transaction beforehand, then claimed, published to a real
// nats-server (file storage, a PubAck each) and marked, 100 per pass, on
// a SQLite outbox.
func BenchmarkRelay(b *testing.B) {
	srv := testenv.StartNATS(b)
	db := openOutbox(b, testenv.SQLite.NewDatabase(b))
	js := connect(b, srv.URL)
	relay := NewRelay(db, js, RelayConfig{Stream: testStream("BENCH")}, discard, noop.NewTracerProvider(), prometheus.NewRegistry())
	writeEvents(b, db, noop.NewTracerProvider().Tracer(""), "bench.event", b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for published := 0; published < b.N; {
		n, err := relay.Pass(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		published += n
	}
}
