package chaos

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestScrapeReadsGaugesAndCounters(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte(`# TYPE glasshouse_client_breaker_state gauge
glasshouse_client_breaker_state{remote="payments",remote_instance="127.0.0.1:1"} 2
glasshouse_client_breaker_state{remote="payments",remote_instance="127.0.0.1:2"} 0
glasshouse_client_breaker_state{remote="inventory",remote_instance="127.0.0.1:3"} 1
# TYPE glasshouse_spans_exported_total counter
glasshouse_spans_exported_total{result="failure"} 512
glasshouse_spans_exported_total{result="success"} 2048
# TYPE rpc_seconds histogram
rpc_seconds_bucket{le="+Inf"} 3
rpc_seconds_sum 0.5
rpc_seconds_count 3
`))
	}))
	defer srv.Close()
	m, err := scrape(context.Background(), srv.Client(), strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.sum("glasshouse_client_breaker_state", map[string]string{"remote": "payments"}); !ok || v != 2 {
		t.Errorf("payments breakers sum to %v (%v), want 2", v, ok)
	}
	if v, ok := m.sum("glasshouse_spans_exported_total", map[string]string{"result": "failure"}); !ok || v != 512 {
		t.Errorf("failed spans %v (%v), want 512", v, ok)
	}
	if _, ok := m.sum("glasshouse_client_instances", nil); ok {
		t.Error("a metric that is not there was found")
	}
	n := 0
	m.each("glasshouse_client_breaker_state", func(labels map[string]string, v float64) { n++ })
	if n != 3 {
		t.Errorf("%d breaker samples, want 3", n)
	}
	if _, err := scrape(context.Background(), srv.Client(), "127.0.0.1:1"); err == nil {
		t.Error("scraping nothing succeeded")
	}
}
