package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/transport"
	consul "github.com/hashicorp/consul/api"
)

// ConsulVersion is the pinned Consul the Makefile builds.
const ConsulVersion = "v1.14.0"

// ConsulBinary finds Consul: $CONSUL_BIN, else consul on PATH, else the
// pinned build in bin/tools/. It fails the test with the fix when none is
// there: integration tests need a real agent, never a fake.
func ConsulBinary(t testing.TB) string {
	t.Helper()
	if os.Getenv("CONSUL_BIN") == "" {
		if p, err := exec.LookPath("consul"); err == nil {
			return p
		}
	}
	return PinnedTool(t, "CONSUL_BIN", "consul", ConsulVersion, "make consul")
}

// PinnedTool finds a pinned tool for the tests: $env when it names a
// file, else bin/tools/<name>-<version> as the Makefile builds it. It
// fails the test with the fix (make, which builds it from source) when
// neither is there: integration tests need the real thing, never a fake.
func PinnedTool(t testing.TB, env, name, version, make string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p := filepath.Join(RepoRoot(t), "bin", "tools", name+"-"+version)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Fatalf("no %s binary: run `%s` (builds %s from source) or set %s", name, make, version, env)
	return ""
}

// Consul is a real Consul agent in dev mode (a one-node server).
type Consul struct {
	// Addr is the HTTP API address, host:port.
	Addr    string
	Client  *consul.Client
	process *Process
	t       testing.TB
	port    int
	dataDir string
}

// StartConsul starts a dev agent on free loopback ports with its own data
// directory and waits until it has a leader.
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	return StartConsulOn(t, FreePort(t))
}

// StartConsulOn starts the agent with its HTTP API on httpPort, so a test
// can point services at an address before Consul is up.
func StartConsulOn(t testing.TB, httpPort int) *Consul {
	t.Helper()
	c := &Consul{t: t, port: httpPort, Addr: "127.0.0.1:" + strconv.Itoa(httpPort), dataDir: t.TempDir()}
	client, err := consul.NewClient(&consul.Config{Address: c.Addr})
	if err != nil {
		t.Fatal(err)
	}
	c.Client = client
	c.Start()
	return c
}

// Start (re)starts the agent after Stop or Kill.
func (c *Consul) Start() {
	t := c.t
	t.Helper()
	// DNS and gRPC are off; the serf and server ports are free ones so
	// several agents can run side by side.
	// (FreePorts never hands out the HTTP port, which it chose, again.)
	ports := FreePorts(t, 3)
	cmd := exec.Command(ConsulBinary(t), "agent", "-dev",
		"-node", "test-"+strconv.Itoa(c.port),
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-data-dir", c.dataDir,
		"-http-port", strconv.Itoa(c.port),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-serf-lan-port", strconv.Itoa(ports[0]),
		"-serf-wan-port", strconv.Itoa(ports[1]),
		"-server-port", strconv.Itoa(ports[2]),
		"-log-level", "warn",
	)
	c.process = Start(t, "consul", cmd)
	Eventually(t, 30*time.Second, "consul has a leader", func() error {
		if c.process.Exited() {
			t.Fatalf("consul exited:\n%s", c.process.Log())
		}
		leader, err := c.Client.Status().Leader()
		if err != nil {
			return err
		}
		if leader == "" {
			return errors.New("no leader yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	if err := transport.AwaitCatalogSync(ctx, c.Client); err != nil {
		t.Fatalf("%v\n%s", err, c.process.Log())
	}
}

// Kill SIGKILLs the agent: in dev mode it forgets every registration.
func (c *Consul) Kill() { c.process.Kill() }

// Passing returns the IDs of the service's instances whose checks pass.
func (c *Consul) Passing(service string) ([]string, error) {
	entries, _, err := c.Client.Health().Service(service, "", true, nil)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Service.ID)
	}
	return ids, nil
}

// Registered returns the IDs of every instance of service in the catalog,
// passing or not.
func (c *Consul) Registered(service string) ([]string, error) {
	entries, _, err := c.Client.Catalog().Service(service, "", nil)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.ServiceID)
	}
	return ids, nil
}

// WaitPassing waits until service has exactly n passing instances.
func (c *Consul) WaitPassing(service string, n int, within time.Duration) []string {
	c.t.Helper()
	var ids []string
	Eventually(c.t, within, fmt.Sprintf("%d passing %s instance(s) in Consul", n, service), func() error {
		var err error
		ids, err = c.Passing(service)
		if err != nil {
			return err
		}
		if len(ids) != n {
			return fmt.Errorf("%d passing: %v; the catalog has %s", len(ids), ids, c.describe(service))
		}
		return nil
	})
	return ids
}

// describe lists each registration of service in the catalog with its
// checks' states, for a failing wait to show.
func (c *Consul) describe(service string) string {
	entries, _, err := c.Client.Health().Service(service, "", false, nil)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "[%s:", e.Service.ID)
		for _, check := range e.Checks {
			fmt.Fprintf(&b, " %s=%s", check.CheckID, check.Status)
		}
		b.WriteString("]")
	}
	if b.Len() == 0 {
		return "no registration"
	}
	return b.String()
}

// WaitServing is WaitPassing for every registration of the service: its
// HTTP one and, for a service that serves gRPC (services.Spec.GRPC), its
// gRPC one, whose check may pass a moment later. A caller that waits for
// an instance before stopping the next, as a rolling restart does, must
// wait for both, or the saga's gRPC calls may find no instance between.
func (c *Consul) WaitServing(service string, n int, within time.Duration) {
	c.t.Helper()
	c.WaitPassing(service, n, within)
	if spec, ok := services.Lookup(service); ok && spec.GRPC {
		c.WaitPassing(spec.GRPCName(), n, within)
	}
}
