package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// The metrics a DB offers its process (see Collectors): the pool's
// sql.DBStats, and the duration of the calls that reach the database.
//
// Call durations are a Prometheus histogram timed here, at the driver,
// rather than otelsql's db.sql.latency: that one is an OpenTelemetry
// instrument, and this project exports no OpenTelemetry metrics (only
// traces), so it would need a second metrics pipeline for one series.
// Timing at the driver, below otelsql, sees every statement of every
// store, inside a transaction or not, without a line changed in any of
// them.

// Operations, the values of the histogram's operation label: one
// statement (exec, or query until its first rows are ready), and a whole
// transaction, from its BEGIN to its COMMIT or ROLLBACK. Never the SQL
// text, whose values would be unbounded.
const (
	opExec  = "exec"
	opQuery = "query"
	opTx    = "tx"
)

func newQueryDuration() *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "glasshouse_db_query_duration_seconds",
		Help: "Duration of database calls, by operation: exec and query (one statement each, failed or not) and tx (a whole transaction, BEGIN to COMMIT or ROLLBACK).",
		// The endpoint histogram's 1-2.5-5 steps (observability/endpoint.go),
		// started lower: a SQLite read from the page cache takes tens of
		// microseconds, and a transaction waiting for a lock up to seconds.
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"operation"})
	for _, op := range []string{opExec, opQuery, opTx} {
		h.WithLabelValues(op)
	}
	return h
}

// Collectors are the DB's metrics, for the process to register on its
// registry: the pool (go_sql_open_connections, go_sql_in_use_connections,
// go_sql_idle_connections, go_sql_wait_count_total,
// go_sql_wait_duration_seconds_total and the rest of sql.DBStats, labelled
// db_name=name) and glasshouse_db_query_duration_seconds. The process
// scraping them adds the service and instance, so name only tells one
// database from another within a process.
func (db *DB) Collectors(name string) []prometheus.Collector {
	return []prometheus.Collector{collectors.NewDBStatsCollector(db.SQL, name), db.durations}
}

// timedConnector opens connections that observe their calls' durations.
type timedConnector struct {
	driver.Connector
	durations *prometheus.HistogramVec
	// cacheStatements gives each connection a stmtCache (SQLite's).
	cacheStatements bool
}

func (c timedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	tc := &timedConn{Conn: conn, durations: c.durations}
	if p, ok := conn.(driver.ConnPrepareContext); ok && c.cacheStatements {
		tc.stmts = newStmtCache(p)
	}
	return tc, nil
}

func (c timedConnector) Driver() driver.Driver { return c.Connector.Driver() }

// timedConn times ExecContext, QueryContext and transactions, and forwards
// every optional interface that pgx's and modernc's connections
// implement: hiding one would make database/sql fall back to weaker,
// context-free paths (see sqlite.NewConnector's documentation).
type timedConn struct {
	driver.Conn
	durations *prometheus.HistogramVec
	stmts     *stmtCache // nil: every call is prepared by the driver afresh
}

// Close closes the cached statements, then the connection.
func (c *timedConn) Close() error {
	var err error
	if c.stmts != nil {
		err = c.stmts.close()
	}
	return errors.Join(err, c.Conn.Close())
}

// Unwrap is the connection wrapped, for drivers that look through wrappers.
func (c *timedConn) Unwrap() driver.Conn { return c.Conn }

func (c *timedConn) observe(op string, start time.Time) {
	c.durations.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// statement observes one statement's duration and, inside one of InTx's
// transactions within a trace, records it as an event of the
// transaction's span (see txStatement).
func (c *timedConn) statement(ctx context.Context, op, query string, start time.Time, err error) {
	elapsed := time.Since(start)
	c.durations.WithLabelValues(op).Observe(elapsed.Seconds())
	if span := txSpanFrom(ctx); span != nil {
		txStatement(span, op, query, elapsed, err)
	}
}

func (c *timedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	execer, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	start := time.Now()
	var (
		res driver.Result
		err error
	)
	if c.stmts != nil && cacheable(query) {
		res, err = c.stmts.exec(ctx, query, args)
	} else {
		res, err = execer.ExecContext(ctx, query, args)
	}
	if err != driver.ErrSkip {
		c.statement(ctx, opExec, query, start, err)
	}
	return res, err
}

func (c *timedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	queryer, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	start := time.Now()
	var (
		rows driver.Rows
		err  error
	)
	if c.stmts != nil && cacheable(query) {
		rows, err = c.stmts.query(ctx, query, args)
	} else {
		rows, err = queryer.QueryContext(ctx, query, args)
	}
	if err != driver.ErrSkip {
		c.statement(ctx, opQuery, query, start, err)
	}
	return rows, err
}

func (c *timedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	start := time.Now()
	var (
		tx  driver.Tx
		err error
	)
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.Conn.Begin() // deprecated, but all such a driver offers
	}
	if err != nil {
		return nil, err
	}
	return timedTx{Tx: tx, end: func() { c.observe(opTx, start) }}, nil
}

func (c *timedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.Conn.Prepare(query)
}

func (c *timedConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *timedConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *timedConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// CheckNamedValue lets pgx convert its own argument types; ErrSkip, for a
// driver without a checker, tells database/sql to use its default.
func (c *timedConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// timedTx observes the transaction's duration when it ends.
type timedTx struct {
	driver.Tx
	end func()
}

func (tx timedTx) Commit() error {
	defer tx.end()
	return tx.Tx.Commit()
}

func (tx timedTx) Rollback() error {
	defer tx.end()
	return tx.Tx.Rollback()
}
