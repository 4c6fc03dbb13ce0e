package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/XSAM/otelsql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// DefaultMaxConns caps each process's connections unless SetMaxConns
// says otherwise. database/sql opens as many as there are concurrent
// queries, but PostgreSQL's max_connections (100 by default) is shared by
// every replica of every service on the server, and past a few
// connections per core more only queue inside it.
const DefaultMaxConns = 10

// DefaultConnectTimeout bounds each new connection (dial, TLS and the
// startup handshake together) unless the URL's connect_timeout sets
// another bound. Without one, pgx waits as long as the caller's context,
// and a service opening its store at start has no deadline: a host that
// drops packets, or a port that accepts and never answers, would hold
// the attempt for ever, and the service would neither retry nor say why.
// A server that answers at all does so in milliseconds, so 5s is ample
// even across a zone.
const DefaultConnectTimeout = 5 * time.Second

// IsPostgresURL reports whether source names a PostgreSQL database (a
// postgres:// or postgresql:// URL) rather than a SQLite file.
func IsPostgresURL(source string) bool {
	scheme, _, ok := strings.Cut(source, "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}

// CheckPostgresURL returns an error, naming the problem but never the
// password, unless rawURL is a postgres:// URL that pgx can connect with.
func CheckPostgresURL(rawURL string) error {
	_, err := parsePostgresURL(rawURL)
	return err
}

// Redact is rawURL fit for a log: its password, in the user part or as a
// password= parameter, replaced by xxxxx. A string that is not a URL at
// all is replaced whole, since nothing in it can be told apart.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(not a URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

func parsePostgresURL(rawURL string) (*pgx.ConnConfig, error) {
	if !IsPostgresURL(rawURL) {
		return nil, fmt.Errorf("%s is not a postgres:// or postgresql:// URL", Redact(rawURL))
	}
	// url.Parse's own error repeats the whole URL, password included.
	if _, err := url.Parse(rawURL); err != nil {
		return nil, errors.New("not a valid URL (its text is not shown, as it may hold a password)")
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		var perr *pgconn.ParseConfigError
		if errors.As(err, &perr) && errors.Unwrap(perr) != nil {
			err = errors.Unwrap(perr)
		}
		return nil, fmt.Errorf("%s is not a valid PostgreSQL URL: %v", Redact(rawURL), err)
	}
	return cfg, nil
}

func openPostgres(ctx context.Context, rawURL string, tp trace.TracerProvider, migrations []string) (*DB, error) {
	cfg, err := parsePostgresURL(rawURL)
	if err != nil {
		return nil, err
	}
	// connect_timeout=0, which pgx (as libpq) reads as no bound, gets
	// the default too: no attempt may wait for ever.
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	name := Redact(rawURL)
	durations := newQueryDuration()
	db := otelsql.OpenDB(timedConnector{Connector: stdlib.GetConnector(*cfg), durations: durations}, tracing(tp, semconv.DBSystemNamePostgreSQL)...)
	db.SetMaxOpenConns(DefaultMaxConns)
	db.SetMaxIdleConns(DefaultMaxConns)
	if err := migratePostgres(ctx, db, migrations); err != nil {
		var connErr *pgconn.ConnectError
		if errors.As(err, &connErr) && pgconn.Timeout(err) && ctx.Err() == nil {
			// The bound above ran out, not the caller's context: say so,
			// for the log and /readyz, rather than a bare "context
			// deadline exceeded".
			err = fmt.Errorf("no answer within connect_timeout (%s): %w", cfg.ConnectTimeout, err)
		}
		return nil, errors.Join(fmt.Errorf("migrate %s: %w", name, err), db.Close())
	}
	return &DB{SQL: db, dialect: PostgreSQL, durations: durations, tracer: tp.Tracer(tracerName), system: semconv.DBSystemNamePostgreSQL}, nil
}

// migratePostgres keeps the schema version in a one-row table. The
// advisory lock comes first, before even CREATE TABLE IF NOT EXISTS
// (which two transactions cannot safely run at once), so replicas that
// start together migrate in turn; it is released when the transaction
// ends. PostgreSQL's DDL is transactional: a failed step leaves no trace.
func migratePostgres(ctx context.Context, db *sql.DB, migrations []string) error {
	return inTx(ctx, db, func(ctx context.Context, tx *sql.Tx) error {
		if err := lockName(ctx, tx, "storage: schema migrations"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			CREATE TABLE IF NOT EXISTS schema_version (
				one_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one_row),
				version INTEGER NOT NULL
			);
			INSERT INTO schema_version (version) VALUES (0) ON CONFLICT DO NOTHING`); err != nil {
			return fmt.Errorf("schema_version: %w", err)
		}
		var version int
		if err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version); err != nil {
			return fmt.Errorf("schema_version: %w", err)
		}
		if err := applyMigrations(ctx, tx, version, migrations); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = $1`, len(migrations))
		return err
	}, trace.SpanFromContext(ctx))
}

func lockName(ctx context.Context, tx *sql.Tx, name string) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, name); err != nil {
		return fmt.Errorf("lock %q: %w", name, err)
	}
	return nil
}

