package stack

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
)

// The stack's NATS is a real nats-server with JetStream, storing under the
// run directory, handed to every service, and gone after Down.
func TestUpRunsNATSWithJetStreamAndDownStopsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Consul, NATS, Jaeger and Prometheus")
	}
	root := testenv.RepoRoot(t)
	runDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	// One users instance is enough to see what a service is given; the
	// others would only slow the test down.
	replicas := map[string]int{"users": 1, "inventory": 0, "payments": 0, "orders": 0, "gateway": 0}
	s, err := Up(ctx, Config{
		Root: root, RunDir: runDir, BinDir: t.TempDir(), ToolsDir: filepath.Join(root, "bin", "tools"),
		RandomPorts: true, Replicas: replicas, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("Up: %v\n%s", err, progress.String())
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = s.Down(context.Background())
		}
	})
	t.Logf("stack up in %s", s.StartedIn.Round(100*time.Millisecond))

	if !strings.HasPrefix(s.NATSURL, "nats://127.0.0.1:") || s.NATS == nil || s.NATS.Addr != strings.TrimPrefix(s.NATSURL, "nats://") {
		t.Fatalf("NATSURL %q, NATS %+v; want nats://127.0.0.1:PORT, its process's address", s.NATSURL, s.NATS)
	}
	if rel, err := filepath.Rel(runDir, s.NATSStoreDir()); err != nil || strings.HasPrefix(rel, "..") {
		t.Errorf("NATS stores in %s, outside the run directory %s", s.NATSStoreDir(), runDir)
	}
	testenv.CheckJetStream(t, s.NATSURL, "STACKCHECK", s.NATSStoreDir())

	// Every service is told where NATS is.
	users := s.Instances("users")
	if len(users) != 1 {
		t.Fatalf("%d users instances; want 1", len(users))
	}
	environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(users[0].PID), "environ"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(environ, []byte("\x00NATS_URL="+s.NATSURL+"\x00")) {
		t.Errorf("users/1's environment lacks NATS_URL=%s", s.NATSURL)
	}

	// The state file names it, for `glasshouse status` in another terminal.
	if err := s.WriteState(); err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(runDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.NATSURL != s.NATSURL {
		t.Errorf("state's NATS URL %q; want %q", st.NATSURL, s.NATSURL)
	}

	pid := s.NATS.PID
	stopped = true
	if err := s.Down(context.Background()); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("nats-server (pid %d) still there after Down: kill -0 = %v", pid, err)
	}
	for _, p := range s.Procs() {
		if p.Running() {
			t.Errorf("%s still running after Down", p.Name)
		}
	}
	// It stopped cleanly, as a server with clients gone does.
	if log, _ := os.ReadFile(s.NATS.LogPath); !bytes.Contains(log, []byte("Server Exiting")) {
		t.Errorf("%s does not end with a clean shutdown:\n%s", s.NATS.LogPath, s.NATS.logTail(10))
	}
}
