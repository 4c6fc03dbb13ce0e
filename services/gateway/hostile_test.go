package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// backendCalls records what the services behind the gateway were asked,
// and the baggage each call's context carried: what would travel on.
type backendCalls struct {
	mu      sync.Mutex
	calls   []string
	baggage []string    // of the last call, "key=value"
	page    orders.Page // of the last ListOrders
}

func (b *backendCalls) record(ctx context.Context, call string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, call)
	b.baggage = nil
	for _, m := range baggage.FromContext(ctx).Members() {
		b.baggage = append(b.baggage, m.Key()+"="+m.Value())
	}
	slices.Sort(b.baggage)
}

func (b *backendCalls) seen() (calls, bag []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls), slices.Clone(b.baggage)
}

// The fakes embed the interfaces so they need only the methods the
// gateway calls; any other would panic, which is a failure too.
type (
	fakeUsers struct {
		users.Service
		b *backendCalls
	}
	fakeInventory struct {
		inventory.Service
		b *backendCalls
	}
	fakeOrders struct {
		orders.Service
		b *backendCalls
	}
)

func (f fakeUsers) Register(ctx context.Context, email, _, name string) (users.User, error) {
	f.b.record(ctx, "Register "+email)
	return users.User{ID: "u-1", Email: email, Name: name}, nil
}

func (f fakeUsers) Login(ctx context.Context, email, _ string) (users.Token, error) {
	f.b.record(ctx, "Login "+email)
	return users.Token{Token: "t", ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (f fakeInventory) ListProducts(ctx context.Context) ([]inventory.Product, error) {
	f.b.record(ctx, "ListProducts")
	return nil, nil
}

func (f fakeInventory) GetProduct(ctx context.Context, sku string) (inventory.Product, error) {
	f.b.record(ctx, "GetProduct "+sku)
	return inventory.Product{SKU: sku}, nil
}

func (f fakeOrders) PlaceOrder(ctx context.Context, userID, key string, items []orders.Item, _ string) (orders.Order, error) {
	f.b.record(ctx, fmt.Sprintf("PlaceOrder %s %s %v", userID, key, items))
	return orders.Order{ID: "ord_1", UserID: userID}, nil
}

func (f fakeOrders) ListOrders(ctx context.Context, userID string, page orders.Page) (orders.OrderPage, error) {
	f.b.record(ctx, fmt.Sprintf("ListOrders %s %+v", userID, page))
	f.b.mu.Lock()
	defer f.b.mu.Unlock()
	f.b.page = page
	return orders.OrderPage{}, nil
}

func (f fakeOrders) GetOrder(ctx context.Context, userID, orderID string) (orders.Order, error) {
	f.b.record(ctx, "GetOrder "+orderID)
	return orders.Order{ID: orderID, UserID: userID}, nil
}

// noMiddleware leaves endpoints bare: these tests are about the edge.
func noMiddleware(string) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint { return next }
}

const goodToken = "good-token"

// testAuth accepts one token, as users.Verifier accepts only its own.
func testAuth(token string) (string, error) {
	if token != goodToken {
		return "", errs.E(errs.Unauthenticated, "invalid_token", "bad token")
	}
	return "user-1", nil
}

// newTestGateway serves the gateway's public API over fake backends,
// behind the same tracing middleware as in production (which extracts
// W3C baggage into the request's context), with generous limits.
func newTestGateway(t *testing.T, opts Options, faultToken string) (http.Handler, *backendCalls) {
	t.Helper()
	b := &backendCalls{}
	svc := NewService(fakeBackends(b), opts)
	tel := observability.Telemetry{
		TracerProvider: tracenoop.NewTracerProvider(),
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	limits := Limits{Client: NewRateLimiter(0, 0, prometheus.NewRegistry())}
	return tel.HTTPHandler(NewHandler(svc, noMiddleware, testAuth, limits, faultToken), true), b
}

func fakeBackends(b *backendCalls) Backends {
	return Backends{Users: fakeUsers{b: b}, Inventory: fakeInventory{b: b}, Orders: fakeOrders{b: b}}
}

type request struct {
	method, path, body string
	header             map[string]string
}

func serve(h http.Handler, req request) *httptest.ResponseRecorder {
	r := httptest.NewRequest(req.method, req.path, strings.NewReader(req.body))
	r.Header.Set("Authorization", "Bearer "+goodToken)
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func problemOf(t *testing.T, rec *httptest.ResponseRecorder) transport.Problem {
	t.Helper()
	var p transport.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("%d %q is not problem+json: %v", rec.Code, rec.Body, err)
	}
	return p
}

var hostileInputs = []struct {
	name string
	req  request
	code string
}{
	{"dot-dot SKU", request{"GET", "/api/products/%2E%2E", "", nil}, "invalid_sku"},
	{"dot SKU", request{"GET", "/api/products/%2E", "", nil}, "invalid_sku"},
	{"SKU with a slash", request{"GET", "/api/products/a%2Fb", "", nil}, "invalid_sku"},
	{"70 kB SKU", request{"GET", "/api/products/" + strings.Repeat("A", 70_000), "", nil}, "invalid_sku"},
	{"dot order ID", request{"GET", "/api/orders/%2E", "", nil}, "invalid_order_id"},
	{"order ID with a query in it", request{"GET", "/api/orders/ord_1%3Fx=1", "", nil}, "invalid_order_id"},
	{"checkout with a dot-dot SKU", request{"POST", "/api/orders",
		`{"items":[{"sku":"GH-MUG-01","quantity":1},{"sku":"..","quantity":1}],"card_number":"4242424242424242"}`,
		map[string]string{"Idempotency-Key": "k1"}}, "invalid_sku"},
	{"checkout with an empty SKU", request{"POST", "/api/orders",
		`{"items":[{"sku":"","quantity":1}],"card_number":"4242424242424242"}`,
		map[string]string{"Idempotency-Key": "k1"}}, "invalid_sku"},
}

func TestHostileIdentifiersNeverReachABackend(t *testing.T) {
	h, b := newTestGateway(t, Options{}, "")
	for _, tc := range hostileInputs {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(h, tc.req)
			if p := problemOf(t, rec); rec.Code != http.StatusBadRequest || p.Code != tc.code {
				t.Errorf("answer %d %s (%s), want 400 %s", rec.Code, p.Code, p.Detail, tc.code)
			}
			// A rejected value is echoed cut short, never in full.
			if len(rec.Body.Bytes()) > 1024 {
				t.Errorf("the 400 body is %d bytes: the input was echoed", rec.Body.Len())
			}
		})
	}
	if calls, _ := b.seen(); len(calls) != 0 {
		t.Errorf("backends were called: %q", calls)
	}
}

