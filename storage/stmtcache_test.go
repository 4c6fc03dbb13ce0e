package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"modernc.org/sqlite"
)

// countingConnector counts the statements its SQLite connections prepare
// and close, and the connections it opens.
type countingConnector struct {
	driver.Connector
	prepared, closed, conns atomic.Int64
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	c.conns.Add(1)
	return &countingConn{Conn: conn, c: c}, nil
}

type countingConn struct {
	driver.Conn
	c *countingConnector
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	stmt, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.c.prepared.Add(1)
	return &countingStmt{Stmt: stmt, c: c.c}, nil
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

type countingStmt struct {
	driver.Stmt
	c *countingConnector
}

func (s *countingStmt) Close() error { s.c.closed.Add(1); return s.Stmt.Close() }

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func openCounting(t *testing.T) (*sql.DB, *countingConnector) {
	t.Helper()
	connector, err := sqlite.NewConnector("file:" + filepath.Join(t.TempDir(), "cache.db") + "?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingConnector{Connector: connector}
	db := sql.OpenDB(timedConnector{Connector: counting, durations: newQueryDuration(), cacheStatements: true})
	db.SetMaxOpenConns(1) // one connection, so its cache is the one measured
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL); CREATE INDEX kv_v ON kv (v)"); err != nil {
		t.Fatal(err)
	}
	return db, counting
}

// A store's SQL is parsed once per connection: a hundred inserts and a
// hundred reads of the same two statements prepare two statements.
func TestAConnectionPreparesEachStatementOnce(t *testing.T) {
	db, counting := openCounting(t)
	for i := range 100 {
		if _, err := db.Exec("INSERT INTO kv (k, v) VALUES (?, ?)", i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := db.QueryRow("SELECT v FROM kv WHERE k = ?", i).Scan(&v); err != nil || v != fmt.Sprint("v", i) {
			t.Fatalf("read %d: %q, %v", i, v, err)
		}
	}
	if n := counting.prepared.Load(); n != 2 {
		t.Errorf("%d statements prepared for 200 calls of 2 queries; want 2", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if p, c := counting.prepared.Load(), counting.closed.Load(); p != c {
		t.Errorf("%d statements prepared, %d closed with the connection", p, c)
	}
}

// A statement whose rows are still open is not reused under them: the
// same query run while iterating gets a statement of its own, and both
// answer right.
func TestAStatementInUseIsNotReusedUnderItsRows(t *testing.T) {
	db, counting := openCounting(t)
	for i := range 5 {
		if _, err := db.Exec("INSERT INTO kv (k, v) VALUES (?, ?)", i, "x"); err != nil {
			t.Fatal(err)
		}
	}
	const q = "SELECT k FROM kv WHERE v = ? ORDER BY k"
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	outer, err := tx.Query(q, "x")
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for outer.Next() {
		var k int
		if err := outer.Scan(&k); err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
		inner := 0
		if err := tx.QueryRow(q, "x").Scan(&inner); err != nil || inner != 0 {
			t.Fatalf("the inner query: %d, %v; want 0", inner, err)
		}
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Errorf("the outer rows were %v; want [0 1 2 3 4], undisturbed by the inner query", got)
	}
	// The insert and the outer statement are cached; each inner one was a
	// one-off, closed with its rows.
	if p, c := counting.prepared.Load(), counting.closed.Load(); p != 7 || c != 5 {
		t.Errorf("%d prepared, %d closed; want 2 cached and 5 one-offs closed", p, c)
	}
}

// SQL built from input (here a different literal each time) stops being
// cached at the bound, and keeps working.
func TestTheCacheIsBounded(t *testing.T) {
	db, counting := openCounting(t)
	for i := range maxCachedStmts + 50 {
		var n int
		if err := db.QueryRow(fmt.Sprintf("SELECT count(*) + %d FROM kv WHERE v = ?", i), "x").Scan(&n); err != nil || n != i {
			t.Fatalf("query %d: %d, %v", i, n, err)
		}
	}
	if p, c := counting.prepared.Load(), counting.closed.Load(); p != maxCachedStmts+50 || c != 50 {
		t.Errorf("%d prepared, %d closed; want %d cached and the 50 past the bound closed", p, c, maxCachedStmts)
	}
	if !cacheable("SELECT 1;") || cacheable("CREATE TABLE a (x); CREATE TABLE b (y)") {
		t.Error("cacheable: one statement with a trailing ; is, a script is not")
	}
}
