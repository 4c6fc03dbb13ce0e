package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/storage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A commit no longer copies the WAL back into the database file itself
// (that waits for the disk in a request): the checkpointer does, in the
// background, within about a second.
func TestTheCheckpointerCopiesTheWALIntoTheDatabaseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.db")
	db := open(t, path, testMigrations)
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	body := strings.Repeat("x", 1000)
	// About 500 pages: far below the commits' own checkpoint threshold.
	err := db.InTx(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
		for i := range 2000 {
			if _, err := tx.Exec(`INSERT INTO notes (id, body, at) VALUES ($1, $2, $3)`, fmt.Sprint("n", i), body, i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the rows are checkpointed into the database file", func() error {
		if got := size(); got < before+1<<20 {
			return fmt.Errorf("the database file holds %d bytes, %d before 2 MB of rows", got, before)
		}
		return nil
	})
}

// Queries made within a trace get a span; queries outside any (a relay
// polling, the checkpointer) would each be a trace of one span, and get
// none.
func TestOnlyQueriesWithinATraceMakeSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	for _, source := range []string{testenv.SQLite.NewDatabase(t), testenv.Postgres.NewDatabase(t)} {
		db, err := storage.Open(context.Background(), source, tp, testMigrations, func(db *storage.DB) *storage.DB { return db })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		before := len(rec.Ended())
		if _, err := db.SQL.ExecContext(context.Background(), `INSERT INTO notes (id, body, at) VALUES ('outside', '', 1)`); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.Ended()) - before; n != 0 {
			t.Errorf("%s: a query outside any trace made %d spans, want none", db.Dialect(), n)
		}
		ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO notes (id, body, at) VALUES ('inside', '', 2)`); err != nil {
			t.Fatal(err)
		}
		parent.End()
		var names []string
		for _, s := range rec.Ended()[before:] {
			if s.Parent().SpanID() == parent.SpanContext().SpanID() {
				names = append(names, s.Name())
			}
		}
		if len(names) != 1 || names[0] != "sql.conn.exec" {
			t.Errorf("%s: the query within a trace made %v under the request's span, want one sql.conn.exec", db.Dialect(), names)
		}
	}
}

// Within a trace a transaction is one span, sql.tx, under the caller's,
// with its outcome on it and each statement as an event of it (the SQL,
// its duration, its error): no span of the driver's, not for begin,
// commit or rollback, nor for the statements. Outside a trace it makes
// none.
func TestATransactionIsOneSpanWithItsStatementsAsEvents(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	for _, b := range []testenv.Backend{testenv.SQLite, testenv.Postgres} {
		db, err := storage.Open(context.Background(), b.NewDatabase(t), tp, testMigrations, func(db *storage.DB) *storage.DB { return db })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		const insertSQL = `INSERT INTO notes (id, body, at) VALUES ($1, '', 1)`
		insert := func(ctx context.Context, id string, fail error) error {
			return db.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, insertSQL, id); err != nil {
					return err
				}
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM notes`).Scan(&n); err != nil {
					return err
				}
				return fail
			})
		}

		before := len(rec.Ended())
		if err := insert(context.Background(), "outside", nil); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.Ended()) - before; n != 0 {
			t.Errorf("%s: a transaction outside any trace made %d spans, want none", db.Dialect(), n)
		}

		outOfStock := errors.New("out of stock")
		for _, c := range []struct {
			id      string
			fail    error
			outcome string
		}{{"kept", nil, "committed"}, {"undone", outOfStock, "rolled_back"}} {
			before := len(rec.Ended())
			ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
			if err := insert(ctx, c.id, c.fail); !errors.Is(err, c.fail) {
				t.Fatalf("%s: InTx = %v, want %v", db.Dialect(), err, c.fail)
			}
			parent.End()
			spans := rec.Ended()[before:]
			byParent := map[string][]string{}
			var txSpan sdktrace.ReadOnlySpan
			for _, s := range spans {
				byParent[s.Parent().SpanID().String()] = append(byParent[s.Parent().SpanID().String()], s.Name())
				if s.Name() == "sql.tx" {
					txSpan = s
				}
			}
			if got := byParent[parent.SpanContext().SpanID().String()]; len(got) != 1 || got[0] != "sql.tx" {
				t.Fatalf("%s %s: spans under the request %v, want one sql.tx", db.Dialect(), c.id, got)
			}
			if n := len(spans); n != 2 {
				t.Errorf("%s %s: %d spans in all (%v), want the request and sql.tx only", db.Dialect(), c.id, n, byParent)
			}
			var events []string
			for _, e := range txSpan.Events() {
				events = append(events, e.Name)
			}
			if want := []string{"sql.exec", "sql.query"}; !slices.Equal(events, want) {
				t.Fatalf("%s %s: sql.tx events %v, want %v", db.Dialect(), c.id, events, want)
			}
			exec := txSpan.Events()[0]
			if got := testenv.EventAttr(exec, "db.query.text"); got != insertSQL {
				t.Errorf("%s %s: the exec event's db.query.text = %q, want %q", db.Dialect(), c.id, got, insertSQL)
			}
			if ms, err := strconv.ParseFloat(testenv.EventAttr(exec, "glasshouse.db.duration_ms"), 64); err != nil || ms < 0 {
				t.Errorf("%s %s: the exec event's duration %q (%v), want milliseconds", db.Dialect(), c.id, testenv.EventAttr(exec, "glasshouse.db.duration_ms"), err)
			}
			if got := testenv.Attr(txSpan, "glasshouse.db.tx.outcome"); got != c.outcome {
				t.Errorf("%s %s: outcome %q, want %q", db.Dialect(), c.id, got, c.outcome)
			}
			// fn's own error is a rollback, not a failed transaction.
			if txSpan.Status().Code == codes.Error {
				t.Errorf("%s %s: sql.tx failed (%s), want only rolled back", db.Dialect(), c.id, txSpan.Status().Description)
			}
			wait := testenv.Attr(txSpan, "glasshouse.db.write_lock_wait_ms")
			if (db.Dialect() == storage.SQLite) != (wait != "") {
				t.Errorf("%s %s: write lock wait %q; want one on SQLite only", db.Dialect(), c.id, wait)
			}
		}

		// A statement that fails is an event with its error.
		before = len(rec.Ended())
		ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
		if err := insert(ctx, "kept", nil); err == nil {
			t.Fatalf("%s: inserting a duplicate ID succeeded", db.Dialect())
		}
		parent.End()
		var failed []sdktrace.Event
		for _, s := range rec.Ended()[before:] {
			if s.Name() == "sql.tx" {
				failed = s.Events()
			}
		}
		if len(failed) != 1 || testenv.EventAttr(failed[0], "glasshouse.db.error") == "" {
			t.Errorf("%s: the failed insert's events %+v, want one with its error", db.Dialect(), failed)
		}
	}
}

