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
	// Addr is host:port of its HTTP server; URL is "http://" + Addr.
	Addr, URL string
	// ID is its instance ID in Consul.
	ID string
}

// StartService runs the binary cmd/name on a free loopback port, with env
// (KEY=VALUE) added to the test's environment, and waits until /healthz
// answers. Consul checks it every second (its minimum) so tests see
// Consul react quickly.
func StartService(t testing.TB, name string, env ...string) *Service {
	t.Helper()
	return StartServiceOn(t, name, FreePort(t), env...)
}

// StartServiceOn is StartService on a given port, e.g. to restart an
// instance where it was.
func StartServiceOn(t testing.TB, name string, port int, env ...string) *Service {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(Binary(t, name))
	cmd.Env = append(os.Environ(),
		"LISTEN_ADDR="+addr,
		"CHECK_INTERVAL=1s", // Consul's minimum
		"CHECK_TIMEOUT=500ms",
	)
	cmd.Env = append(cmd.Env, env...)
	s := &Service{
		Process: Start(t, fmt.Sprintf("%s-%d", name, port), cmd),
		Name:    name,
		Addr:    addr,
		URL:     "http://" + addr,
		ID:      fmt.Sprintf("%s-127.0.0.1-%d", name, port),
	}
	Eventually(t, 20*time.Second, name+" answers /healthz", func() error {
		if s.Exited() {
			t.Fatalf("%s exited:\n%s", s.Process.Name, s.Log())
		}
		resp, err := healthClient.Get(s.URL + "/healthz")
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