func TestIdentifierValidationCanBeSwitchedOffForTheChaosSuite(t *testing.T) {
	h, b := newTestGateway(t, Options{SkipIdentifierValidation: true}, "")
	for _, tc := range hostileInputs {
		if rec := serve(h, tc.req); rec.Code >= 400 {
			t.Errorf("%s: %d %s with validation off, want it passed on", tc.name, rec.Code, rec.Body)
		}
	}
	if calls, _ := b.seen(); len(calls) != len(hostileInputs) {
		t.Errorf("backends saw %d calls, want %d: %q", len(calls), len(hostileInputs), calls)
	}
}

func TestValidIdentifiersPassThrough(t *testing.T) {
	h, b := newTestGateway(t, Options{}, "")
	for _, req := range []request{
		{"GET", "/api/products/GH-MUG-01", "", nil},
		{"GET", "/api/orders/ord_0123456789abcdef0123456789abcdef", "", nil},
		{"POST", "/api/orders", `{"items":[{"sku":"GH-MUG-01","quantity":2}],"card_number":"4242424242424242"}`,
			map[string]string{"Idempotency-Key": "checkout-2026-01-01 #1"}},
	} {
		if rec := serve(h, req); rec.Code >= 400 {
			t.Errorf("%s %s: %d %s", req.method, req.path, rec.Code, rec.Body)
		}
	}
	calls, _ := b.seen()
	want := []string{
		"GetProduct GH-MUG-01",
		"GetOrder ord_0123456789abcdef0123456789abcdef",
		"PlaceOrder user-1 checkout-2026-01-01 #1 [{GH-MUG-01 2}]",
	}
	if !slices.Equal(calls, want) {
		t.Errorf("backend calls %q, want %q", calls, want)
	}
}

