// Package storage opens the database each service owns (database per
// service: no service ever opens another's) and applies its schema
// migrations. The database is an embedded SQLite file by default, or a
// PostgreSQL database when the service is given a postgres:// URL, so
// that replicas can run on any node.
//
// It is shared mechanics, like transport/ and observability/: every store
// needs the same connection settings, tracing and migration bookkeeping,
// and only its schema and queries are its own.
//
// # One code path for both databases
//
// Both backends are reached through database/sql: SQLite through
// modernc.org/sqlite, PostgreSQL through pgx's database/sql driver
// (github.com/jackc/pgx/v5/stdlib) rather than its native pgxpool. Every
// store already speaks database/sql (*sql.Tx, Scan, sql.ErrNoRows), so a
// store runs unchanged on both, and the same otelsql wrapper traces both:
// a DB span looks the same on either, with db.system.name "sqlite" or
// "postgresql". pgxpool would be a second API for every query and would
// need a second tracer; its extra speed (no database/sql layer) is not
// where our time goes.
//
// # Writing SQL that runs on both
//
// Stores write placeholders as $1, $2, … : PostgreSQL's own form, which
// SQLite accepts as well ($1 is bound to the first argument, and may
// appear twice). No rewriting happens between the store and the
// database, so the SQL in the code is the SQL in the trace. Schemas are
// written in the types both understand: TEXT, INTEGER, and BIGINT for
// anything past 2³¹ such as unix milliseconds (SQLite stores both as
// integers; PostgreSQL's INTEGER is 32 bits). Upserts are
// INSERT … ON CONFLICT, which both accept.
//
// Where the two truly differ, a store asks its DB's Dialect: most often
// for locking. SQLite lets one write transaction run at a time (see
// openSQLite), so a read-then-write transaction needs no row locks;
// PostgreSQL runs writers side by side, so such a transaction must lock
// what it reads with Dialect().ForUpdate(), or lock a name (an order ID,
// say, for a row that does not exist yet) with DB.Lock.
//
// # Migrations
//
// A store's migrations are one list of SQL steps for both backends:
// migrations[i] takes the schema from version i to i+1, in one
// transaction. The version lives in SQLite's user_version, or in a
// one-row schema_version table on PostgreSQL, where the migrating
// transaction first takes an advisory lock, so two replicas starting at
// once migrate one after the other and the second finds nothing to do.
// We keep this small bookkeeping of our own rather than adopt goose or
// golang-migrate: it is fifty lines, migrations stay Go strings beside the
// queries that use them, and every existing SQLite file already records
// its version in user_version, which those libraries do not read (each
// keeps its own table), so adopting one would first need a bridge for
// every database in the field.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Dialect is the SQL a DB speaks. Its value is the OpenTelemetry
// db.system.name of the database.
type Dialect string

// The two dialects a DB can speak.
const (
	SQLite     Dialect = "sqlite"
	PostgreSQL Dialect = "postgresql"
)

// ForUpdate is the clause that ends a SELECT whose rows the transaction
// will change, locking them until it ends: " FOR UPDATE" on PostgreSQL.
// On SQLite it is empty: the transaction already holds the database's
// only write lock, and SQLite has no such clause.
func (d Dialect) ForUpdate() string {
	if d == PostgreSQL {
		return " FOR UPDATE"
	}
	return ""
}

// DB is a service's open, migrated database. Every store embeds it, so
// Ping (the readiness check), Close (shutdown) and InTx are the same in
// every service, while the queries, on SQL, stay each store's own.
type DB struct {
	SQL       *sql.DB
	dialect   Dialect
	durations *prometheus.HistogramVec // see Collectors
	// stop ends the database's background work (SQLite's checkpointer)
	// and waits for it; nil when there is none.
	stop func()
	// writer, on SQLite, is held by the process's one write transaction
	// at a time: see InTx.
	writer chan struct{}
	// tracer makes InTx's transaction spans, marked with system.
	tracer trace.Tracer
	system attribute.KeyValue
}

