package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Chain is a running bare reference chain (bench/chain): four processes,
// the gateway's on GatewayURL.
type Chain struct {
	GatewayURL string
	cmds       []*exec.Cmd
	names      []string
}

// StartChain starts the chain's four processes from the binary bin on
// free loopback ports, logging to logDir, and waits until each answers.
func StartChain(ctx context.Context, bin, logDir string) (_ *Chain, err error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("the bare chain's binary: %w (go build -o %s ./bench/chain)", err, bin)
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	c := &Chain{GatewayURL: "http://" + addr(0)}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	roles := []struct {
		name string
		args []string
	}{
		{"inventory", nil},
		{"payments", nil},
		{"orders", []string{"-inventory", addr(2), "-payments", addr(3)}},
		{"gateway", []string{"-orders", addr(1)}},
	}
	listen := map[string]string{"gateway": addr(0), "orders": addr(1), "inventory": addr(2), "payments": addr(3)}
	for _, r := range roles {
		log, err := os.Create(filepath.Join(logDir, "chain-"+r.name+".log"))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, append([]string{"-role", r.name, "-listen", listen[r.name]}, r.args...)...)
		cmd.Stdout, cmd.Stderr = log, log
		// As the stack's processes: killed with whoever started them, so
		// an interrupted or killed bench leaves no chain behind.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			log.Close()
			return nil, fmt.Errorf("start the chain's %s: %w", r.name, err)
		}
		log.Close() // the child has its own descriptor
		c.cmds, c.names = append(c.cmds, cmd), append(c.names, r.name)
		if err := waitListening(ctx, listen[r.name]); err != nil {
			return nil, fmt.Errorf("the chain's %s: %w (see %s)", r.name, err, log.Name())
		}
	}
	return c, nil
}

// Processes lists the chain's processes, to measure.
func (c *Chain) Processes() []Process {
	var ps []Process
	for i, cmd := range c.cmds {
		ps = append(ps, Process{Name: c.names[i], PID: cmd.Process.Pid})
	}
	return ps
}

// Stop sends every process SIGTERM and waits for them.
func (c *Chain) Stop() error {
	var errs []error
	for i, cmd := range c.cmds {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, fmt.Errorf("the chain's %s: %w", c.names[i], err))
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			errs = append(errs, fmt.Errorf("the chain's %s did not stop within 10s of SIGTERM", c.names[i]))
		}
	}
	c.cmds = nil
	return errors.Join(errs...)
}

// waitListening polls addr until an HTTP request gets any answer, for at
// most 10s.
func waitListening(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer on %s: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freePorts finds n loopback ports nothing listens on now.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
