package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRunServesAndShutsDownCleanly starts the real service through run,
// as main does, on a free port and a temporary data directory, or a
// PostgreSQL database whose password no log line may show.
func TestRunServesAndShutsDownCleanly(t *testing.T) {
	testenv.OnEachBackend(t, testRunServesAndShutsDownCleanly)
}

func testRunServesAndShutsDownCleanly(t *testing.T, b testenv.Backend) {
	consul := testenv.StartConsul(t)
	env := map[string]string{"DATA_DIR": t.TempDir(), "LISTEN_ADDR": "127.0.0.1:0", "CONSUL_HTTP_ADDR": consul.Addr, "CHECK_INTERVAL": "1s"}
	password := "" // PostgreSQL's, which no log line may show
	if b.Name == testenv.Postgres.Name {
		dbURL := b.NewDatabase(t)
		env["DATABASE_URL"] = dbURL
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		password, _ = u.User.Password()
	}
	var storeLine atomic.Value // the database named by the "store" log line
	svc := testenv.RunService(t, run, env, func(line []byte) {
		if password != "" && strings.Contains(string(line), password) {
			t.Errorf("a log line shows the database password: %s", line)
		}
		var rec struct{ Msg, Database string }
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "store" {
			storeLine.Store(rec.Database)
		}
	})
	// The store opens before the service serves.
	if got, want := storeLine.Load(), map[string]string{"sqlite": "sqlite", "postgres": "postgresql"}[b.Name]; got != want {
		t.Errorf("the store log line names database %v, want %q", got, want)
	}

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
	want := `glasshouse_endpoint_request_duration_seconds_count{endpoint="ListProducts",outcome="success",service="inventory",transport="http"} 1`
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

func TestABadDatabaseURLIsRefusedNamingDATABASE_URL(t *testing.T) {
	for _, bad := range []string{"mysql://app:s3cret@db/app", "postgres://app:s3cret@db:port/app"} {
		env := map[string]string{"DATABASE_URL": bad, "LISTEN_ADDR": "127.0.0.1:0"}
		var out strings.Builder
		err := run(context.Background(), nil, func(k string) string { return env[k] }, &out)
		if err == nil || !strings.Contains(err.Error()+out.String(), "DATABASE_URL") {
			t.Errorf("DATABASE_URL=%s: err = %v, output %q; want a refusal naming DATABASE_URL", bad, err, out.String())
		}
		if strings.Contains(fmt.Sprint(err)+out.String(), "s3cret") {
			t.Errorf("DATABASE_URL=%s: the refusal shows the password: %v %s", bad, err, out.String())
		}
	}
}
