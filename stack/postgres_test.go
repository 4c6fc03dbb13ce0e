package stack

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/services"
)

func TestOrdersRunsTwoReplicasOnPostgresOnly(t *testing.T) {
	orders := spec(t, "orders")
	for store, want := range map[Store]int{StoreSQLite: 1, StorePostgres: 2} {
		cfg := Config{Store: store}
		if got := cfg.replicas(orders); got != want {
			t.Errorf("orders replicas on %s = %d; want %d", store, got, want)
		}
	}
	// Every other count is the catalogue's on both stores.
	for _, svc := range services.All() {
		if svc.Name == "orders" {
			continue
		}
		for _, store := range []Store{StoreSQLite, StorePostgres} {
			if got := (&Config{Store: store}).replicas(svc); got != svc.Replicas {
				t.Errorf("%s replicas on %s = %d; want the catalogue's %d", svc.Name, store, got, svc.Replicas)
			}
		}
	}
}

// The whole stack on PostgreSQL, as `glasshouse up --store postgres`
// starts it: a cluster, a database and a role per service that has a
// store, and a checkout through the gateway that the second orders
// replica can read back.
func TestUpOnPostgresGivesEachServiceItsOwnDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	// Not t.TempDir: as root, PostgreSQL runs as the postgres user, who
	// must reach the run directory, and t.TempDir's parent is private.
	runDir, err := os.MkdirTemp("", "glasshouse-stack-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := Up(ctx, Config{
		Root: "..", RunDir: runDir, BinDir: t.TempDir(), RandomPorts: true,
		Store: StorePostgres, Progress: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	dbs := s.Databases()
	t.Cleanup(func() {
		if err := s.Down(context.Background()); err != nil {
			t.Errorf("stack down: %v", err)
		}
		for _, p := range s.Procs() {
			if p.Running() {
				t.Errorf("%s still running after down", p.Name)
			}
		}
		// A postmaster's process group holds every backend: none may
		// outlive Down (a zombie waiting for its reaper aside, briefly).
		deadline := time.Now().Add(5 * time.Second)
		for _, db := range dbs {
			for syscall.Kill(-db.PID, 0) == nil {
				if time.Now().After(deadline) {
					t.Errorf("a postgres process of %s (group %d) is still there after down", db.Name, db.PID)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	// A cluster per store-owning service, each running on its own port.
	ports := map[string]bool{}
	for _, svc := range services.All() {
		db := s.Database(svc.Name)
		switch {
		case svc.Store == "" && db != nil:
			t.Errorf("%s has no store but a database %s", svc.Name, db.Name)
		case svc.Store == "":
		case db == nil || s.Proc(DatabaseProc(svc.Name)) != db || !db.Running():
			t.Fatalf("no running %s among the stack's processes", DatabaseProc(svc.Name))
		case ports[db.Addr]:
			t.Errorf("%s shares its address %s with another cluster", db.Name, db.Addr)
		default:
			ports[db.Addr] = true
		}
	}

	// Every instance of a store-owning service has its own database.
	urls := map[string]string{}
	for _, svc := range services.All() {
		instances := s.Instances(svc.Name)
		if want := s.cfg.replicas(svc); len(instances) != want {
			t.Errorf("%s runs %d instances; want %d", svc.Name, len(instances), want)
		}
		for _, p := range instances {
			got := lastEnv(p.env, "DATABASE_URL")
			if svc.Store == "" {
				if got != "" {
					t.Errorf("%s, which has no store, got DATABASE_URL %s", p.Name, got)
				}
				continue
			}
			u, err := url.Parse(got)
			addr := s.Database(svc.Name).Addr
			if err != nil || u.Scheme != "postgres" || u.User.Username() != svc.Name || u.Path != "/"+svc.Name ||
				u.Host != addr || u.Query().Get("sslmode") != "disable" {
				t.Errorf("%s: DATABASE_URL %q; want postgres://%s:…@%s/%s?sslmode=disable", p.Name, got, svc.Name, addr, svc.Name)
			}
			if prev, ok := urls[svc.Name]; ok && prev != got {
				t.Errorf("%s's replicas have different DATABASE_URLs", svc.Name)
			}
			urls[svc.Name] = got
		}
	}

	// A checkout through the gateway, read back from the second orders
	// replica (another process, the same database) and through the gateway.
	token := signUp(t, s.GatewayURL)
	status, body := call(t, "POST", s.GatewayURL+"/api/orders", token,
		`{"items":[{"sku":"GH-MUG-01","quantity":1}],"card_number":"4242424242424242"}`, "Idempotency-Key", "pg-stack-1")
	if status != http.StatusCreated {
		t.Fatalf("checkout: %d %s", status, body)
	}
	var order struct{ ID, Status string }
	if err := json.Unmarshal([]byte(body), &order); err != nil || order.ID == "" {
		t.Fatalf("checkout answered %s (%v)", body, err)
	}
	orders2 := s.Proc("orders/2")
	if orders2 == nil {
		t.Fatal("no orders/2")
	}
	for _, get := range []string{"http://" + orders2.Addr + "/orders/" + order.ID, s.GatewayURL + "/api/orders/" + order.ID} {
		if status, body := call(t, "GET", get, token, ""); status != http.StatusOK || !strings.Contains(body, order.ID) {
			t.Errorf("GET %s: %d %s", get, status, body)
		}
	}

	// Each role reaches its own database and no other: another service's
	// cluster does not know it.
	for owner, ownURL := range urls {
		for db := range urls {
			u, _ := url.Parse(ownURL)
			u.Host, u.Path = s.Database(db).Addr, "/"+db
			err := ping(u.String())
			switch {
			case db == owner && err != nil:
				t.Errorf("%s cannot connect to its own database: %v", owner, err)
			case db != owner && err == nil:
				t.Errorf("%s's role connects to %s's database", owner, db)
			case db != owner && !strings.Contains(err.Error(), "password authentication failed"):
				t.Errorf("%s's role on %s's cluster: %v; want password authentication failed", owner, db, err)
			}
		}
	}
}

func ping(dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// lastEnv is the value a process sees for key: the last setting wins.
func lastEnv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// signUp creates a customer through the gateway and returns its token.
func signUp(t *testing.T, gateway string) string {
	t.Helper()
	email := fmt.Sprintf("pg-stack-%d@example.com", time.Now().UnixNano())
	if status, body := call(t, "POST", gateway+"/api/users", "",
		fmt.Sprintf(`{"email":%q,"password":"correct-horse-battery","name":"PG"}`, email)); status != http.StatusCreated {
		t.Fatalf("sign-up: %d %s", status, body)
	}
	status, body := call(t, "POST", gateway+"/api/login", "",
		fmt.Sprintf(`{"email":%q,"password":"correct-horse-battery"}`, email))
	var login struct{ Token string }
	if err := json.Unmarshal([]byte(body), &login); status != http.StatusOK || err != nil || login.Token == "" {
		t.Fatalf("login: %d %s", status, body)
	}
	return login.Token
}

// call sends one request (headers as name, value pairs) and returns the
// status and body.
func call(t *testing.T, method, url, token, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
