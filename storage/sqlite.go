// Package storage opens the embedded SQLite database each service owns
// (database per service: no service ever opens another's file) and applies
// its schema migrations.
//
// It is shared mechanics, like transport/ and observability/: every store
// needs the same connection settings, tracing and migration bookkeeping,
// and only its schema and queries are its own.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/XSAM/otelsql"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

// DB is a service's open, migrated database. Every store embeds it, so
// Ping (the readiness check), Close (shutdown) and InTx are the same in
// every service, while the queries, on SQL, stay each store's own.
type DB struct {
	SQL *sql.DB
}

// Open opens (creating if needed) the SQLite database at path, brings its
// schema up to date with migrations, and returns the store that newStore
// builds around it: migrations[i] takes the schema from version i to i+1,
// tracked in SQLite's user_version.
//
// Every query becomes a span under the caller's span, so a trace shows
// the database work behind each request.
func Open[S any](ctx context.Context, path string, tp trace.TracerProvider, migrations []string, newStore func(*DB) S) (S, error) {
	db, err := open(ctx, path, tp, migrations)
	if err != nil {
		var none S
		return none, err
	}
	return newStore(&DB{SQL: db}), nil
}

// Close closes the database.
func (db *DB) Close() error { return db.SQL.Close() }

// Ping checks that the database answers; it backs the readiness check.
func (db *DB) Ping(ctx context.Context) error { return db.SQL.PingContext(ctx) }

// InTx runs fn in a transaction, committing if it returns nil and rolling
// back otherwise.
func (db *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return inTx(ctx, db.SQL, fn)
}

// QueryAll runs query and scans each row with scan, returning an empty
// (never nil) slice when no row matches, so it encodes as [].
func QueryAll[T any](ctx context.Context, db *DB, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.SQL.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	all := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		all = append(all, v)
	}
	return all, rows.Err()
}

func open(ctx context.Context, path string, tp trace.TracerProvider, migrations []string) (*sql.DB, error) {
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
	dsn := "file:" + path +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := otelsql.Open("sqlite", dsn,
		otelsql.WithTracerProvider(tp),
		otelsql.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelsql.WithAttributes(semconv.DBSystemNameSQLite),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			OmitConnResetSession: true,
			OmitConnPrepare:      true,
			OmitRows:             true,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := migrate(ctx, db, migrations); err != nil {
		return nil, errors.Join(fmt.Errorf("migrate %s: %w", path, err), db.Close())
	}
	return db, nil
}

func migrate(ctx context.Context, db *sql.DB, migrations []string) error {
	return inTx(ctx, db, func(tx *sql.Tx) error {
		var version int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
			return err
		}
		if version > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this binary knows (%d)", version, len(migrations))
		}
		for i := version; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		// PRAGMA takes no bound parameters; the value is our own integer.
		_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations)))
		return err
	})
}

func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if err == nil {
			return
		}
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
