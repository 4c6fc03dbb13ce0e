package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/users"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRunServesAndShutsDownCleanly starts the real service through run,
// as main does, on a free port, a key file that does not exist yet, and a
// temporary data directory or a PostgreSQL database whose password no log
// line may show.
func TestRunServesAndShutsDownCleanly(t *testing.T) {
	testenv.OnEachBackend(t, testRunServesAndShutsDownCleanly)
}

func testRunServesAndShutsDownCleanly(t *testing.T, b testenv.Backend) {
	consul := testenv.StartConsul(t)
	keyFile := filepath.Join(t.TempDir(), "keys", "users-jwt.key")
	env := map[string]string{
		"DATA_DIR": t.TempDir(), "LISTEN_ADDR": "127.0.0.1:0", "CONSUL_HTTP_ADDR": consul.Addr, "CHECK_INTERVAL": "1s",
		"JWT_PRIVATE_KEY_FILE": keyFile, "BCRYPT_COST": "4", "TOKEN_TTL": "5m",
	}
	dbPassword := "" // PostgreSQL's, which no log line may show either
	if b.Name == testenv.Postgres.Name {
		dbURL := b.NewDatabase(t)
		env["DATABASE_URL"] = dbURL
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		if dbPassword, _ = u.User.Password(); dbPassword == "" {
			t.Fatalf("the test database's URL has no password to look for in the logs")
		}
	}

	// Every log line must be JSON (RunService checks that), no line may
	// hold the password, and one says where the key pair was generated.
	const password = "Secr3t-password"
	var keyLogged atomic.Bool
	var storeLine atomic.Value // the database named by the "store" log line
	svc := testenv.RunService(t, run, env, func(line []byte) {
		if strings.Contains(string(line), password) {
			t.Errorf("log line holds the password: %s", line)
		}
		if dbPassword != "" && strings.Contains(string(line), dbPassword) {
			t.Errorf("a log line shows the database password: %s", line)
		}
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil {
			return
		}
		switch rec["msg"] {
		case "generated a token signing key pair":
			keyLogged.Store(rec["private_key"] == keyFile && rec["public_key"] == users.PublicKeyPath(keyFile))
		case "store":
			storeLine.Store(rec["database"])
		}
	})
	addr, adminAddr := svc.Addr, svc.AdminAddr // /metrics is on the admin listener
	if !keyLogged.Load() {
		t.Errorf("no log line saying the key pair was generated at %s and %s", keyFile, users.PublicKeyPath(keyFile))
	}
	// The store opens before the service serves.
	if got, want := storeLine.Load(), map[string]string{"sqlite": "sqlite", "postgres": "postgresql"}[b.Name]; got != want {
		t.Errorf("the store log line names database %v, want %q", got, want)
	}

	ids := consul.WaitPassing("users", 1, 10*time.Second)
	if want := svc.InstanceID("users"); ids[0] != want {
		t.Errorf("registered as %q, want %q", ids[0], want)
	}

	resp, err := http.Post("http://"+addr+"/users", "application/json",
		strings.NewReader(`{"email":"ada@example.com","password":"`+password+`","name":"Ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	var u users.User
	err = json.NewDecoder(resp.Body).Decode(&u)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || u.ID == "" {
		t.Fatalf("POST /users = %d %+v, %v; want 201 with an ID", resp.StatusCode, u, err)
	}

	resp, err = http.Post("http://"+addr+"/login", "application/json",
		strings.NewReader(`{"email":"ada@example.com","password":"`+password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok users.Token
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /login = %d, %v; want 200", resp.StatusCode, err)
	}
	if ttl := time.Until(tok.ExpiresAt); ttl <= 4*time.Minute || ttl > 5*time.Minute {
		t.Errorf("token expires in %s, want about TOKEN_TTL=5m", ttl)
	}
	traceID := resp.Header.Get("X-Trace-Id")

	// What the gateway does: check the token with the public key written
	// beside the private one.
	pub, err := users.LoadPublicKey(users.PublicKeyPath(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := users.NewVerifier(pub, nil).Verify(tok.Token); err != nil || id != u.ID {
		t.Errorf("the token names %q (%v), want %q", id, err, u.ID)
	}

	resp, err = http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`glasshouse_users_registrations_total{result="ok"} 1`,
		`glasshouse_users_logins_total{result="ok"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The endpoint's log line carries the same trace ID as the response.
	svc.AwaitLog("the Login call with trace_id "+traceID, func(rec map[string]any) bool {
		return rec["msg"] == "endpoint call" && rec["endpoint"] == "Login" && rec["trace_id"] == traceID
	})

	svc.Stop()
	if ids, err := consul.Registered("users"); err != nil || len(ids) != 0 {
		t.Errorf("after shutdown Consul still has %v (%v); want the instance deregistered", ids, err)
	}
}

// TestRunRefusesBadSettings checks that settings which would leave the
// service unable to hash, sign or expire anything stop it at start, with
// an error naming the culprit.
func TestRunRefusesBadSettings(t *testing.T) {
	notAKey := filepath.Join(t.TempDir(), "users-jwt.key")
	if err := os.WriteFile(notAKey, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key, value, want string
	}{
		{"bcrypt cost out of range", "BCRYPT_COST", "32", "bcrypt cost 32"},
		{"bcrypt cost not a number", "BCRYPT_COST", "high", "$BCRYPT_COST"},
		{"token TTL not a duration", "TOKEN_TTL", "an hour", "$TOKEN_TTL"},
		{"key file that is not a key", "JWT_PRIVATE_KEY_FILE", notAKey, notAKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{
				"DATA_DIR": t.TempDir(), "LISTEN_ADDR": "127.0.0.1:0", "OTEL_SDK_DISABLED": "true",
				"JWT_PRIVATE_KEY_FILE": filepath.Join(t.TempDir(), "users-jwt.key"),
				tt.key:                 tt.value,
			}
			err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
