package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/services"
)

// healthClient bounds each health poll, so a hung instance fails the
// wait at its deadline instead of hanging the test.
var healthClient = &http.Client{Timeout: 2 * time.Second}

// Service is one running instance of a glasshouse service binary.
type Service struct {
	*Process
	Name string
	// Addr is host:port of its public HTTP server (the API); URL is
	// "http://" + Addr.
	Addr, URL string
	// AdminAddr is host:port of its admin listener (/healthz, /readyz,
	// /metrics, /debug/pprof/, admin routes); AdminURL is "http://" +
	// AdminAddr.
	AdminAddr, AdminURL string
	// GRPCAddr is host:port of its gRPC listener, for a service that
	// serves gRPC (services.Spec.GRPC); else "".
	GRPCAddr string
	// ID is its instance ID in Consul.
	ID string
}

// StartService runs the binary cmd/name on free loopback ports (public and
// admin), with env (KEY=VALUE) added to the test's environment, and waits
// until /healthz answers on the admin listener. Consul checks it every
// second (its minimum) so tests see Consul react quickly.
func StartService(t testing.TB, name string, env ...string) *Service {
	t.Helper()
	ports := FreePorts(t, 2)
	return StartServiceOnPorts(t, name, ports[0], ports[1], env...)
}

// StartServiceOn is StartService on a given public port, e.g. to restart
// an instance where it was; its admin port is a free one.
func StartServiceOn(t testing.TB, name string, port int, env ...string) *Service {
	t.Helper()
	return StartServiceOnPorts(t, name, port, FreePort(t), env...)
}

// StartServiceOnPorts is StartService on given public and admin ports.
func StartServiceOnPorts(t testing.TB, name string, port, adminPort int, env ...string) *Service {
	t.Helper()
	s := launchService(t, name, port, adminPort, env)
	s.awaitHealthy(t)
	return s
}

// StartReplicas runs n instances of cmd/name at once, each as
// StartService would with the same env, and waits until every one
// answers /healthz. Launched together, replicas on one database migrate
// it side by side, as a rollout of several at once does.
func StartReplicas(t testing.TB, name string, n int, env ...string) []*Service {
	t.Helper()
	ports := FreePorts(t, 2*n)
	replicas := make([]*Service, n)
	for i := range replicas {
		replicas[i] = launchService(t, name, ports[2*i], ports[2*i+1], env)
	}
	for _, s := range replicas {
		s.awaitHealthy(t)
	}
	return replicas
}

// launchService starts the binary and returns without waiting for it.
func launchService(t testing.TB, name string, port, adminPort int, env []string) *Service {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	adminAddr := "127.0.0.1:" + strconv.Itoa(adminPort)
	cmd := exec.Command(Binary(t, name))
	cmd.Env = append(os.Environ(),
		"LISTEN_ADDR="+addr,
		"ADMIN_LISTEN_ADDR="+adminAddr,
		"CHECK_INTERVAL=1s", // Consul's minimum
		"CHECK_TIMEOUT=500ms",
	)
	// A free gRPC port too: the default, the public port - 1000, may be
	// taken on a machine running many tests.
	grpcAddr := ""
	if spec, ok := services.Lookup(name); ok && spec.GRPC {
		grpcAddr = "127.0.0.1:" + strconv.Itoa(FreePort(t))
		cmd.Env = append(cmd.Env, "GRPC_LISTEN_ADDR="+grpcAddr)
	}
	// Events go nowhere unless the test starts NATS and says where: a
	// port nothing listens on, never a developer's stack on 4222.
	cmd.Env = append(cmd.Env, "NATS_URL=nats://127.0.0.1:"+strconv.Itoa(FreePort(t)))
	cmd.Env = append(cmd.Env, env...)
	return &Service{
		Process:   Start(t, fmt.Sprintf("%s-%d", name, port), cmd),
		Name:      name,
		Addr:      addr,
		URL:       "http://" + addr,
		AdminAddr: adminAddr,
		AdminURL:  "http://" + adminAddr,
		GRPCAddr:  grpcAddr,
		ID:        fmt.Sprintf("%s-127.0.0.1-%d", name, port),
	}
}

// awaitHealthy waits until the instance answers /healthz, failing the
// test with its log if it exits first.
func (s *Service) awaitHealthy(t testing.TB) {
	t.Helper()
	Eventually(t, 20*time.Second, s.Process.Name+" answers /healthz", func() error {
		if s.Exited() {
			t.Fatalf("%s exited:\n%s", s.Process.Name, s.Log())
		}
		resp, err := healthClient.Get(s.AdminURL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// LogRecords returns the instance's JSON log lines whose message is msg,
// each decoded; lines that are not JSON are skipped.
func (s *Service) LogRecords(msg string) []map[string]any {
	var records []map[string]any
	for _, line := range strings.Split(s.Log(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			records = append(records, rec)
		}
	}
	return records
}

// MetricValue scrapes the instance's /metrics and returns the value of
// one series, written as the exposition format prints it
// (`name{label="value",…}`, labels in alphabetical order); a series not
// exposed fails the test.
func (s *Service) MetricValue(t testing.TB, series string) float64 {
	t.Helper()
	v, ok := s.metric(t, series)
	if !ok {
		t.Fatalf("%s exposes no series %s", s.Process.Name, series)
	}
	return v
}

// CounterValue is MetricValue for a counter that may not exist yet: a
// series the instance has not exposed counts 0.
func (s *Service) CounterValue(t testing.TB, series string) float64 {
	t.Helper()
	v, _ := s.metric(t, series)
	return v
}

func (s *Service) metric(t testing.TB, series string) (float64, bool) {
	t.Helper()
	resp, err := healthClient.Get(s.AdminURL + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", s.Process.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", s.Process.Name, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if value, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s on %s: %v", series, s.Process.Name, err)
			}
			return v, true
		}
	}
	return 0, false
}
