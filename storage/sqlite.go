package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/XSAM/otelsql"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"modernc.org/sqlite" // pure-Go SQLite driver
	sqlite3 "modernc.org/sqlite/lib"
)

func openSQLite(ctx context.Context, path string, tp trace.TracerProvider, migrations []string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	// WAL lets readers proceed while one writer writes. synchronous=NORMAL
	// in WAL mode loses nothing when the process is killed (only on power
	// loss). busy_timeout makes a writer wait for the lock instead of
	// failing, and _txlock=immediate takes the write lock when a
	// transaction begins, so two read-then-write transactions can never
	// deadlock upgrading their locks.
	// busy_timeout comes first: switching to WAL takes a lock, and two
	// replicas opening a new file at once must wait for it, not fail.
	// wal_autocheckpoint: see checkpointEvery.
	dsn := "file:" + path +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		fmt.Sprintf("&_pragma=foreign_keys(1)&_pragma=wal_autocheckpoint(%d)&_txlock=immediate", walAutoCheckpointPages)
	connector, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	durations := newQueryDuration()
	db := otelsql.OpenDB(timedConnector{Connector: connector, durations: durations, cacheStatements: true}, tracing(tp, semconv.DBSystemNameSQLite)...)
	// Keep every connection open: database/sql keeps two idle by default
	// and closes the rest, and opening a SQLite connection (the file, its
	// schema, the pragmas above) cost a sixth of orders' CPU under load.
	// SQLite writes one at a time anyway; past a few connections more
	// would only wait for its lock.
	db.SetMaxOpenConns(sqliteMaxConns)
	db.SetMaxIdleConns(sqliteMaxConns)
	if err := migrateSQLite(ctx, db, migrations); err != nil {
		return nil, errors.Join(fmt.Errorf("migrate %s: %w", path, err), db.Close())
	}
	return &DB{SQL: db, dialect: SQLite, durations: durations, stop: checkpointer(db, checkpointEvery), writer: make(chan struct{}, 1),
		tracer: tp.Tracer(tracerName), system: semconv.DBSystemNameSQLite}, nil
}

// SQLite copies the WAL back into the database file (a checkpoint, with
// an fsync) in whichever commit takes the WAL past wal_autocheckpoint
// pages: by default every 1000 pages, in a request's transaction, which
// then waits for the disk. Instead a background goroutine checkpoints
// every checkpointEvery, beside the writers (PASSIVE: it never blocks
// them), and the commits' own checkpoint waits for a WAL ten times as
// long, so that a checkpointer stalled by a long reader cannot let the
// WAL grow without bound.
const (
	checkpointEvery        = time.Second
	walAutoCheckpointPages = 10000
)

// checkpointer checkpoints db every interval until the returned stop is
// called, which waits for it. A checkpoint that fails (the file busy, the
// disk full) is tried again at the next tick; the commits' own
// checkpoint bounds the WAL meanwhile.
func checkpointer(db *sql.DB, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cctx, ccancel := context.WithTimeout(ctx, interval)
			_, _ = db.ExecContext(cctx, "PRAGMA wal_checkpoint(PASSIVE)")
			ccancel()
		}
	}()
	return func() { cancel(); <-done }
}

// migrateSQLite keeps the schema version in SQLite's user_version. The
// transaction takes the write lock as it begins (_txlock=immediate), so
// two replicas opening one file migrate one after the other. SQLite may
// still answer SQLITE_BUSY at once, without waiting out busy_timeout,
// where waiting could deadlock (two replicas switching a new file to WAL
// while the other begins): the migration is then tried again, for up to
// migrateBusyFor, instead of failing the replica's start.
func migrateSQLite(ctx context.Context, db *sql.DB, migrations []string) error {
	wait, deadline := 50*time.Millisecond, time.Now().Add(migrateBusyFor)
	for {
		err := migrateSQLiteOnce(ctx, db, migrations)
		if !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// sqliteMaxConns caps a process's connections to its SQLite file.
const sqliteMaxConns = 8

// migrateBusyFor bounds how long a migration retries a busy database.
const migrateBusyFor = 30 * time.Second

// isBusy reports whether err is SQLite's SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

func migrateSQLiteOnce(ctx context.Context, db *sql.DB, migrations []string) error {
	return inTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
		var version int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
			return err
		}
		if err := applyMigrations(ctx, tx, version, migrations); err != nil {
			return err
		}
		// PRAGMA takes no bound parameters; the value is our own integer.
		_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations)))
		return err
	}, trace.SpanFromContext(ctx))
}

// applyMigrations runs the steps after version, in tx.
func applyMigrations(ctx context.Context, tx *sql.Tx, version int, migrations []string) error {
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this binary knows (%d)", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}
