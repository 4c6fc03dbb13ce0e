package users_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/sd"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
)

// server is a real users service (real SQLite, full HTTP stack) on a
// loopback port, and a verifier for the tokens it issues.
type server struct {
	*httptest.Server
	store    *users.Store
	verifier *users.Verifier
}

func newServer(t testing.TB, logs io.Writer) server {
	t.Helper()
	tel := testenv.Telemetry(t, users.ServiceName, testenv.LogTo(logs))
	store := testenv.OpenStore(t, users.OpenStore, tel.TracerProvider)
	key := newKey(t)
	svc := users.Instrumenting(tel.Registry)(newService(t, store, users.NewIssuer(key, 0, nil), users.Options{BcryptCost: bcrypt.MinCost}))
	health := observability.NewHealth()
	health.AddCheck("store", store.Ping)
	handler := transport.Handler(tel, health, users.API.Server(svc, tel.ServerEndpoint), transport.ServerConfig{MaxBodyBytes: 4 << 10})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return server{Server: srv, store: store, verifier: users.NewVerifier(key.Public().(ed25519.PublicKey), nil)}
}

// send sends body (JSON, or "" for none) and returns the response and
// its raw body, read to the end.
func send(t *testing.T, srv server, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}

// do is send for the status and raw body alone.
func do(t *testing.T, srv server, method, path, body string) (int, []byte) {
	t.Helper()
	resp, raw := send(t, srv, method, path, body)
	return resp.StatusCode, raw
}

// decodeExactly decodes raw into v, failing on any field v lacks: the
// wire shape is a contract, and no extra field (a password hash, say) may
// ride along.
func decodeExactly(t *testing.T, raw []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s into %T: %v", raw, v, err)
	}
}

func TestRegisterLoginAndGetOverHTTP(t *testing.T) {
	srv := newServer(t, io.Discard)

	status, raw := do(t, srv, "POST", "/users", `{"email":" Ada@Example.com","password":"`+password+`","name":"Ada Lovelace"}`)
	var u users.User
	decodeExactly(t, raw, &u)
	if status != http.StatusCreated || u.Email != "ada@example.com" || u.Name != "Ada Lovelace" || uuid.Validate(u.ID) != nil {
		t.Fatalf("POST /users = %d %s; want 201 with a UUID, the normalized email and the name", status, raw)
	}

	status, raw = do(t, srv, "POST", "/login", `{"email":"ada@example.com","password":"`+password+`"}`)
	var tok users.Token
	decodeExactly(t, raw, &tok)
	if status != http.StatusOK || tok.ExpiresAt.IsZero() {
		t.Fatalf("POST /login = %d %s; want 200 with a token and expires_at", status, raw)
	}
	if id, err := srv.verifier.Verify(tok.Token); err != nil || id != u.ID {
		t.Errorf("the token names %q (%v), want %q", id, err, u.ID)
	}

	status, raw = do(t, srv, "GET", "/users/"+u.ID, "")
	var got users.User
	decodeExactly(t, raw, &got)
	if status != http.StatusOK || got != u {
		t.Errorf("GET /users/{id} = %d %+v, want 200 %+v", status, got, u)
	}
}

