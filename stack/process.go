package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Proc is one child process of the stack: a tool or a service instance.
type Proc struct {
	// Name is unique in the stack: "consul", "nats", "jaeger", "prometheus",
	// "SERVICE/N" for the Nth replica of a service (from 1), or
	// "SERVICE-db" for a service's PostgreSQL cluster.
	Name    string `json:"name"`
	Service string `json:"service,omitempty"`
	Replica int    `json:"replica,omitempty"`
	// Database names the service whose PostgreSQL cluster this is.
	Database string `json:"database,omitempty"`
	// Addr is the host:port it serves HTTP on: a service's public API
	// (NATS's: its client port, which speaks the NATS protocol).
	Addr string `json:"addr"`
	// AdminAddr is a service instance's admin listener (/readyz,
	// /metrics, /debug/pprof/, admin routes), or NATS's monitoring
	// listener (/healthz, /varz, /jsz); empty for the other tools.
	AdminAddr string `json:"admin_addr,omitempty"`
	// GRPCAddr is the gRPC listener of an instance of a service that
	// serves gRPC (services.Spec.GRPC), else "".
	GRPCAddr string `json:"grpc_addr,omitempty"`
	PID      int    `json:"pid"`
	LogPath  string `json:"log"`

	path string
	args []string
	env  []string
	// anyExitOnStop: the process exits non-zero on SIGTERM by design (a
	// Consul dev agent skips its leave and exits 1), which is no error.
	anyExitOnStop bool

	// stop and restart, when set, stop and start again a process that
	// start did not run (a PostgreSQL cluster, which pgcluster runs).
	stop    func(grace time.Duration) error
	restart func(ctx context.Context) error

	cmd    *exec.Cmd
	exited <-chan struct{}
	err    error
}

// start runs the process with its output appended to its log file. It is
// in its own process group (a terminal's Ctrl-C reaches only `glasshouse
// up`, which stops children in order) and dies with its parent.
func (p *Proc) start() error {
	if err := os.MkdirAll(filepath.Dir(p.LogPath), 0o750); err != nil {
		return err
	}
	log, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.PID, p.exited = cmd, cmd.Process.Pid, exited
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(exited)
	}()
	return nil
}

// Running reports whether the process has been started and not exited.
func (p *Proc) Running() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL (no deregistration, no drain: a crash) and waits.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM and waits up to grace for a clean exit, then kills.
func (p *Proc) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	if p.stop != nil {
		return p.stop(grace)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		var exit *exec.ExitError
		if p.err != nil && !p.anyExitOnStop && !(errors.As(p.err, &exit) && exit.ExitCode() == 0) {
			// The log's end says why (a run directory may be gone by the
			// time anyone reads the error: a test's, a CI machine's).
			return fmt.Errorf("%s: %w (see %s, which ends:\n%s)", p.Name, p.err, p.LogPath, p.logTail(3))
		}
		return nil
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s; killed", p.Name, grace)
	}
}

// logTail returns the last lines of the process's log, for error messages.
func (p *Proc) logTail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
