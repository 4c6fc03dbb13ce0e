package transport_test

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	consulapi "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
)

// A SIGKILLed instance leaves its registration behind. Its successor on
// the same port has the same ID but may have another admin port: it must
// replace the stale entry, not take it for its own and stay critical.
func TestRestartedInstanceReplacesItsPredecessorsRegistration(t *testing.T) {
	consul := testenv.StartConsul(t)
	tel := newTelemetry(t, io.Discard)
	client, err := transport.NewConsulClient(consul.Addr)
	if err != nil {
		t.Fatal(err)
	}
	public := mustListen(t)
	t.Cleanup(func() { public.Close() })
	port := public.Addr().(*net.TCPAddr).Port

	// The predecessor's entry: same ID, a check on an admin port nobody
	// serves any more.
	dead := mustListen(t)
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	if err := client.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{
		ID: "phoenix-1", Name: "phoenix", Address: "127.0.0.1", Port: port,
		Check: &consulapi.AgentServiceCheck{CheckID: "phoenix-1:readyz", HTTP: "http://127.0.0.1:" + itoa(deadPort) + "/readyz", Interval: "1s", Timeout: "500ms"},
	}); err != nil {
		t.Fatal(err)
	}

	admin := startAdmin(t, tel, observability.NewHealth(), nil)
	registrar := transport.NewRegistrar(client, transport.Registration{
		Service: "phoenix", ID: "phoenix-1", Address: "127.0.0.1", Port: port,
		AdminPort: admin.Addr().(*net.TCPAddr).Port, CheckInterval: time.Second, CheckTimeout: 500 * time.Millisecond,
	}, tel.Logger, prometheus.NewRegistry())
	go registrar.Run()
	t.Cleanup(func() { registrar.Stop(nil) })
	consul.WaitPassing("phoenix", 1, 15*time.Second)
}

func itoa(n int) string { return strconv.Itoa(n) }