func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	srv := newServer(t, io.Discard)
	// Every password below contains marker, which no response may echo.
	const marker = "Secr3t"
	if status, raw := do(t, srv, "POST", "/users", `{"email":"ada@example.com","password":"`+marker+`-password","name":"Ada"}`); status != http.StatusCreated {
		t.Fatalf("register = %d %s", status, raw)
	}
	before := countUsers(t, srv.store)

	const badCredentials = "email or password is incorrect"
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
		detail                   string // a fragment the detail must contain
	}{
		{"malformed JSON", "POST", "/users", `{"email":"new@example.com","password":"` + marker, 400, "malformed_json", "ends in the middle"},
		{"empty body", "POST", "/users", ``, 400, "malformed_json", "empty"},
		{"two values", "POST", "/users", `{"email":"new@example.com","password":"` + marker + `-password","name":"New"} {}`, 400, "malformed_json", "single JSON value"},
		{"unknown field", "POST", "/users", `{"email":"new@example.com","password":"` + marker + `-password","name":"New","admin":true}`, 400, "unknown_field", `"admin"`},
		{"password not a string", "POST", "/users", `{"email":"new@example.com","password":12345678,"name":"New"}`, 400, "invalid_field", "password"},
		{"email without @", "POST", "/users", `{"email":"new.example.com","password":"` + marker + `-password","name":"New"}`, 400, users.CodeInvalidEmail, "one @"},
		{"email too long", "POST", "/users", `{"email":"` + strings.Repeat("n", 250) + `@example.com","password":"` + marker + `-password","name":"New"}`, 400, users.CodeInvalidEmail, "254 bytes"},
		{"password too short", "POST", "/users", `{"email":"new@example.com","password":"` + marker + `","name":"New"}`, 400, users.CodeWeakPassword, "8 to 72 bytes"},
		{"password too long", "POST", "/users", `{"email":"new@example.com","password":"` + marker + strings.Repeat("x", 67) + `","name":"New"}`, 400, users.CodeWeakPassword, "8 to 72 bytes"},
		{"missing name", "POST", "/users", `{"email":"new@example.com","password":"` + marker + `-password"}`, 400, users.CodeInvalidName, "empty"},
		{"name too long", "POST", "/users", `{"email":"new@example.com","password":"` + marker + `-password","name":"` + strings.Repeat("n", 101) + `"}`, 400, users.CodeInvalidName, "100 characters"},
		{"NUL in the name", "POST", "/users", `{"email":"new@example.com","password":"` + marker + `-password","name":"New\u0000"}`, 400, users.CodeInvalidName, "U+0000"},
		{"bidi override in the name", "POST", "/users", `{"email":"new@example.com","password":"` + marker + `-password","name":"New\u202Etxt.exe"}`, 400, users.CodeInvalidName, "U+202E"},
		{"newline in the email", "POST", "/users", `{"email":"new@example.com\nBcc: x","password":"` + marker + `-password","name":"New"}`, 400, users.CodeInvalidEmail, "control or format"},
		{"email taken in another case", "POST", "/users", `{"email":"ADA@example.com","password":"` + marker + `-password","name":"Ada 2"}`, 409, users.CodeEmailTaken, "ada@example.com"},
		{"oversized body", "POST", "/users", `{"email":"new@example.com","password":"` + marker + `-password","name":"` + strings.Repeat("n", 5<<10) + `"}`, 413, "body_too_large", "4096 bytes"},
		{"wrong password", "POST", "/login", `{"email":"ada@example.com","password":"` + marker + `-wrong"}`, 401, users.CodeInvalidCredentials, badCredentials},
		{"unknown email", "POST", "/login", `{"email":"nobody@example.com","password":"` + marker + `-password"}`, 401, users.CodeInvalidCredentials, badCredentials},
		{"login with an unknown field", "POST", "/login", `{"email":"ada@example.com","password":"` + marker + `-password","remember":true}`, 400, "unknown_field", `"remember"`},
		{"login malformed", "POST", "/login", `{"email":"ada@example.com","password":` + marker, 400, "malformed_json", "malformed JSON"},
		{"unknown user", "GET", "/users/" + uuid.NewString(), ``, 404, users.CodeUserNotFound, "no user"},
		{"user ID not a UUID", "GET", "/users/ada", ``, 404, users.CodeUserNotFound, `"ada"`},
		{"unknown route", "GET", "/accounts", ``, 404, "no_route", "/accounts"},
		{"wrong method on /login", "GET", "/login", ``, 405, "method_not_allowed", "allowed: POST"},
		{"wrong method on a user", "DELETE", "/users/" + uuid.NewString(), ``, 405, "method_not_allowed", "allowed: GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, raw := send(t, srv, tt.method, tt.path, tt.body)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != transport.ProblemContentType {
				t.Errorf("Content-Type = %q, want %q", ct, transport.ProblemContentType)
			}
			var p transport.Problem
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("decode problem %s: %v", raw, err)
			}
			if p.Code != tt.code || p.Status != tt.status || !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("problem = %+v, want code %q, status %d, detail containing %q", p, tt.code, tt.status, tt.detail)
			}
			if p.Type == "" || p.Title == "" || len(p.TraceID) != 32 {
				t.Errorf("problem = %+v, want type, title and a 32-hex trace_id", p)
			}
			if strings.Contains(string(raw), marker) {
				t.Errorf("the response echoes the password: %s", raw)
			}
		})
	}

	if after := countUsers(t, srv.store); after != before {
		t.Errorf("bad requests changed the store: %d users before, %d after", before, after)
	}
}