// A process's SQLite transactions queue for the write lock in Go: each
// runs in turn, and one whose caller gives up while waiting says so.
func TestSQLiteTransactionsQueueForTheWriteLock(t *testing.T) {
	db := open(t, testenv.SQLite.NewDatabase(t), testMigrations)
	ctx := context.Background()
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			close(holding)
			<-release
			_, err := tx.Exec(`INSERT INTO notes (id, body, at) VALUES ('first', '', 0)`)
			return err
		})
	}()
	<-holding
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := db.InTx(wctx, func(context.Context, *sql.Tx) error {
		t.Error("ran while another transaction held the lock")
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for the write lock") {
		t.Errorf("InTx given up while waiting: %v; want the deadline, waiting for the write lock", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// 40 at once, each reading then writing: none lost, none failed.
	errc := make(chan error, 40)
	for i := range 40 {
		go func() {
			errc <- db.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				var n int
				if err := tx.QueryRow(`SELECT count(*) FROM notes`).Scan(&n); err != nil {
					return err
				}
				_, err := tx.Exec(`INSERT INTO notes (id, body, at) VALUES ($1, '', $2)`, fmt.Sprint("n", i), n)
				return err
			})
		}()
	}
	for range 40 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	var n, distinct int
	if err := db.SQL.QueryRow(`SELECT count(*), count(DISTINCT at) FROM notes`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 41 || distinct != 41 {
		t.Errorf("%d rows, %d distinct counts seen; want 41 and 41 (each transaction saw the ones before it)", n, distinct)
	}
}
