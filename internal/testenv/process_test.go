package testenv

import (
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Stop returns only once every thread of the process has stopped, and
// SIGCONT sets them running again.
func TestStopWaitsUntilEveryThreadHasStopped(t *testing.T) {
	// A process busy in user space, the case where stopping is not
	// immediate.
	p := Start(t, "spinner", exec.Command("sh", "-c", "while :; do :; done"))
	Eventually(t, 5*time.Second, "the spinner runs", func() error {
		if n, err := runningThreads(p.Pid()); err != nil || n == 0 {
			return fmt.Errorf("%d threads running (%v)", n, err)
		}
		return nil
	})
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n, err := runningThreads(p.Pid()); err != nil || n != 0 {
		t.Fatalf("after Stop, %d threads still running (%v)", n, err)
	}
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 5*time.Second, "the spinner runs again", func() error {
		if n, err := runningThreads(p.Pid()); err != nil || n == 0 {
			return fmt.Errorf("%d threads running (%v)", n, err)
		}
		return nil
	})
}
