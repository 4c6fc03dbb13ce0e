package storage_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkSQLiteWriteThenRead is the pattern of a checkout in each
// service's database: a short write transaction (read a row, insert one,
// update one), then a read on whichever pooled connection is free. Every
// commit by one connection makes the others drop their page caches, so
// the reads after it go back to the file: this is where SQLite's file
// syscalls come from under load.
//
//	go test -run '^$' -bench SQLiteWriteThenRead -count 8 ./storage/ | benchstat -
func BenchmarkSQLiteWriteThenRead(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "bench.db"), testMigrations)
	ctx := context.Background()
	body := strings.Repeat("x", 200)
	// A table a few thousand rows deep, as a service's after some load.
	err := db.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for i := range 5000 {
			if _, err := tx.Exec(`INSERT INTO notes (id, body, at) VALUES ($1, $2, $3)`, fmt.Sprint("seed-", i), body, i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(4) // requests in flight beside each other, as under load
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			id := fmt.Sprint("n-", n)
			err := db.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				var at int64
				if err := tx.QueryRowContext(ctx, `SELECT at FROM notes WHERE id = $1`, fmt.Sprint("seed-", n%5000)).Scan(&at); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO notes (id, body, at) VALUES ($1, $2, $3)`, id, body, at); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, `UPDATE notes SET at = at + 1 WHERE id = $1`, fmt.Sprint("seed-", (n*7)%5000))
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
			var got string
			if err := db.SQL.QueryRowContext(ctx, `SELECT body FROM notes WHERE id = $1`, id).Scan(&got); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
