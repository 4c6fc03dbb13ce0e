package stack

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/services"
)

// spec is the catalogue's entry for name.
func spec(t *testing.T, name string) services.Spec {
	t.Helper()
	s, ok := services.Lookup(name)
	if !ok {
		t.Fatalf("no service %q in the catalogue", name)
	}
	return s
}

func TestATakenPortIsAClearErrorNamingItsFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().(*net.TCPAddr).Port

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Up(ctx, Config{RunDir: t.TempDir(), RandomPorts: true, PrometheusPort: taken})
	if s != nil || err == nil {
		t.Fatalf("Up on a taken port = %v, %v; want an error", s, err)
	}
	for _, want := range []string{"--prometheus-port", "already in use", ln.Addr().String()[strings.LastIndex(ln.Addr().String(), ":")+1:]} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestRandomPortsAreDistinct(t *testing.T) {
	cfg := Config{RandomPorts: true}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for range 200 {
		var p int
		if err := cfg.reserve(&p, "test"); err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func TestEveryInstanceGetsAnAdminPort(t *testing.T) {
	// Fixed ports: the admin listener sits 1000 above the public one, as
	// the services' own default does.
	fixed := Config{Host: "127.0.0.1"}
	if err := fixed.defaults(); err != nil {
		t.Fatal(err)
	}
	ports, err := fixed.servicePorts(spec(t, "inventory"), 2)
	if err != nil {
		t.Skipf("a default port is taken on this machine (a stack running?): %v", err)
	}
	if want := (instancePorts{public: 8182, admin: 9182, grpc: 7182}); ports != want {
		t.Errorf("inventory/2 ports = %+v; want %+v", ports, want)
	}

	// Random ports: each admin port is free and distinct from every other.
	random := Config{RandomPorts: true}
	if err := random.defaults(); err != nil {
		t.Fatal(err)
	}
	seen := map[int]string{}
	for _, svc := range services.All() {
		for n := 1; n <= svc.Replicas; n++ {
			ports, err := random.servicePorts(svc, n)
			if err != nil {
				t.Fatal(err)
			}
			if (ports.grpc != 0) != svc.GRPC {
				t.Errorf("%s/%d got gRPC port %d; the catalogue says GRPC=%v", svc.Name, n, ports.grpc, svc.GRPC)
			}
			all := []int{ports.public, ports.admin}
			if svc.GRPC {
				all = append(all, ports.grpc)
			}
			for _, p := range all {
				if p == 0 || seen[p] != "" {
					t.Fatalf("%s/%d got port %d, already %q", svc.Name, n, p, seen[p])
				}
				seen[p] = svc.Name
			}
		}
	}

	// A taken admin port is an error naming what it is for.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().(*net.TCPAddr).Port
	clash := Config{Host: "127.0.0.1", GatewayPort: taken - services.AdminOffset}
	if err := clash.defaults(); err != nil {
		t.Fatal(err)
	}
	if _, err := clash.servicePorts(spec(t, "gateway"), 1); err == nil || !strings.Contains(err.Error(), "admin port of gateway/1") {
		t.Errorf("a taken admin port gave %v; want an error naming the admin port of gateway/1", err)
	}
}
