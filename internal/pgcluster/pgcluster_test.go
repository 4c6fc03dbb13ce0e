package pgcluster_test

import (
	"context"
	"errors"
	"fmt"
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
	// Stop has waited for the postmaster, but a backend it SIGKILLed is
	// reaped by init in its own time, and until then signal 0 still
	// finds it; so the group may take a moment to be gone.
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("no postgres processes (group %d) left after Stop", pid), func() error {
		switch err := syscall.Kill(-pid, 0); {
		case err == nil:
			return errors.New("signal 0 still reaches a process of the group")
		case !errors.Is(err, syscall.ESRCH):
			return fmt.Errorf("signal 0 to the group: %w", err)
		}
		return nil
	})

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
