package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
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
	admin := FreePort(t)
	for admin == port { // the public port may be free again between runs
		admin = FreePort(t)
	}
	return StartServiceOnPorts(t, name, port, admin, env...)
}

// StartServiceOnPorts is StartService on given public and admin ports.
func StartServiceOnPorts(t testing.TB, name string, port, adminPort int, env ...string) *Service {
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
	cmd.Env = append(cmd.Env, env...)
	s := &Service{
		Process:   Start(t, fmt.Sprintf("%s-%d", name, port), cmd),
		Name:      name,
		Addr:      addr,
		URL:       "http://" + addr,
		AdminAddr: adminAddr,
		AdminURL:  "http://" + adminAddr,
		ID:        fmt.Sprintf("%s-127.0.0.1-%d", name, port),
	}
	Eventually(t, 20*time.Second, name+" answers /healthz", func() error {
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
	return s
}
