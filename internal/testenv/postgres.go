package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/pgcluster"
)

// The PostgreSQL cluster for tests: one per test binary, started by the
// first PostgresDatabase call, from the machine's own server binaries, and
// stopped by Main when the binary's tests are done. Starting a cluster
// takes a second or two, a database in it a few milliseconds, so each
// test gets a database of its own in the one cluster.
//
// It is package state, unlike everything else here, because it outlives
// every test: only TestMain sees the end of the binary.
var shared struct {
	sync.Mutex
	mainRuns bool // Main is running the tests, and will stop the cluster
	cluster  *pgCluster
	err      error // why the cluster could not start; every later call fails with it
	dbs      atomic.Int64
}

// Main runs the package's tests and then stops what they shared, the
// PostgreSQL cluster if one was started, before exiting. A package whose
// tests use PostgreSQL needs, in a _test.go file:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with more to do after the tests: it runs
// them, stops what they shared, and returns the exit code.
func Run(m *testing.M) int {
	shared.Lock()
	shared.mainRuns = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.cluster != nil {
		shared.cluster.stop()
		shared.cluster = nil
	}
	shared.Unlock()
	return code
}

// PostgresDatabase returns the URL of a new, empty database, for this
// test alone, in the test binary's PostgreSQL cluster (started on first
// use). The database is dropped when the test ends.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.mainRuns {
		t.Fatal("testenv.PostgresDatabase needs the package's TestMain to call testenv.Main(m), which stops the cluster at the end")
	}
	if shared.cluster == nil && shared.err == nil {
		shared.cluster, shared.err = startCluster()
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	c := shared.cluster
	name := fmt.Sprintf("test_%d_%s", shared.dbs.Add(1), sanitize(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A database name is an identifier, not a parameter; sanitize keeps
	// it to [a-z0-9_].
	if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create database %s: %v\n%s", name, err, c.tail())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends connections a test left open (a store it never closed).
		if _, err := c.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return c.url(name)
}

// sanitize turns a test name into a short lower-case identifier part.
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if b.Len() == 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// PostgresBinDir finds the directory of the PostgreSQL server binaries
// (initdb, postgres): `pg_config --bindir`, else the newest
// /usr/lib/postgresql/*/bin, else wherever initdb is on PATH.
func PostgresBinDir() (string, error) { return pgcluster.BinDir() }

// pgCluster is a running throwaway cluster in a temporary directory of
// its own.
type pgCluster struct {
	*pgcluster.Cluster
	dir   string
	admin *sql.DB
}

func (c *pgCluster) url(db string) string { return c.SuperuserURL(db) }

func (c *pgCluster) tail() string { return c.Tail(30) }

// startCluster starts a cluster in a new temporary directory: loopback
// only, a free port, and durability off (fsync and friends), which a
// cluster that dies with the tests does not need. As root, it runs as the
// postgres system user (see pgcluster); /tmp lets that user reach it.
func startCluster() (_ *pgCluster, err error) {
	if _, err := pgcluster.BinDir(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "glasshouse-pg-")
	if err != nil {
		return nil, err
	}
	c := &pgCluster{dir: dir}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	ports, err := freePorts(1)
	if err != nil {
		return nil, fmt.Errorf("a free port for PostgreSQL: %w", err)
	}
	c.Cluster, err = pgcluster.Open(pgcluster.Config{Dir: dir, Port: ports[0], Throwaway: true})
	if err != nil {
		return nil, err
	}
	if err := c.Start(context.Background()); err != nil {
		return nil, err
	}
	c.admin = c.Admin()
	return c, nil
}

// stop shuts the cluster down and removes its directory.
func (c *pgCluster) stop() {
	if c.Cluster != nil {
		_ = c.Stop(10 * time.Second)
	}
	os.RemoveAll(c.dir)
}
