package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/pgcluster"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
)

// waiting is an inventory started through run with env, whose PostgreSQL
// is not up; its log is kept for a failing test to show.
type waiting struct {
	t             *testing.T
	admin, public string
	cancel        context.CancelFunc
	done          chan error
	log           *lockedBuffer
}

func startWaiting(t *testing.T, env map[string]string) *waiting {
	t.Helper()
	ports := testenv.FreePorts(t, 2)
	w := &waiting{
		t:      t,
		public: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		admin:  fmt.Sprintf("127.0.0.1:%d", ports[1]),
		done:   make(chan error, 1),
		log:    &lockedBuffer{},
	}
	env["LISTEN_ADDR"], env["ADMIN_LISTEN_ADDR"] = w.public, w.admin
	var ctx context.Context
	ctx, w.cancel = context.WithCancel(context.Background())
	go func() { w.done <- run(ctx, nil, func(k string) string { return env[k] }, w.log) }()
	t.Cleanup(func() {
		w.cancel()
		select {
		case <-w.done:
		case <-time.After(15 * time.Second):
			t.Error("run did not return after cancel")
		}
		if t.Failed() {
			t.Logf("the service's log:\n%s", w.log.String())
		}
	})
	return w
}

// readyz is /readyz's status and its "store" check.
func (w *waiting) readyz() (int, string, error) {
	resp, err := http.Get("http://" + w.admin + "/readyz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var report struct{ Checks map[string]string }
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, report.Checks["store"], nil
}

// awaitWaiting polls until /readyz fails saying it waits for the
// database, after a retry at least.
func (w *waiting) awaitWaiting() {
	w.t.Helper()
	testenv.Eventually(w.t, 10*time.Second, "/readyz 503 waiting for the database", func() error {
		code, store, err := w.readyz()
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(store, "waiting for the database: ") ||
			!strings.Contains(store, "connection refused") || !strings.Contains(store, "(attempt ") ||
			strings.Contains(store, "(attempt 1,") { // it retries

			return fmt.Errorf("/readyz = %d, store %q", code, store)
		}
		w.t.Logf("/readyz while waiting: %d, store: %s", code, store)
		return nil
	})
}

// stop cancels run as SIGTERM does and returns its result and how long
// it took.
func (w *waiting) stop() (error, time.Duration) {
	start := time.Now()
	w.cancel()
	select {
	case err := <-w.done:
		w.done <- err // for the cleanup
		return err, time.Since(start)
	case <-time.After(15 * time.Second):
		w.t.Fatal("run did not return within 15s of cancel")
		return nil, 0
	}
}

// A PostgreSQL that is down when the service starts makes it unready,
// saying why, and out of Consul, not crashed; once the database is up,
// the service migrates, seeds, registers and serves.
func TestAnUnreachableDatabaseMakesTheServiceUnreadyUntilItAnswers(t *testing.T) {
	// A cluster of this test's own, on a port of its choosing, started
	// only after the service. /tmp, not t.TempDir: as root the server runs
	// as the postgres user, who must reach the directory.
	dir, err := os.MkdirTemp("", "glasshouse-pgwait-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cluster, err := pgcluster.Open(pgcluster.Config{Dir: dir, Port: testenv.FreePort(t), Throwaway: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(10 * time.Second) })
	consul := testenv.StartConsul(t)

	svc := startWaiting(t, map[string]string{
		"DATABASE_URL": cluster.SuperuserURL("postgres"), "CONSUL_HTTP_ADDR": consul.Addr, "CHECK_INTERVAL": "1s",
	})
	svc.awaitWaiting()
	if resp, err := http.Get("http://" + svc.admin + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz while waiting = %v, %v; want 200: the process is alive", resp, err)
	} else {
		resp.Body.Close()
	}
	if ids, err := consul.Registered("inventory"); err != nil || len(ids) != 0 {
		t.Fatalf("while waiting Consul has %v (%v); want no instance", ids, err)
	}

	up := time.Now()
	if err := cluster.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL up in %s", time.Since(up).Round(time.Millisecond))
	testenv.Eventually(t, 30*time.Second, "/readyz 200 once the database answers", func() error {
		if code, store, err := svc.readyz(); err != nil || code != http.StatusOK || store != "ok" {
			return fmt.Errorf("/readyz = %d, store %q, %v", code, store, err)
		}
		return nil
	})
	t.Logf("ready %s after the database was up", time.Since(up).Round(time.Millisecond))
	code, body := testenv.Send(t, "GET", "http://"+svc.public+"/products", "")
	var products struct {
		Products []map[string]any `json:"products"`
	}
	if err := json.Unmarshal([]byte(body), &products); err != nil || code != http.StatusOK || len(products.Products) != 12 {
		t.Fatalf("GET /products = %d, %d products (%v); want 200 with the 12 seeded", code, len(products.Products), err)
	}
	consul.WaitPassing("inventory", 1, 15*time.Second)

	if err, took := svc.stop(); err != nil {
		t.Fatalf("run returned %v after shutdown, want nil", err)
	} else {
		t.Logf("stopped in %s", took.Round(time.Millisecond))
	}
}

// SIGTERM while the service waits for its database is a prompt, clean
// stop.
func TestAStopWhileWaitingForTheDatabaseIsClean(t *testing.T) {
	nothing := testenv.FreePort(t) // no server listens there
	svc := startWaiting(t, map[string]string{
		"DATABASE_URL":     fmt.Sprintf("postgres://inventory:pw@127.0.0.1:%d/inventory?sslmode=disable", nothing),
		"CONSUL_HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), // nor any Consul
	})
	svc.awaitWaiting()
	err, took := svc.stop()
	if err != nil {
		t.Fatalf("run returned %v after cancel while waiting, want nil", err)
	}
	if took > 3*time.Second {
		t.Errorf("run took %s to return after cancel; want it prompt", took)
	}
	t.Logf("stopped in %s", took.Round(time.Millisecond))
	if _, err := http.Get("http://" + svc.admin + "/healthz"); err == nil {
		t.Error("the admin listener still answers after run returned")
	}
}

// A database host that accepts connections and never answers (packets
// dropped after the handshake, a wedged proxy) is waited for like one
// that refuses: each attempt ends at the connect timeout, /readyz says
// so, the next attempt follows, and a stop mid-attempt is clean.
func TestADatabaseThatNeverAnswersIsRetriedNotHungOn(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var held []net.Conn // never read or written, until the listener closes
		defer func() {
			for _, conn := range held {
				conn.Close()
			}
		}()
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
		}
	}()
	svc := startWaiting(t, map[string]string{
		"DATABASE_URL":     "postgres://inventory:pw@" + silent.Addr().String() + "/inventory?sslmode=disable",
		"CONSUL_HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
	})
	// Generous: the first attempt alone takes the 5s connect timeout.
	testenv.Eventually(t, 30*time.Second, "/readyz 503 saying the last attempt got no answer", func() error {
		code, store, err := svc.readyz()
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(store, "waiting for the database: ") ||
			!strings.Contains(store, "no answer within connect_timeout (5s)") || !strings.Contains(store, "(attempt 1") {
			return fmt.Errorf("/readyz = %d, store %q", code, store)
		}
		t.Logf("/readyz while waiting: %d, store: %s", code, store)
		return nil
	})
	// A stop while the second attempt waits on the silent host ends it.
	testenv.Eventually(t, 30*time.Second, "/readyz saying the second attempt is under way", func() error {
		if _, store, err := svc.readyz(); err != nil || !strings.Contains(store, "(attempt 1; attempt 2 under way)") {
			return fmt.Errorf("store %q, %v", store, err)
		}
		return nil
	})
	if err, took := svc.stop(); err != nil {
		t.Fatalf("run returned %v after cancel during an unanswered attempt, want nil", err)
	} else {
		t.Logf("stopped in %s", took.Round(time.Millisecond))
	}
}

// A server that answers and refuses (a wrong password) is a start-up
// error naming DATABASE_URL, not a wait.
func TestAWrongDatabasePasswordIsAStartupError(t *testing.T) {
	u, err := url.Parse(testenv.PostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	env := map[string]string{"DATABASE_URL": u.String(), "LISTEN_ADDR": "127.0.0.1:0"}
	done := make(chan error, 1)
	go func() { done <- run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard) }()
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15s with a wrong password; want a start-up error")
	}
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("run = %v; want a start-up error naming DATABASE_URL and the failed authentication", err)
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("the error shows the password: %v", err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAPoolCapBelowOneIsRefusedNamingDATABASE_MAX_CONNS(t *testing.T) {
	env := map[string]string{"DATABASE_MAX_CONNS": "0", "LISTEN_ADDR": "127.0.0.1:0", "DATA_DIR": t.TempDir()}
	var out strings.Builder
	err := run(context.Background(), nil, func(k string) string { return env[k] }, &out)
	if err == nil || !strings.Contains(err.Error()+out.String(), "DATABASE_MAX_CONNS") {
		t.Errorf("DATABASE_MAX_CONNS=0: err = %v, output %q; want a refusal naming DATABASE_MAX_CONNS", err, out.String())
	}
}
