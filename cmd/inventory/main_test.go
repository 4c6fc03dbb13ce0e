package main

import (
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
	consul := testenv.StartConsul(t)
	svc := testenv.RunService(t, run, map[string]string{"DATA_DIR": t.TempDir(), "LISTEN_ADDR": "127.0.0.1:0", "CONSUL_HTTP_ADDR": consul.Addr, "CHECK_INTERVAL": "1s"}, nil)

	ids := consul.WaitPassing("inventory", 1, 10*time.Second)
	if want := svc.InstanceID("inventory"); ids[0] != want {
		t.Errorf("registered as %q, want %q", ids[0], want)
	}

	resp, err := http.Get("http://" + svc.Addr + "/products")
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

	resp, err = http.Get("http://" + svc.AdminAddr + "/metrics")
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
	svc.AwaitLog("the endpoint call with trace_id "+traceID, func(rec map[string]any) bool {
		return rec["msg"] == "endpoint call" && rec["trace_id"] == traceID
	})

	svc.Stop()
	if ids, err := consul.Registered("inventory"); err != nil || len(ids) != 0 {
		t.Errorf("after shutdown Consul still has %v (%v); want the instance deregistered", ids, err)
	}
}
