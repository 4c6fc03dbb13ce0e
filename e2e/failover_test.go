package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/orders"
)

// These tests prove that replicas come and go without a customer
// noticing: under closed-loop load through the gateway (every request
// answered before a worker sends its next, so the load is as heavy as the
// machine allows), one inventory replica is SIGKILLed, or every inventory
// and payments replica is restarted in turn. Not a single request may
// fail.

// closedLoop runs workers that each send do() back to back until stop is
// closed, and tallies what they saw.
type closedLoop struct {
	mu       sync.Mutex
	total    int
	failures map[string]int // "503 unavailable", "transport: ..." → count
	wg       sync.WaitGroup
	stop     chan struct{}
	started  time.Time
}

func startClosedLoop(workers int, do func(*http.Client) (int, string)) *closedLoop {
	l := &closedLoop{failures: map[string]int{}, stop: make(chan struct{}), started: time.Now()}
	for range workers {
		// One keep-alive connection per worker, as a load generator
		// with N connections has.
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer client.CloseIdleConnections()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				status, failure := do(client)
				l.mu.Lock()
				l.total++
				if failure != "" {
					l.failures[fmt.Sprintf("%d %s", status, failure)]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// counts returns requests answered so far and failures.
func (l *closedLoop) counts() (total, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.failures {
		failed += n
	}
	return l.total, failed
}

func (l *closedLoop) finish(t *testing.T, what string) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	total, failed := l.counts()
	elapsed := time.Since(l.started)
	t.Logf("MEASURED %s: %d requests in %s (%.0f req/s), %d failed", what, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), failed)
	if failed > 0 {
		var kinds []string
		for k, n := range l.failures {
			kinds = append(kinds, fmt.Sprintf("%d× %s", n, k))
		}
		sort.Strings(kinds)
		t.Errorf("%s: %d of %d requests failed: %s", what, failed, total, strings.Join(kinds, "; "))
	}
}

// waitMore waits until the loop has answered n more requests, so each
// phase of a test runs under load that really flows.
func (l *closedLoop) waitMore(t *testing.T, n int) {
	t.Helper()
	before, _ := l.counts()
	testenv.Eventually(t, 60*time.Second, fmt.Sprintf("%d more requests answered", n), func() error {
		if now, _ := l.counts(); now < before+n {
			return fmt.Errorf("%d answered", now-before)
		}
		return nil
	})
}

func browse(gateway string) func(*http.Client) (int, string) {
	return func(c *http.Client) (int, string) {
		resp, err := c.Get(gateway + "/api/products")
		if err != nil {
			return 0, "transport: " + err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, problemCode(body)
		}
		return resp.StatusCode, ""
	}
}

func problemCode(body []byte) string {
	if i := strings.Index(string(body), `"code":"`); i >= 0 {
		rest := string(body[i+8:])
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return rest[:j]
		}
	}
	return "no problem code"
}

func TestKilledReplicaUnderClosedLoopLoadLosesNoRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the platform as processes")
	}
	s := startShop(t)
	load := startClosedLoop(16, browse(s.gateway.URL))
	load.waitMore(t, 2000)

	victim := s.inventory[0]
	port := victim.Addr[strings.LastIndex(victim.Addr, ":")+1:]
	victim.Kill() // SIGKILL: no deregistration, connections cut mid-request
	load.waitMore(t, 5000)

	var p int
	fmt.Sscan(port, &p)
	s.inventory[0] = testenv.StartServiceOn(t, "inventory", p, s.env("inventory")...)
	s.consul.WaitServing("inventory", 2, 30*time.Second)
	load.waitMore(t, 3000)
	load.finish(t, "closed-loop browse, 16 connections, one of two inventory replicas SIGKILLed and restarted")
}

func TestRollingRestartUnderClosedLoopLoadLosesNoRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the platform as processes")
	}
	s := startShop(t)
	token := s.signUp("rolling@example.com")
	load := startClosedLoop(16, browse(s.gateway.URL))
	buyers := startClosedLoop(2, func(c *http.Client) (int, string) {
		resp := s.order(token, fmt.Sprintf("roll-%d", time.Now().UnixNano()), approveCard, orders.Item{SKU: "GH-STICK-01", Quantity: 1})
		if resp.status != http.StatusCreated {
			return resp.status, problemCode(resp.body)
		}
		return resp.status, ""
	})
	load.waitMore(t, 2000)

	// SIGTERM each replica in turn (it deregisters and drains), start it
	// again where it was, and wait until it passes before the next.
	restart := func(name string, replicas []*testenv.Service, i int) {
		old := replicas[i]
		port := old.Addr[strings.LastIndex(old.Addr, ":")+1:]
		if err := old.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := old.Wait(30 * time.Second); err != nil {
			t.Fatalf("%s did not stop after SIGTERM: %v", old.Name, err)
		}
		var p int
		fmt.Sscan(port, &p)
		replicas[i] = testenv.StartServiceOn(t, name, p, s.env(name)...)
		s.consul.WaitServing(name, 2, 30*time.Second)
		load.waitMore(t, 1500)
	}
	for i := range s.inventory {
		restart("inventory", s.inventory, i)
	}
	for i := range s.payments {
		restart("payments", s.payments, i)
	}
	load.finish(t, "closed-loop browse, 16 connections, rolling restart of 2 inventory and 2 payments replicas")
	buyers.finish(t, "checkouts beside it, 2 connections")
	if t.Failed() {
		// What orders saw of the restarts says why a checkout failed.
		for _, line := range strings.Split(s.orders.Log(), "\n") {
			if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, "instance left") || strings.Contains(line, "instance joined") {
				t.Log(line)
			}
		}
	}
}