func TestIdempotencyKeyMustBePrintableASCIIOfAtMost128Bytes(t *testing.T) {
	h, b := newTestGateway(t, Options{}, "")
	body := `{"items":[{"sku":"GH-MUG-01","quantity":1}],"card_number":"4242424242424242"}`
	for name, key := range map[string]string{
		"129 bytes":     strings.Repeat("k", 129),
		"a tab":         "key\twith-tab",
		"DEL":           "key\x7f",
		"non-ASCII":     "clé",
		"a NUL and 1kB": "\x00" + strings.Repeat("k", 1000),
	} {
		rec := serve(h, request{"POST", "/api/orders", body, map[string]string{"Idempotency-Key": key}})
		if p := problemOf(t, rec); rec.Code != http.StatusBadRequest || p.Code != "invalid_idempotency_key" {
			t.Errorf("%s: %d %s, want 400 invalid_idempotency_key", name, rec.Code, p.Code)
		}
	}
	if calls, _ := b.seen(); len(calls) != 0 {
		t.Errorf("orders was called: %q", calls)
	}
	if rec := serve(h, request{"POST", "/api/orders", body, map[string]string{"Idempotency-Key": strings.Repeat("k", 128)}}); rec.Code != http.StatusCreated {
		t.Errorf("a 128-byte key: %d %s, want 201", rec.Code, rec.Body)
	}
}

func TestOutsideBaggageNeverReachesABackend(t *testing.T) {
	const secret = "chaos-only-secret"
	const sent = "fault.payments=error,fault.inventory=delay:1ms,user.tier=gold"
	cases := []struct {
		name       string
		faultToken string
		header     map[string]string
		want       []string
	}{
		{"fault injection off", "", map[string]string{transport.FaultTokenHeader: secret}, nil},
		{"no token sent", secret, nil, nil},
		{"wrong token", secret, map[string]string{transport.FaultTokenHeader: "chaos-only-secreT"}, nil},
		{"right token: fault members only", secret,
			map[string]string{transport.FaultTokenHeader: secret},
			[]string{"fault.inventory=delay:1ms", "fault.payments=error"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, b := newTestGateway(t, Options{}, tc.faultToken)
			header := map[string]string{"Baggage": sent}
			for k, v := range tc.header {
				header[k] = v
			}
			if rec := serve(h, request{"GET", "/api/products/GH-MUG-01", "", header}); rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			calls, bag := b.seen()
			if len(calls) != 1 {
				t.Fatalf("backend calls %q, want one", calls)
			}
			if !slices.Equal(bag, tc.want) {
				t.Errorf("the backend call's context carried baggage %q, want %q", bag, tc.want)
			}
		})
	}
}

// authGateway serves the API with the production shape of limits (a
// generous per-client one, low sign-up/login ones) on a clock the test
// moves.
func authGateway(t *testing.T, cfg LimitsConfig) (http.Handler, *backendCalls, Limits, *time.Time) {
	t.Helper()
	b := &backendCalls{}
	limits := NewLimits(cfg, prometheus.NewRegistry())
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, l := range []*RateLimiter{limits.Client, limits.Auth, limits.LoginEmail} {
		l.now = func() time.Time { return now }
	}
	h := NewHandler(NewService(fakeBackends(b), Options{}), noMiddleware, testAuth, limits, "")
	return h, b, limits, &now
}