func TestClientRoundTripKeepsTypedErrors(t *testing.T) {
	srv := newServer(t, io.Discard)
	client := users.NewClient(testenv.Direct(t, srv.URL, testenv.Telemetry(t, "gateway")))
	ctx := context.Background()

	u, err := client.Register(ctx, "Ada@Example.com", password, "Ada")
	if err != nil || u.Email != "ada@example.com" {
		t.Fatalf("Register = %+v, %v", u, err)
	}
	tok, err := client.Login(ctx, "ada@example.com", password)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := srv.verifier.Verify(tok.Token); err != nil || id != u.ID {
		t.Errorf("the token names %q (%v), want %q", id, err, u.ID)
	}
	if got, err := client.GetUser(ctx, u.ID); err != nil || got != u {
		t.Errorf("GetUser = %+v, %v; want %+v", got, err, u)
	}

	typed := []struct {
		name string
		call func() error
		kind errs.Kind
		code string
	}{
		{"email taken", func() error { _, err := client.Register(ctx, "ADA@example.com", password, "Ada"); return err }, errs.Conflict, users.CodeEmailTaken},
		{"weak password", func() error { _, err := client.Register(ctx, "new@example.com", "short", "New"); return err }, errs.Invalid, users.CodeWeakPassword},
		{"wrong password", func() error { _, err := client.Login(ctx, "ada@example.com", "wrong password"); return err }, errs.Unauthenticated, users.CodeInvalidCredentials},
		{"unknown user", func() error { _, err := client.GetUser(ctx, uuid.NewString()); return err }, errs.NotFound, users.CodeUserNotFound},
		// The ID is escaped as one path segment, never a second level.
		{"ID with a slash", func() error { _, err := client.GetUser(ctx, u.ID+"/x"); return err }, errs.NotFound, users.CodeUserNotFound},
	}
	for _, tt := range typed {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var e *errs.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *errs.Error", err, err)
			}
			if e.Kind != tt.kind || e.Code != tt.code || e.Detail == "" {
				t.Errorf("error = %+v, want kind %v code %q with a detail", e, tt.kind, tt.code)
			}
			if !errs.IsBusiness(err) {
				t.Errorf("%v should be a business error", err)
			}
		})
	}
	if n := countUsers(t, srv.store); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
}

// TestOnlySafeCallsAreRetried points a discovery client at an instance
// that fails every request: GetUser is tried again, but a Register that
// may have been processed is not, since a second one could create a
// second account or answer email_taken to the first's author; nor is a
// Login, whose retry would add bcrypt work to a service that failed or
// timed out under it.
func TestOnlySafeCallsAreRetried(t *testing.T) {
	var (
		mu       sync.Mutex
		attempts = map[string]int{}
	)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts[r.Method+" "+r.URL.Path]++
		mu.Unlock()
		transport.WriteError(r.Context(), errs.E(errs.Internal, "", "disk on fire"), w)
	}))
	defer failing.Close()
	base, err := url.Parse(failing.URL)
	if err != nil {
		t.Fatal(err)
	}
	tel := testenv.Telemetry(t, "gateway")
	remote := transport.NewRemoteWithInstancer(sd.FixedInstancer{base.Host}, transport.ClientConfig{
		Service:     users.ServiceName,
		MaxAttempts: 3,
		// Never open: this test counts attempts, not breaker decisions.
		Breaker: transport.BreakerConfig{ConsecutiveFailures: 1000},
	}, tel)
	defer remote.Close()
	client := users.NewClient(remote.Factory())
	ctx := context.Background()

	id := uuid.NewString()
	calls := []struct {
		name, request string
		call          func() error
		attempts      int
	}{
		{"Register", "POST /users", func() error { _, err := client.Register(ctx, "ada@example.com", password, "Ada"); return err }, 1},
		{"Login", "POST /login", func() error { _, err := client.Login(ctx, "ada@example.com", password); return err }, 1},
		{"GetUser", "GET /users/" + id, func() error { _, err := client.GetUser(ctx, id); return err }, 3},
	}
	for _, c := range calls {
		err := c.call()
		if errs.KindOf(err) != errs.Unavailable {
			t.Errorf("%s = %v, want Unavailable after giving up", c.name, err)
		}
		mu.Lock()
		got := attempts[c.request]
		mu.Unlock()
		if got != c.attempts {
			t.Errorf("%s reached the server %d times, want %d", c.name, got, c.attempts)
		}
	}
}

