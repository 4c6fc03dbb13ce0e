package storage_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/glasshouse-dev/glasshouse/storage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkTracedTransaction is a reservation's database work within a
// trace, as a service does it: one write transaction of three reads and
// three writes, traced by a real SDK that samples every span and
// exports them in batches (to an exporter that drops them, so only the
// process's own cost is measured, not a collector's). It measures what
// a transaction's tracing costs the service that runs it.
//
//	go test -run '^$' -bench TracedTransaction -benchmem -count 8 ./storage/ | benchstat -
func BenchmarkTracedTransaction(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	db, err := storage.Open(context.Background(), filepath.Join(b.TempDir(), "traced.db"), tp, testMigrations,
		func(db *storage.DB) *storage.DB { return db })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := context.Background()
	for i := range 100 {
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO notes (id, body, at) VALUES ($1, '', 0)`, fmt.Sprint("seed-", i)); err != nil {
			b.Fatal(err)
		}
	}
	tracer := tp.Tracer("bench")
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n++
		ctx, span := tracer.Start(ctx, "inventory.Reserve")
		err := db.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			for j := range 3 {
				var at int64
				if err := tx.QueryRowContext(ctx, `SELECT at FROM notes WHERE id = $1`, fmt.Sprint("seed-", (n+j)%100)).Scan(&at); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE notes SET at = at + 1 WHERE id = $1`, fmt.Sprint("seed-", n%100)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO notes (id, body, at) VALUES ($1, '', $2)`, fmt.Sprint("n-", n), n); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `DELETE FROM notes WHERE id = $1`, fmt.Sprint("n-", n))
			return err
		})
		span.End()
		if err != nil {
			b.Fatal(err)
		}
	}
}
