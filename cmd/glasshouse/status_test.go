package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/stack"
	"github.com/glasshouse-dev/glasshouse/transport"
	consul "github.com/hashicorp/consul/api"
)

// status finds each instance's admin listener through Consul and reads
// its breakers there: the public port serves no metrics.
func TestStatusReadsBreakersOnTheAdminListener(t *testing.T) {
	c := testenv.StartConsul(t)
	public := httptest.NewServer(http.NotFoundHandler()) // like a real public port
	defer public.Close()
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `# TYPE glasshouse_client_breaker_state gauge
glasshouse_client_breaker_state{endpoint="Charge",remote="payments",remote_instance="127.0.0.1:8184"} 2
glasshouse_client_breaker_state{endpoint="Void",remote="payments",remote_instance="127.0.0.1:8184"} 0
glasshouse_client_breaker_state{endpoint="Charge",remote="payments",remote_instance="127.0.0.1:8084"} 0
`)
	}))
	defer admin.Close()
	adminHost, adminPort, _ := net.SplitHostPort(strings.TrimPrefix(admin.URL, "http://"))
	_, publicPort, _ := net.SplitHostPort(strings.TrimPrefix(public.URL, "http://"))
	port, _ := strconv.Atoi(publicPort)
	aport, _ := strconv.Atoi(adminPort)
	if err := c.Client.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: "orders-1", Name: "orders", Address: "127.0.0.1", Port: port,
		TaggedAddresses: map[string]consul.ServiceAddress{transport.AdminTaggedAddress: {Address: adminHost, Port: aport}},
	}); err != nil {
		t.Fatal(err)
	}

	runDir := t.TempDir()
	state, _ := json.Marshal(stack.State{ConsulURL: "http://" + c.Addr, RunDir: runDir})
	if err := os.WriteFile(stack.StatePath(runDir), state, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cmdStatus(t.Context(), []string{"-run-dir", runDir}, func(string) string { return "" }, &out); err != nil {
		t.Fatal(err)
	}
	line := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "orders-1") {
			line = l
		}
	}
	for _, want := range []string{
		"127.0.0.1:" + publicPort,
		adminHost + ":" + adminPort,
		"payments@127.0.0.1:8184: open (Charge open)",
		"payments@127.0.0.1:8084: closed",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("status line for orders-1 lacks %q:\n%s", want, out.String())
		}
	}
}
