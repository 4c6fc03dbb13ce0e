package stack

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

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
