package pgcluster_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/pgcluster"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
)

// A cluster's directory is initialised once: opening it again (the next
// `glasshouse up` on the same run dir) keeps its data and its password.
func TestReopeningAClusterKeepsItsData(t *testing.T) {
	// Not t.TempDir: as root the server runs as the postgres user, who
	// cannot pass through t.TempDir's private parent.
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	cfg := pgcluster.Config{Dir: dir, Port: testenv.FreePort(t), Throwaway: true}

	c, err := pgcluster.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin().ExecContext(ctx, `CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	pid := c.PID()
	if err := c.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(-pid, 0) == nil {
		time.Sleep(time.Second) // a backend's zombie being reaped
		if syscall.Kill(-pid, 0) == nil {
			t.Errorf("postgres processes (group %d) left after Stop", pid)
		}
	}

	again, err := pgcluster.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer again.Stop(10 * time.Second)
	var n int
	if err := again.Admin().QueryRowContext(ctx, `SELECT n FROM kept`).Scan(&n); err != nil || n != 42 {
		t.Fatalf("after reopening: n = %d, %v; want the 42 written before", n, err)
	}
}