// Open opens the database at source, brings its schema up to date with
// migrations, and returns the store that newStore builds around it.
// source is a postgres:// or postgresql:// URL for PostgreSQL, and
// otherwise the path of a SQLite file, created if needed.
//
// Every query becomes a span under the caller's span, so a trace shows
// the database work behind each request.
func Open[S any](ctx context.Context, source string, tp trace.TracerProvider, migrations []string, newStore func(*DB) S) (S, error) {
	var (
		db  *DB
		err error
	)
	if IsPostgresURL(source) {
		db, err = openPostgres(ctx, source, tp, migrations)
	} else {
		db, err = openSQLite(ctx, source, tp, migrations)
	}
	if err != nil {
		var none S
		return none, err
	}
	return newStore(db), nil
}

// Dialect is the SQL this database speaks.
func (db *DB) Dialect() Dialect { return db.dialect }

// Close closes the database.
func (db *DB) Close() error {
	if db.stop != nil {
		db.stop()
	}
	return db.SQL.Close()
}

// Ping checks that the database answers; it backs the readiness check.
func (db *DB) Ping(ctx context.Context) error { return db.SQL.PingContext(ctx) }

// retryAttempts bounds how often InTx runs a transaction that PostgreSQL
// aborted to resolve a deadlock or a serialization conflict.
const retryAttempts = 5

