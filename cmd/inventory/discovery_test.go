package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// These tests run real inventory processes against a real Consul agent.
// Replicas share one data directory: SQLite in WAL mode serves several
// processes on one host, which is how the local stack runs them.

func startInventory(t *testing.T, consul *testenv.Consul, dataDir string) *testenv.Service {
	t.Helper()
	return testenv.StartService(t, "inventory", "CONSUL_HTTP_ADDR="+consul.Addr, "DATA_DIR="+dataDir, "OTEL_SDK_DISABLED=true")
}

func newCaller(t *testing.T, consul *testenv.Consul) (inventory.Service, *transport.Remote, observability.Telemetry) {
	t.Helper()
	return newCallerOver(t, consul, "http")
}

// newCallerOver is newCaller over the transport named: "http", or "grpc"
// (the instances registered as inventory-grpc), as orders calls it.
func newCallerOver(t *testing.T, consul *testenv.Consul, over string) (inventory.Service, *transport.Remote, observability.Telemetry) {
	t.Helper()
	tel := testenv.Telemetry(t, "orders")
	client, err := transport.NewConsulClient(consul.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := transport.ClientConfig{Service: inventory.ServiceName}
	if over == "grpc" {
		cfg.ConsulName = inventory.ServiceName + "-grpc"
	}
	remote := transport.NewRemote(client, cfg, tel)
	t.Cleanup(remote.Close)
	if over == "grpc" {
		return inventory.NewClient(inventory.GRPC.Factory(remote.GRPC())), remote, tel
	}
	return inventory.NewClient(remote.Factory()), remote, tel
}

func waitInstances(t *testing.T, remote *transport.Remote, n int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("client sees %d instances", n), func() error {
		if got := remote.Instances(); len(got) != n {
			return fmt.Errorf("sees %v", got)
		}
		return nil
	})
}

