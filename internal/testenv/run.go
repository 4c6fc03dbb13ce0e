package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// RunFunc is a service main's run function.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// InProcess is a service started through its main's run function, in
// this test's process, as main starts it: the harness of every cmd's
// "serves and shuts down cleanly" test.
type InProcess struct {
	t testing.TB
	// Addr and AdminAddr are where it serves, as its log says
	// ("serving HTTP", "serving admin HTTP").
	Addr, AdminAddr string

	cancel context.CancelFunc
	done   chan error
	lines  chan map[string]any
}

// RunService starts run with env as its environment (nothing else) and
// waits up to 10s for it to serve. Every log line must be JSON; check, if
// not nil, sees each raw line too (a test that no line holds a secret).
// The service is stopped when the test ends, if Stop was not called.
func RunService(t testing.TB, run RunFunc, env map[string]string, check func(line []byte)) *InProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs, logWriter := io.Pipe()
	p := &InProcess{t: t, cancel: cancel, done: make(chan error, 1), lines: make(chan map[string]any, 1000)}
	started := time.After(10 * time.Second)
	go func() {
		p.done <- run(ctx, nil, func(k string) string { return env[k] }, logWriter)
		logWriter.Close()
	}()
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			if check != nil {
				check(sc.Bytes())
			}
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Errorf("log line is not JSON: %s", sc.Text())
				continue
			}
			p.lines <- rec
		}
	}()
	t.Cleanup(func() {
		cancel()
		go func() { // drain, so run can finish logging
			for range p.lines {
			}
		}()
	})
	for p.Addr == "" || p.AdminAddr == "" {
		select {
		case rec := <-p.lines:
			switch rec["msg"] {
			case "serving HTTP":
				p.Addr = rec["addr"].(string)
			case "serving admin HTTP":
				p.AdminAddr = rec["addr"].(string)
			}
		case err := <-p.done:
			t.Fatalf("run ended before serving: %v", err)
		case <-started:
			t.Fatal("service did not start within 10s")
		}
	}
	return p
}

// InstanceID is the Consul ID the service registers under:
// <service>-<host>-<port>.
func (p *InProcess) InstanceID(service string) string {
	i := strings.LastIndex(p.Addr, ":")
	return service + "-" + p.Addr[:i] + "-" + p.Addr[i+1:]
}

// AwaitLog waits up to 10s for a log line that match accepts, or fails
// the test saying what it waited for. Lines already logged are read
// before the deadline is looked at, so a line that is there is found
// however long the test took to ask.
func (p *InProcess) AwaitLog(what string, match func(rec map[string]any) bool) {
	p.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		var rec map[string]any
		var ok bool
		select {
		case rec, ok = <-p.lines:
		default:
			select {
			case rec, ok = <-p.lines:
			case <-deadline:
				p.t.Fatalf("no log line for %s within 10s", what)
			}
		}
		if !ok {
			p.t.Fatalf("the log ended without %s", what)
		}
		if match(rec) {
			return
		}
	}
}

// Stop cancels run as SIGTERM does and fails the test unless it returns
// nil within 15s.
func (p *InProcess) Stop() {
	p.t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("run returned %v after shutdown, want nil", err)
		}
	case <-time.After(15 * time.Second):
		p.t.Fatal("run did not return after cancel")
	}
	for range p.lines { // drain
	}
}
