package testenv

import (
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// NATSVersion is the pinned nats-server the Makefile builds.
const NATSVersion = "v2.15.3"

// NATSBinary finds nats-server: $NATS_BIN, else the pinned build in
// bin/tools/. It fails the test with the fix when neither is there.
func NATSBinary(t testing.TB) string {
	t.Helper()
	return PinnedTool(t, "NATS_BIN", "nats-server", NATSVersion, "make nats")
}

// NATS is a real nats-server with JetStream on, its store in the test's
// temporary directory.
type NATS struct {
	// URL is the client URL, nats://127.0.0.1:PORT.
	URL string
	// MonitorURL is the monitoring API (/healthz, /varz, /jsz).
	MonitorURL string
	// StoreDir holds its JetStream streams.
	StoreDir string
	process  *Process
}

// StartNATS starts a throwaway nats-server on free loopback ports and
// waits until JetStream is ready. It is killed when the test ends, passed
// or failed.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	ports := FreePorts(t, 2)
	n := &NATS{
		URL:        "nats://127.0.0.1:" + strconv.Itoa(ports[0]),
		MonitorURL: "http://127.0.0.1:" + strconv.Itoa(ports[1]),
		StoreDir:   t.TempDir(),
	}
	cmd := exec.Command(NATSBinary(t), "--jetstream", "--store_dir", n.StoreDir,
		"--addr", "127.0.0.1", "--port", strconv.Itoa(ports[0]), "--http_port", strconv.Itoa(ports[1]))
	n.process = Start(t, "nats", cmd)
	client := &http.Client{Timeout: time.Second}
	// A plain /healthz passes before JetStream has opened its store.
	Eventually(t, 30*time.Second, "nats-server has JetStream", func() error {
		if n.process.Exited() {
			t.Fatalf("nats-server exited:\n%s", n.process.Log())
		}
		resp, err := client.Get(n.MonitorURL + "/healthz?js-enabled-only=true")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz: %s", resp.Status)
		}
		return nil
	})
	return n
}

// Pid is the server's process ID.
func (n *NATS) Pid() int { return n.process.Pid() }

// Kill SIGKILLs the server.
func (n *NATS) Kill() { n.process.Kill() }