// InTx runs fn in a transaction, committing if it returns nil and rolling
// back otherwise. fn gets a context under the transaction's span: its
// statements, made with that context, show inside the transaction.
//
// Within a trace the transaction is one span, sql.tx, from the moment it
// asks for the database to its commit or rollback: its outcome
// (glasshouse.db.tx.outcome), on SQLite how long it queued for the
// write lock, and any runs again. It stands for the driver's begin,
// commit and rollback spans, which say less and would be two more spans
// in every write.
//
// On PostgreSQL, a transaction that the server aborts to break a deadlock
// (two transactions each waiting for a row the other locked) or a
// serialization conflict is run again from the start, up to five times in
// all: such an abort says nothing about the request, only about its
// timing. fn must therefore set its results afresh on every run. SQLite
// never aborts this way: its writers wait their turn.
//
// On SQLite, where every transaction takes the database's one write lock
// as it begins, the process's transactions queue for it in Go, first
// come first served: waiting on SQLite's own lock means sleeping in
// steps of 1, 2, 5, 10 ms and more between tries, which a checkout felt
// as tens of milliseconds at half of saturation. Another process (a
// replica on the same file) is still waited for in SQLite.
func (db *DB) InTx(ctx context.Context, fn func(context.Context, *sql.Tx) error) (err error) {
	ctx, span := db.startTx(ctx)
	defer func() {
		outcome := "committed"
		if err != nil {
			outcome = "rolled_back"
		}
		span.SetAttributes(attrTxOutcome.String(outcome))
		span.End()
	}()
	if db.writer != nil {
		queued := time.Now()
		select {
		case db.writer <- struct{}{}:
		case <-ctx.Done():
			err = fmt.Errorf("waiting for the write lock: %w", ctx.Err())
			txFailed(span, err)
			return err
		}
		defer func() { <-db.writer }()
		span.SetAttributes(attrLockWait.Float64(float64(time.Since(queued).Microseconds()) / 1000))
	}
	for attempt := 1; ; attempt++ {
		err = inTx(ctx, db.SQL, fn, span)
		if db.dialect != PostgreSQL || attempt == retryAttempts || !retryable(err) {
			return err
		}
		span.AddEvent("retry", trace.WithAttributes(
			attribute.Int("glasshouse.retry.attempt", attempt+1),
			attribute.String("glasshouse.retry.reason", err.Error()),
		))
		// A short, random pause, growing with each attempt, so the two
		// transactions do not meet again at once.
		pause := time.Duration(attempt) * time.Duration(1+rand.IntN(10)) * time.Millisecond
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// Attributes of the sql.tx span.
const (
	attrTxOutcome = attribute.Key("glasshouse.db.tx.outcome")
	attrLockWait  = attribute.Key("glasshouse.db.write_lock_wait_ms")
	// Attributes of a statement's event on it (txStatement).
	attrStatementMillis = attribute.Key("glasshouse.db.duration_ms")
	attrStatementError  = attribute.Key("glasshouse.db.error")
)

// startTx starts a transaction's span, within a trace only: like a query
// outside any trace (see tracing), a transaction outside one would be a
// trace of its own with nothing to explain. Outside a trace the span is
// the context's non-recording one, and ending it does nothing.
func (db *DB) startTx(ctx context.Context) (context.Context, trace.Span) {
	if db.tracer == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx, span := db.tracer.Start(ctx, "sql.tx", trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(db.system))
	return context.WithValue(ctx, txSpanKey{}, span), span
}

// txSpanKey marks a context as inside InTx's transaction, within a trace;
// its value is the transaction's span.
type txSpanKey struct{}

// txSpanFrom returns the span of the InTx transaction that ctx is in, or
// nil outside one (or outside any trace).
func txSpanFrom(ctx context.Context) trace.Span {
	span, _ := ctx.Value(txSpanKey{}).(trace.Span)
	return span
}

// txStatement records one statement of a transaction as an event of its
// sql.tx span: the SQL, how long it took, and its error if it failed.
// A span per statement said little more (the transaction's statements
// run back to back, tens of microseconds each on SQLite) and was most of
// a checkout's spans: 16 of 50, each created, exported and stored on
// its own. An event is a few attributes on a span that exists anyway.
func txStatement(span trace.Span, op, query string, elapsed time.Duration, err error) {
	attrs := []attribute.KeyValue{
		semconv.DBQueryText(query),
		attrStatementMillis.Float64(float64(elapsed.Microseconds()) / 1000),
	}
	if err != nil {
		attrs = append(attrs, attrStatementError.String(err.Error()))
	}
	span.AddEvent("sql."+op, trace.WithAttributes(attrs...))
}

// txFailed marks the transaction's span failed by err, when the
// transaction itself failed: it could not begin, commit, or get the lock.
// An error of fn's own (a statement's, whose span has it, or a business
// answer such as out of stock) only rolls the transaction back.
func txFailed(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// Lock takes a lock on name that tx holds until it ends, so that two
// transactions locking the same name run one after the other. It locks
// what has no row yet (an order about to be inserted) or a whole task
// (seeding a catalogue).
//
// On PostgreSQL it is pg_advisory_xact_lock on the name's 64-bit hash
// (two names with the same hash only wait for each other, needlessly but
// safely); advisory locks belong to the database, so two services never
// share one. On SQLite it does nothing: a write transaction already holds
// the database's only write lock.
func (db *DB) Lock(ctx context.Context, tx *sql.Tx, name string) error {
	if db.dialect != PostgreSQL {
		return nil
	}
	return lockName(ctx, tx, name)
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

func inTx(ctx context.Context, db *sql.DB, fn func(context.Context, *sql.Tx) error, span trace.Span) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		err = fmt.Errorf("begin transaction: %w", err)
		txFailed(span, err)
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
	}()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("commit: %w", err)
		txFailed(span, err)
		return err
	}
	return nil
}

// SetMaxConns caps the connections the DB holds open (and idle) to
// PostgreSQL at n, DefaultMaxConns until then. On SQLite it does
// nothing: openSQLite sizes that pool for SQLite's locking, and a file
// has no server whose connections run out.
func (db *DB) SetMaxConns(n int) {
	if db.dialect != PostgreSQL {
		return
	}
	db.SQL.SetMaxOpenConns(n)
	db.SQL.SetMaxIdleConns(n)
}