// Unreachable reports whether err, from opening a PostgreSQL database,
// says that the server could not be reached or is not accepting
// connections yet: nothing listening, a name that does not resolve, a
// timeout, a connection closed before the server said anything, a server
// starting up, shutting down, recovering from a crash or full. Waiting
// may cure those. A server that answers and refuses (a wrong password, a
// database or role that does not exist, a bad migration) is not
// unreachable: waiting cures nothing, and the error must be seen.
func Unreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		// cannot_connect_now (starting up, recovering), admin_shutdown,
		// crash_shutdown, too_many_connections: the server's state, not
		// the request.
		case "57P03", "57P01", "57P02", "53300":
			return true
		}
		// Class 08, connection exception. PostgreSQL itself sends these
		// only about a broken connection, and poolers in front of it
		// (PgBouncer) use them, 08P01 included, for "cannot connect to
		// server".
		return strings.HasPrefix(pgErr.Code, "08")
	}
	var netErr net.Error // *net.OpError (refused, reset, unreachable), *net.DNSError, timeouts
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) ||
		// A connection closed without a word: a proxy whose server is not
		// up (Docker's published port while the container starts), a
		// server going down. Whether the client sees EOF or a reset (a
		// net.Error, above) depends only on timing.
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// retryable reports whether PostgreSQL aborted the transaction for its
// timing alone: serialization_failure or deadlock_detected.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// tracing is the otelsql setup both backends share: spans under the
// caller's, marked with the database system, without the per-row and
// per-prepare spans that would bury the queries. A query outside any
// trace (the outbox relay polling, a recovery pass finding nothing, the
// SQLite checkpointer, a readiness ping) makes no span: each would be a
// trace of its own, one span long, several a second, with nothing to
// explain.
func tracing(tp trace.TracerProvider, system attribute.KeyValue) []otelsql.Option {
	return []otelsql.Option{
		otelsql.WithTracerProvider(tp),
		otelsql.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelsql.WithAttributes(system),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			OmitConnResetSession: true,
			OmitConnPrepare:      true,
			OmitRows:             true,
			SpanFilter:           inTrace,
		}),
	}
}

// inTrace keeps the spans of queries made within a trace but outside
// InTx's transactions, and drops the driver's begin, commit and rollback
// spans: InTx's sql.tx span stands for them, and a statement inside it
// is an event of that span (txStatement), not a span of its own.
func inTrace(ctx context.Context, method otelsql.Method, _ string, _ []driver.NamedValue) bool {
	switch method {
	case otelsql.MethodConnBeginTx, otelsql.MethodTxCommit, otelsql.MethodTxRollback:
		return false
	}
	return trace.SpanContextFromContext(ctx).IsValid() && txSpanFrom(ctx) == nil
}

// tracerName names the instrumentation scope of InTx's spans.
const tracerName = "github.com/glasshouse-dev/glasshouse/storage"