// served reads how many ListProducts calls an instance has served.
func served(t *testing.T, s *testenv.Service) int {
	t.Helper()
	resp, err := http.Get(s.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`glasshouse_endpoint_request_duration_seconds_count\{endpoint="ListProducts",outcome="success",service="inventory",transport="http"\} (\d+)`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func TestTwoInstancesRegisterAndShareCalls(t *testing.T) {
	consul := testenv.StartConsul(t)
	data := t.TempDir()
	a, b := startInventory(t, consul, data), startInventory(t, consul, data)
	ids := consul.WaitPassing("inventory", 2, 15*time.Second)
	slices.Sort(ids)
	want := []string{a.ID, b.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("passing instances %v, want %v", ids, want)
	}
	svc, _, _ := newCaller(t, consul)
	ctx := context.Background()
	for range 40 {
		if _, err := svc.ListProducts(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if na, nb := served(t, a), served(t, b); na+nb != 40 || na < 10 || nb < 10 {
		t.Errorf("instances served %d and %d of 40 calls; want both a fair share", na, nb)
	}
}

// TestKilledInstanceCostsNoFailedCalls kills one of two instances
// mid-stream, with the calls over HTTP and over gRPC: a dead instance's
// connection failures are retried on the other either way.
func TestKilledInstanceCostsNoFailedCalls(t *testing.T) {
	for _, over := range []string{"http", "grpc"} {
		t.Run(over, func(t *testing.T) { testKilledInstance(t, over) })
	}
}

func testKilledInstance(t *testing.T, over string) {
	consul := testenv.StartConsul(t)
	data := t.TempDir()
	victim, survivor := startInventory(t, consul, data), startInventory(t, consul, data)
	consul.WaitPassing("inventory", 2, 15*time.Second)
	// Consul's GRPC check (grpc.health.v1) passes for both gRPC listeners.
	consul.WaitPassing("inventory-grpc", 2, 15*time.Second)
	svc, remote, tel := newCallerOver(t, consul, over)
	waitInstances(t, remote, 2)
	want := survivor.Addr
	if over == "grpc" {
		want = survivor.GRPCAddr
	}

	ctx := context.Background()
	const calls, killAt = 300, 50
	var killedAt, droppedAt time.Time
	for i := range calls {
		if i == killAt {
			victim.Kill() // SIGKILL: no deregistration, no drain
			killedAt = time.Now()
		}
		if _, err := svc.GetProduct(ctx, "GH-MUG-01"); err != nil {
			t.Fatalf("call %d failed: %v", i, err)
		}
		if !killedAt.IsZero() && droppedAt.IsZero() && len(remote.Instances()) == 1 {
			droppedAt = time.Now()
		}
		time.Sleep(10 * time.Millisecond) // pace the calls so the kill happens mid-stream
	}
	if droppedAt.IsZero() {
		waitInstances(t, remote, 1)
		droppedAt = time.Now()
	}
	if got := remote.Instances(); len(got) != 1 || got[0] != want {
		t.Errorf("instancer has %v, want only the survivor %s", got, want)
	}
	t.Logf("MEASURED kill→instancer drop: %s (check interval 1s); %d calls, 0 failed; retries spent: %v",
		droppedAt.Sub(killedAt).Round(time.Millisecond), calls, retriesSpent(t, tel))
}

func retriesSpent(t *testing.T, tel observability.Telemetry) float64 {
	t.Helper()
	mfs, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "glasshouse_client_retries_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func TestGracefulStopDeregistersBeforeExit(t *testing.T) {
	consul := testenv.StartConsul(t)
	s := startInventory(t, consul, t.TempDir())
	consul.WaitPassing("inventory", 1, 15*time.Second)

	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(15 * time.Second); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, s.Log())
	}
	// Consul would keep a merely-failing instance for a minute
	// (DeregisterCriticalServiceAfter); it is gone now only because the
	// service deregistered itself.
	for _, name := range []string{"inventory", "inventory-grpc"} {
		if ids, err := consul.Registered(name); err != nil || len(ids) != 0 {
			t.Errorf("catalog still has %s %v (%v) after exit", name, ids, err)
		}
	}
	log := s.Log()
	dereg, stopped := strings.Index(log, "deregistered from Consul"), strings.Index(log, "HTTP server stopped")
	if dereg < 0 || stopped < 0 || dereg > stopped {
		t.Errorf("want deregistration logged before the server stopped; log:\n%s", log)
	}
	if n := strings.Count(log, "deregistered from Consul"); n != 2 {
		t.Errorf("%d deregistrations logged; want 2, the HTTP and the gRPC registration", n)
	}
	if grpcStopped := strings.Index(log, "gRPC server stopped"); grpcStopped < dereg {
		t.Errorf("want the gRPC server stopped after deregistration; log:\n%s", log)
	}
}

func TestStartsWithConsulDownAndRegistersWhenItComesUp(t *testing.T) {
	consulPort := testenv.FreePort(t)
	s := testenv.StartService(t, "inventory", "CONSUL_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(consulPort), "DATA_DIR="+t.TempDir(), "OTEL_SDK_DISABLED=true")

	resp, err := http.Get(s.URL + "/products")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /products with Consul down: %v %v; want it served", resp, err)
	}
	resp.Body.Close()
	testenv.Eventually(t, 10*time.Second, "registration failures counted", func() error {
		resp, err := http.Get(s.AdminURL + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !regexp.MustCompile(`glasshouse_consul_registration_failures_total [1-9]`).Match(body) {
			return fmt.Errorf("no failures counted yet")
		}
		return nil
	})

	consul := testenv.StartConsulOn(t, consulPort)
	start := time.Now()
	consul.WaitPassing("inventory", 1, 30*time.Second)
	t.Logf("MEASURED registered and passing %s after Consul came up", time.Since(start).Round(time.Millisecond))
	if s.Exited() {
		t.Fatal("the service exited while Consul was down")
	}
}
