package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
)

// TestRunServesAndShutsDownCleanly starts the real service through run,
// as main does, on a free port and a temporary data directory.
func TestRunServesAndShutsDownCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs, logWriter := io.Pipe()
	consul := testenv.StartConsul(t)
	env := map[string]string{"DATA_DIR": t.TempDir(), "LISTEN_ADDR": "127.0.0.1:0", "CONSUL_HTTP_ADDR": consul.Addr, "CHECK_INTERVAL": "1s"}
	getenv := func(k string) string { return env[k] }
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, getenv, logWriter)
		logWriter.Close()
	}()

	// The log tells us where it listens; every line must be JSON.
	lines := make(chan map[string]any, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Errorf("log line is not JSON: %s", sc.Text())
				continue
			}
			lines <- rec
		}
	}()
	var addr string
	timeout := time.After(10 * time.Second)
	var adminAddr string // /metrics is on the admin listener
	for addr == "" || adminAddr == "" {
		select {
		case rec := <-lines:
			switch rec["msg"] {
			case "serving HTTP":
				addr = rec["addr"].(string)
			case "serving admin HTTP":
				adminAddr = rec["addr"].(string)
			}
		case err := <-done:
			t.Fatalf("run ended before serving: %v", err)
		case <-timeout:
			t.Fatal("service did not start within 10s")
		}
	}

	ids := consul.WaitPassing("inventory", 1, 10*time.Second)
	if want := "inventory-" + addr[:strings.LastIndex(addr, ":")] + "-" + addr[strings.LastIndex(addr, ":")+1:]; ids[0] != want {
		t.Errorf("registered as %q, want %q", ids[0], want)
	}

	resp, err := http.Get("http://" + addr + "/products")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Products []map[string]any `json:"products"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(body.Products) != 12 {
		t.Fatalf("GET /products = %d, %d products, %v; want 200 with the 12 seeded", resp.StatusCode, len(body.Products), err)
	}
	traceID := resp.Header.Get("X-Trace-Id")

	resp, err = http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `glasshouse_endpoint_request_duration_seconds_count{endpoint="ListProducts",outcome="success",service="inventory"} 1`
	if !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	// The endpoint's log line carries the same trace ID as the response.
	found := false
	for !found {
		select {
		case rec := <-lines:
			found = rec["msg"] == "endpoint call" && rec["trace_id"] == traceID
		case <-timeout:
			t.Fatalf("no endpoint log line with trace_id %s", traceID)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after shutdown, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	for range lines { // drain
	}
	if ids, err := consul.Registered("inventory"); err != nil || len(ids) != 0 {
		t.Errorf("after shutdown Consul still has %v (%v); want the instance deregistered", ids, err)
	}
}