func TestMetricsCountRegistrationsAndLogins(t *testing.T) {
	srv := newServer(t, io.Discard)
	requests := []struct {
		path, body string
		status     int
	}{
		{"/users", `{"email":"ada@example.com","password":"` + password + `","name":"Ada"}`, 201},
		{"/users", `{"email":"ADA@example.com","password":"` + password + `","name":"Ada"}`, 409},
		{"/users", `{"email":"grace@example.com","password":"short","name":"Grace"}`, 400},
		{"/login", `{"email":"ada@example.com","password":"` + password + `"}`, 200},
		{"/login", `{"email":"ada@example.com","password":"wrong password"}`, 401},
		{"/login", `{"email":"nobody@example.com","password":"wrong password"}`, 401},
	}
	for _, r := range requests {
		if status, raw := do(t, srv, "POST", r.path, r.body); status != r.status {
			t.Fatalf("POST %s %s = %d %s, want %d", r.path, r.body, status, raw, r.status)
		}
	}

	for path, wants := range map[string][]string{
		"/metrics": {
			`glasshouse_users_registrations_total{result="ok"} 1`,
			`glasshouse_users_registrations_total{result="email_taken"} 1`,
			`glasshouse_users_registrations_total{result="weak_password"} 1`,
			`glasshouse_users_logins_total{result="ok"} 1`,
			`glasshouse_users_logins_total{result="invalid_credentials"} 2`,
			`glasshouse_endpoint_request_duration_seconds_count{endpoint="Login",outcome="business_error",service="users",transport="http"} 2`,
		},
		"/readyz": {`"store":"ok"`},
	} {
		status, body := do(t, srv, "GET", path, "")
		for _, want := range wants {
			if status != 200 || !strings.Contains(string(body), want) {
				t.Errorf("GET %s = %d, lacking %s", path, status, want)
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to write
// while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestPasswordsNeverReachTheLogs(t *testing.T) {
	logs := &syncBuffer{}
	srv := newServer(t, logs)
	const marker = "Secr3t"
	for _, r := range []struct{ path, body string }{
		{"/users", `{"email":"ada@example.com","password":"` + marker + `-password","name":"Ada"}`},
		{"/users", `{"email":"grace@example.com","password":"` + marker + `","name":"Grace"}`},
		{"/users", `{"email":"grace@example.com","password":"` + marker + `-password","name":"Grace","x":1}`},
		{"/users", `{"email":"grace@example.com","password":"` + marker + `-password","name":` + marker + `}`},
		{"/login", `{"email":"ada@example.com","password":"` + marker + `-password"}`},
		{"/login", `{"email":"ada@example.com","password":"` + marker + `-wrong"}`},
		{"/login", `{"email":"ada@example.com","password":"` + marker + strings.Repeat("x", 100) + `"}`},
	} {
		do(t, srv, "POST", r.path, r.body)
	}
	srv.Close() // waits for every handler, so every log line is written

	// Requests that fail to decode never reach an endpoint; the five
	// others are each logged, errors included.
	out := logs.String()
	if n := strings.Count(out, `"msg":"endpoint call"`); n != 5 {
		t.Fatalf("%d endpoint log lines, want 5:\n%s", n, out)
	}
	if strings.Contains(out, marker) {
		t.Errorf("a log line holds a password:\n%s", out)
	}
}