func tryLogin(h http.Handler, ip, email string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/api/login", strings.NewReader(`{"email":`+jsonString(email)+`,"password":"wrong-password"}`))
	r.RemoteAddr = ip + ":40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestLoginAndSignUpHaveTheirOwnLowerLimitPerClient(t *testing.T) {
	h, _, limits, _ := authGateway(t, LimitsConfig{
		Client: Limit{100, 200}, Auth: Limit{5, 10}, LoginEmail: Limit{1000, 1000},
	})
	for i := range 10 {
		if rec := tryLogin(h, "198.51.100.1", fmt.Sprintf("u%d@example.com", i)); rec.Code != http.StatusOK {
			t.Fatalf("login %d within the burst: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := tryLogin(h, "198.51.100.1", "another@example.com")
	if p := problemOf(t, rec); rec.Code != http.StatusTooManyRequests || p.Code != "rate_limited" || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("11th login: %d %s Retry-After %q; want 429 rate_limited, 1", rec.Code, p.Code, rec.Header().Get("Retry-After"))
	}
	// Sign-up shares the bucket: it costs users the same bcrypt work.
	signUp := httptest.NewRequest("POST", "/api/users", strings.NewReader(`{"email":"n@example.com","password":"password1","name":"N"}`))
	signUp.RemoteAddr = "198.51.100.1:40000"
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, signUp)
	if rec.Code != http.StatusTooManyRequests {
		t.Errorf("sign-up after the login flood: %d, want 429", rec.Code)
	}
	// The same client may still browse, and other clients may log in.
	browse := httptest.NewRequest("GET", "/api/products", nil)
	browse.RemoteAddr = "198.51.100.1:40000"
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, browse)
	if rec.Code != http.StatusOK {
		t.Errorf("browsing after the login flood: %d, want 200", rec.Code)
	}
	if rec := tryLogin(h, "198.51.100.2", "u0@example.com"); rec.Code != http.StatusOK {
		t.Errorf("another client's login: %d %s", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(limits.Auth.limited); got != 2 {
		t.Errorf("rate_limited_total{limit=auth} = %v, want 2", got)
	}
}

func TestLoginIsLimitedPerEmailWhateverTheClient(t *testing.T) {
	h, b, limits, now := authGateway(t, LimitsConfig{
		Client: Limit{100, 200}, Auth: Limit{5, 10}, LoginEmail: Limit{1, 5},
	})
	// Five guesses at one account from five addresses, spelled
	// differently: one email to users, so one bucket.
	for i, email := range []string{"victim@example.com", "VICTIM@example.com", " victim@example.com", "Victim@Example.com\t", "victim@example.com"} {
		if rec := tryLogin(h, fmt.Sprintf("203.0.113.%d", i+1), email); rec.Code != http.StatusOK {
			t.Fatalf("guess %d within the burst: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := tryLogin(h, "203.0.113.99", "victim@EXAMPLE.com")
	if p := problemOf(t, rec); rec.Code != http.StatusTooManyRequests || p.Code != "rate_limited" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("6th guess: %d %s Retry-After %q; want 429 rate_limited with Retry-After", rec.Code, p.Code, rec.Header().Get("Retry-After"))
	}
	if rec := tryLogin(h, "203.0.113.99", "someone.else@example.com"); rec.Code != http.StatusOK {
		t.Errorf("another account from the same address: %d", rec.Code)
	}
	*now = now.Add(time.Second)
	if rec := tryLogin(h, "203.0.113.100", "victim@example.com"); rec.Code != http.StatusOK {
		t.Errorf("a second later: %d, want 200", rec.Code)
	}
	if got := testutil.ToFloat64(limits.LoginEmail.limited); got != 1 {
		t.Errorf("rate_limited_total{limit=login_email} = %v, want 1", got)
	}
	if calls, _ := b.seen(); len(calls) != 7 {
		t.Errorf("users saw %d logins, want 7 (the refused one never left)", len(calls))
	}
}

func TestLoginEmailLimitLeavesBadBodiesToTheDecoder(t *testing.T) {
	h, _, limits, _ := authGateway(t, LimitsConfig{
		Client: Limit{100, 200}, Auth: Limit{100, 100}, LoginEmail: Limit{1, 1},
	})
	for _, body := range []string{`{"email":`, `{"email":"` + strings.Repeat("a", 300) + `@example.com","password":"x"}`, `{"password":"x"}`} {
		for range 3 {
			r := httptest.NewRequest("POST", "/api/login", strings.NewReader(body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code == http.StatusTooManyRequests {
				t.Errorf("body %.30q was limited per email: %d", body, rec.Code)
			}
		}
	}
	if n := limits.LoginEmail.Len(); n != 0 {
		t.Errorf("the email limiter kept %d keys for bodies without a usable email", n)
	}
	// The body is read ahead of the decoder and given back to it whole.
	r := httptest.NewRequest("POST", "/api/login", strings.NewReader(`{"email":"a@example.com","password":"x","extra":1}`))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if p := problemOf(t, rec); p.Code != "unknown_field" {
		t.Errorf("the decoder saw another body: %d %s, want 400 unknown_field", rec.Code, p.Code)
	}
}

func TestAnOversizedLoginIsStillA413(t *testing.T) {
	h, b, _, _ := authGateway(t, LimitsConfig{
		Client: Limit{100, 200}, Auth: Limit{100, 100}, LoginEmail: Limit{1, 1},
	})
	h = transport.LimitBody(1<<20, h)
	// No Content-Length, so only reading finds it too large: the email
	// limiter reads first, and the decoder must still see the failure.
	body := io.MultiReader(strings.NewReader(`{"email":"a@example.com","password":"`), strings.NewReader(strings.Repeat("x", 2<<20)+`"}`))
	r := httptest.NewRequest("POST", "/api/login", body)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if p := problemOf(t, rec); rec.Code != http.StatusRequestEntityTooLarge || p.Code != "body_too_large" {
		t.Errorf("a 2 MiB login: %d %s, want 413 body_too_large", rec.Code, p.Code)
	}
	if calls, _ := b.seen(); len(calls) != 0 {
		t.Errorf("users was called: %q", calls)
	}
}
