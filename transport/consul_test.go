package transport_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	consulapi "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
)

// The check must ask the admin listener: here the public port accepts
// connections but never answers, so only a check on the admin port can
// pass, and the registration must say where that port is.
func TestRegistrationChecksAndPublishesTheAdminListener(t *testing.T) {
	consul := testenv.StartConsul(t)
	tel := newTelemetry(t, io.Discard)

	silent := mustListen(t) // accepted by the kernel, never served
	t.Cleanup(func() { silent.Close() })
	health := observability.NewHealth()
	admin := startAdmin(t, tel, health, nil)
	port := silent.Addr().(*net.TCPAddr).Port
	adminPort := admin.Addr().(*net.TCPAddr).Port

	client, err := transport.NewConsulClient(consul.Addr)
	if err != nil {
		t.Fatal(err)
	}
	reg := transport.Registration{
		Service: "adminsvc", ID: "adminsvc-1", Address: "127.0.0.1", Port: port, AdminPort: adminPort,
		Meta:          map[string]string{"version": "test"},
		CheckInterval: time.Second, CheckTimeout: 500 * time.Millisecond,
	}
	registrar := transport.NewRegistrar(client, reg, tel.Logger, prometheus.NewRegistry())
	go registrar.Run()
	t.Cleanup(func() { registrar.Stop(nil) })

	consul.WaitPassing("adminsvc", 1, 15*time.Second)

	svc, _, err := client.Agent().Service("adminsvc-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Port != port {
		t.Errorf("registered port %d, want the public port %d (callers dial it)", svc.Port, port)
	}
	wantAdmin := net.JoinHostPort("127.0.0.1", strconv.Itoa(adminPort))
	if got := transport.AdminAddr(svc); got != wantAdmin {
		t.Errorf("AdminAddr = %q, want %q", got, wantAdmin)
	}
	if got := svc.Meta[transport.AdminPortMeta]; got != strconv.Itoa(adminPort) {
		t.Errorf("meta %s = %q, want %d (Prometheus relabels with it)", transport.AdminPortMeta, got, adminPort)
	}
	if got := svc.Meta["version"]; got != "test" {
		t.Errorf("meta version = %q: the caller's meta must be kept", got)
	}
	checks, err := client.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	check, ok := checks["adminsvc-1:readyz"]
	if !ok {
		t.Fatalf("no readiness check registered; checks: %v", checks)
	}
	// The agent does not report a check's URL back, so the proof is
	// above: the check passes although the public port never answers.
	if check.Status != "passing" {
		t.Errorf("check status %q, want passing", check.Status)
	}

	// Draining makes the check fail on the admin listener, which still
	// answers: Consul sees "draining", not a dead port.
	health.Drain()
	testenv.Eventually(t, 10*time.Second, "the check turns critical after Drain", func() error {
		ids, err := consul.Passing("adminsvc")
		if err != nil {
			return err
		}
		if len(ids) != 0 {
			return fmt.Errorf("still passing: %v", ids)
		}
		return nil
	})
	checks, err = client.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	if out := checks["adminsvc-1:readyz"].Output; !strings.Contains(out, "draining") {
		t.Errorf("critical check output %q does not carry the admin listener's \"draining\" answer", out)
	}
}

func TestAdminAddrFallsBackToMetaAndToNothing(t *testing.T) {
	// The meta key alone is enough (a registration made by hand, say);
	// an instance without either has no admin address.
	svc := &consulapi.AgentService{Address: "10.0.0.7", Meta: map[string]string{transport.AdminPortMeta: "9082"}}
	if got := transport.AdminAddr(svc); got != "10.0.0.7:9082" {
		t.Errorf("AdminAddr from meta = %q", got)
	}
	if got := transport.AdminAddr(&consulapi.AgentService{Address: "10.0.0.7", Port: 8082}); got != "" {
		t.Errorf("AdminAddr without admin listener = %q, want empty", got)
	}
	if got := transport.AdminAddr(nil); got != "" {
		t.Errorf("AdminAddr(nil) = %q", got)
	}
}

// AwaitCatalogSync proves the agent syncs by a probe the catalog lists,
// and takes the probe away again; an agent that does not answer is an
// error once the context ends, not a hang.
func TestAwaitCatalogSyncLeavesNoProbe(t *testing.T) {
	consul := testenv.StartConsul(t) // it waits for the sync itself
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := transport.AwaitCatalogSync(ctx, consul.Client); err != nil {
		t.Fatal(err)
	}
	services, err := consul.Client.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(services) != 0 {
		t.Fatalf("the agent still has %v; want the probe deregistered", services)
	}

	dead, err := transport.NewConsulClient("127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := transport.AwaitCatalogSync(ctx, dead); err == nil || !strings.Contains(err.Error(), "does not sync") {
		t.Fatalf("AwaitCatalogSync on a dead agent = %v; want it not to sync", err)
	}
}
