package testenv_test

import (
	"syscall"
	"testing"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/stack"
)

func TestStartNATSRunsJetStreamAndIsGoneAfterTheTest(t *testing.T) {
	if testenv.NATSVersion != stack.NATSVersion {
		t.Errorf("testenv.NATSVersion %s, stack.NATSVersion %s: the pinned nats-server is one version", testenv.NATSVersion, stack.NATSVersion)
	}
	var pid int
	t.Run("server", func(t *testing.T) {
		n := testenv.StartNATS(t)
		pid = n.Pid()
		testenv.CheckJetStream(t, n.URL, "TESTENV", n.StoreDir)
	})
	// Start's cleanup kills and reaps it whether the test passed or not.
	if pid == 0 {
		return // it never started; the subtest said why
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("nats-server (pid %d) still there after its test: kill -0 = %v", pid, err)
	}
}
