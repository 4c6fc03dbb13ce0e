// Package testenv starts the real parts that integration tests need — a
// Consul agent, the services as built binaries — as child processes on
// free loopback ports, and guarantees they are gone when the test ends,
// passed or failed.
package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a child process whose output goes to a log file.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd

	waitOnce sync.Once
	waitErr  error
	exited   chan struct{}
}

// Start runs cmd as a child process named name. Its output is written to
// a log file in the test's temporary directory; the tail of that log is
// printed if the test fails. The process is killed at the end of the test
// if it is still running.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), strings.ReplaceAll(name, "/", "-")+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group, and killed by the kernel if the test binary dies
	// first, so no test leaves a process behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- last lines of %s (%s):\n%s", name, logPath, p.tail(40))
		}
	})
	return p
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop hangs the process (SIGSTOP) and returns once every one of its
// threads has stopped, or fails after timeout. The kernel stops each
// thread when it next runs, so on a busy machine a thread may still
// answer a request for a moment after kill(2) returns; a test of what a
// hung service does must not start in that moment.
func (p *Process) Stop(timeout time.Duration) error {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		running, err := runningThreads(p.Pid())
		if err != nil {
			return err
		}
		if running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d threads still running %s after SIGSTOP", p.Name, running, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// runningThreads counts pid's threads that are not stopped, from the
// state field of each /proc/PID/task/TID/stat.
func runningThreads(pid int) (int, error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return 0, fmt.Errorf("threads of process %d: %v", pid, err)
	}
	running := 0
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread has exited
		}
		// "TID (comm) STATE ...": comm may hold spaces or parentheses,
		// so the state follows the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return 0, fmt.Errorf("%s: unexpected %q", path, b)
		}
		if state := b[i+2]; state != 'T' && state != 't' {
			running++
		}
	}
	return running, nil
}

// Kill SIGKILLs the process group and waits for the process to exit.
func (p *Process) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// Wait waits up to timeout for the process to exit and returns its error.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %s", p.Name, timeout)
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Log returns the process's output so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

func (p *Process) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// and that no earlier FreePort or FreePorts call of this test process
// returned: a port chosen for a process that has not started yet (or
// that stopped, to restart on it) is never chosen for another.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts returns n distinct free ports, none returned before in this
// test process (see FreePort).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := freePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// handedOut holds every port freePorts gave this test process. Nothing
// listens on a chosen port until its process starts, so the kernel may
// offer it again meanwhile: a second choice must not take it.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

func freePorts(n int) ([]int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 100*n {
			return nil, fmt.Errorf("no %d free ports this process has not handed out already, in %d tries", n, tries)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		if port := ln.Addr().(*net.TCPAddr).Port; !handedOut.ports[port] {
			handedOut.ports[port] = true
			ports = append(ports, port)
		}
	}
	return ports, nil
}

// Eventually polls cond every 20ms until it returns nil or the deadline
// passes, then fails the test with cond's last error.
func Eventually(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s: %v", what, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RepoRoot is the root of this repository (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// Binary builds ./cmd/name once per test process and returns its path.
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if path, ok := built[name]; ok {
		return path
	}
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "glasshouse-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
	}
	path := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-o", path, "./cmd/"+name)
	cmd.Dir = RepoRoot(t)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out.String())
	}
	built[name] = path
	return path
}
