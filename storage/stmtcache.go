package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
)

// stmtCache keeps one connection's prepared statements by their SQL, so
// that a store's fixed queries are parsed once per connection instead of
// on every call. On SQLite, parsing again on every call was a sixth of
// orders' CPU under load. (pgx caches its statements itself.)
//
// A connection is used by one goroutine at a time, but a transaction may
// run a statement while the rows of another are still open: a statement
// whose rows are open is busy, and the same SQL then gets a statement of
// its own, closed with its rows.
type stmtCache struct {
	conn    driver.ConnPrepareContext
	byQuery map[string]*cachedStmt
}

type cachedStmt struct {
	stmt driver.Stmt
	busy bool
}

// maxCachedStmts bounds a connection's cache: stores' SQL is a fixed set
// of strings, but one that builds SQL (an IN list as long as its input)
// must not grow it for ever. Past the bound, statements are one-offs.
const maxCachedStmts = 256

// cacheable says whether query is one statement: a script of several
// (a migration) runs once and is left to the driver.
func cacheable(query string) bool {
	return !strings.Contains(strings.TrimRight(strings.TrimSpace(query), ";"), ";")
}

func newStmtCache(conn driver.ConnPrepareContext) *stmtCache {
	return &stmtCache{conn: conn, byQuery: map[string]*cachedStmt{}}
}

// acquire returns a statement for query, and how to give it back.
func (c *stmtCache) acquire(ctx context.Context, query string) (driver.Stmt, func() error, error) {
	if s, ok := c.byQuery[query]; ok && !s.busy {
		s.busy = true
		return s.stmt, func() error { s.busy = false; return nil }, nil
	}
	stmt, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := c.byQuery[query]; ok || len(c.byQuery) >= maxCachedStmts {
		return stmt, stmt.Close, nil
	}
	s := &cachedStmt{stmt: stmt, busy: true}
	c.byQuery[query] = s
	return stmt, func() error { s.busy = false; return nil }, nil
}

func (c *stmtCache) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	stmt, release, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	execer, ok := stmt.(driver.StmtExecContext)
	if !ok {
		return nil, errors.Join(driver.ErrSkip, release())
	}
	res, err := execer.ExecContext(ctx, args)
	return res, errors.Join(err, release())
}

func (c *stmtCache) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	stmt, release, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	queryer, ok := stmt.(driver.StmtQueryContext)
	if !ok {
		return nil, errors.Join(driver.ErrSkip, release())
	}
	rows, err := queryer.QueryContext(ctx, args)
	if err != nil {
		return nil, errors.Join(err, release())
	}
	return &releasingRows{Rows: rows, release: release}, nil
}

// close closes every cached statement, before its connection closes.
func (c *stmtCache) close() error {
	var errs []error
	for q, s := range c.byQuery {
		errs = append(errs, s.stmt.Close())
		delete(c.byQuery, q)
	}
	return errors.Join(errs...)
}

// releasingRows gives its statement back when closed.
type releasingRows struct {
	driver.Rows
	release func() error
}

func (r *releasingRows) Close() error {
	err := r.Rows.Close()
	if r.release != nil {
		err = errors.Join(err, r.release())
		r.release = nil
	}
	return err
}
