// Package e2e tests the whole shop as users meet it: every service a real
// process, discovered through a real Consul, called only through the
// gateway. What the tests check behind the gateway (stock ledgers,
// charges) they read from the services' own stores, never change.
package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/glasshouse-dev/glasshouse/storage"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace/noop"
)

const (
	approveCard = "4242424242424242"
	declineCard = "4000000000000002"
)

// shop is the platform running as processes: two inventory and two
// payments replicas, one of each other service, each service's store on
// one backend: a SQLite file its replicas share, or a PostgreSQL database
// of its own.
type shop struct {
	t         *testing.T
	consul    *testenv.Consul
	nats      *testenv.NATS
	dir       string
	stores    map[string]string // each store-owning service's source
	users     *testenv.Service
	inventory []*testenv.Service
	payments  []*testenv.Service
	orders    *testenv.Service
	// recommendations learns from orders' events; nothing calls it but
	// the gateway's recommendations endpoint.
	recommendations *testenv.Service
	gateway         *testenv.Service
	ordersEnv       []string
}

func (s *shop) env(service string, extra ...string) []string {
	database := ""
	if src := s.stores[service]; storage.IsPostgresURL(src) {
		database = src
	}
	return append([]string{
		"CONSUL_HTTP_ADDR=" + s.consul.Addr,
		"NATS_URL=" + s.nats.URL,
		"DATA_DIR=" + filepath.Join(s.dir, service),
		"DATABASE_URL=" + database,
		"JWT_PRIVATE_KEY_FILE=" + filepath.Join(s.dir, "keys", "users-jwt.key"),
		"JWT_PUBLIC_KEY_FILE=" + filepath.Join(s.dir, "keys", "users-jwt.pub"),
		"BCRYPT_COST=4",
	}, extra...)
}

func startShop(t *testing.T, ordersEnv ...string) *shop {
	t.Helper()
	return startShopOn(t, testenv.SQLite, ordersEnv...)
}

// startShopOn is startShop with every store on backend b.
func startShopOn(t *testing.T, b testenv.Backend, ordersEnv ...string) *shop {
	t.Helper()
	s := &shop{t: t, consul: testenv.StartConsul(t), nats: testenv.StartNATS(t), dir: t.TempDir(), ordersEnv: ordersEnv, stores: map[string]string{}}
	for _, svc := range services.All() {
		switch {
		case svc.Store == "":
		case b.Name == testenv.SQLite.Name:
			s.stores[svc.Name] = filepath.Join(s.dir, svc.Name, svc.Store)
		default:
			s.stores[svc.Name] = b.NewDatabase(t)
		}
	}
	s.users = testenv.StartService(t, "users", s.env("users")...)
	for range 2 {
		s.inventory = append(s.inventory, testenv.StartService(t, "inventory", s.env("inventory")...))
		s.payments = append(s.payments, testenv.StartService(t, "payments", s.env("payments")...))
	}
	s.orders = testenv.StartService(t, "orders", s.env("orders", ordersEnv...)...)
	s.recommendations = testenv.StartService(t, "recommendations", s.env("recommendations")...)
	s.gateway = testenv.StartService(t, "gateway", s.env("gateway", "RATE_LIMIT=0")...)
	for service, n := range map[string]int{"users": 1, "inventory": 2, "payments": 2, "orders": 1, "recommendations": 1, "gateway": 1} {
		s.consul.WaitServing(service, n, 30*time.Second)
	}
	return s
}

// restartOrders starts orders again where it was, on the same port and data.
func (s *shop) restartOrders() {
	port := s.orders.Addr[strings.LastIndex(s.orders.Addr, ":")+1:]
	var p int
	fmt.Sscan(port, &p)
	s.orders = testenv.StartServiceOn(s.t, "orders", p, s.env("orders", s.ordersEnv...)...)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) problem(t *testing.T) (code, traceID string) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d with Content-Type %q, want problem+json: %s", r.status, ct, r.body)
	}
	var p struct {
		Code    string `json:"code"`
		TraceID string `json:"trace_id"`
	}
	r.decode(t, &p)
	return p.Code, p.TraceID
}

// call sends a request to the gateway. Every answer must carry a trace ID.
func (s *shop) call(method, path, token string, body any, header ...string) response {
	s.t.Helper()
	var buf io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		buf = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.gateway.URL+path, buf)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if len(resp.Header.Get("X-Trace-Id")) != 32 {
		s.t.Errorf("%s %s: no X-Trace-Id header", method, path)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// signUp registers a user and logs in, returning the token.
func (s *shop) signUp(email string) string {
	s.t.Helper()
	r := s.call("POST", "/api/users", "", map[string]string{"email": email, "password": "correct horse", "name": "Ada"})
	if r.status != 201 {
		s.t.Fatalf("sign up: %d %s", r.status, r.body)
	}
	r = s.call("POST", "/api/login", "", map[string]string{"email": email, "password": "correct horse"})
	if r.status != 200 {
		s.t.Fatalf("login: %d %s", r.status, r.body)
	}
	var tok users.Token
	r.decode(s.t, &tok)
	if tok.Token == "" || !tok.ExpiresAt.After(time.Now()) {
		s.t.Fatalf("login gave %+v", tok)
	}
	return tok.Token
}

func (s *shop) order(token, key, card string, items ...orders.Item) response {
	s.t.Helper()
	return s.call("POST", "/api/orders", token, map[string]any{"items": items, "card_number": card}, "Idempotency-Key", key)
}

func (s *shop) available(sku string) int {
	s.t.Helper()
	r := s.call("GET", "/api/products/"+sku, "", nil)
	var p inventory.Product
	r.decode(s.t, &p)
	return p.Available
}

// ledgers reads the services' own stores (shared by their replicas).
func (s *shop) ledgers() (map[string]inventory.Ledger, []payments.Charge, *orders.Store) {
	s.t.Helper()
	ctx, tp := context.Background(), noop.NewTracerProvider()
	inv, err := inventory.OpenStore(ctx, s.stores["inventory"], tp)
	if err != nil {
		s.t.Fatal(err)
	}
	defer inv.Close()
	ledger, err := inv.StockLedger(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	pay, err := payments.OpenStore(ctx, s.stores["payments"], tp)
	if err != nil {
		s.t.Fatal(err)
	}
	defer pay.Close()
	charges, err := pay.ListCharges(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	ord, err := orders.OpenStore(ctx, s.stores["orders"], tp)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { ord.Close() })
	return ledger, charges, ord
}

// invariants reports every broken promise of the checkout, once no saga
// runs: stock is conserved (nothing left held), no order is charged twice,
// and every successful charge belongs to a CONFIRMED order.
func (s *shop) invariants() error {
	s.t.Helper()
	ledger, charges, ord := s.ledgers()
	var broken []string
	for _, p := range inventory.Catalogue {
		l := ledger[p.SKU]
		if l.Held != 0 || l.Available+l.Committed != p.Available {
			broken = append(broken, fmt.Sprintf("%s: available %d + committed %d (held %d) != initial %d", p.SKU, l.Available, l.Committed, l.Held, p.Available))
		}
	}
	perOrder := map[string]int{}
	for _, c := range charges {
		perOrder[c.OrderID]++
		if c.Status != payments.Succeeded {
			continue
		}
		o, err := ord.Order(context.Background(), c.OrderID)
		if err != nil || o.Status != orders.Confirmed {
			broken = append(broken, fmt.Sprintf("charge %s (succeeded) belongs to order %s in status %q (%v)", c.ID, c.OrderID, o.Status, err))
		}
	}
	for id, n := range perOrder {
		if n != 1 {
			broken = append(broken, fmt.Sprintf("order %s has %d charges", id, n))
		}
	}
	if len(broken) > 0 {
		return fmt.Errorf("%d broken:\n%s", len(broken), strings.Join(broken, "\n"))
	}
	return nil
}

func (s *shop) checkInvariants() {
	s.t.Helper()
	if err := s.invariants(); err != nil {
		s.t.Error(err)
	}
}

// TestShopThroughTheGateway runs the shop with the saga on gRPC, the
// default, on each backend; TestShopWithTheSagaOverHTTP runs it with the
// saga on HTTP, which stays supported.
func TestShopThroughTheGateway(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) { testShop(t, b, "grpc") })
}

func TestShopWithTheSagaOverHTTP(t *testing.T) { testShop(t, testenv.SQLite, "http") }

func testShop(t *testing.T, b testenv.Backend, saga string) {
	s := startShopOn(t, b, "INVENTORY_TRANSPORT="+saga, "PAYMENTS_TRANSPORT="+saga)
	token := s.signUp("ada@example.com")

	var list inventory.ListProductsResponse
	s.call("GET", "/api/products", "", nil).decode(t, &list)
	if len(list.Products) != len(inventory.Catalogue) {
		t.Fatalf("%d products, want %d", len(list.Products), len(inventory.Catalogue))
	}
	mugs := s.available("GH-MUG-01")

	// A checkout: confirmed, stock down, one charge.
	r := s.order(token, "order-1", approveCard, orders.Item{SKU: "GH-MUG-01", Quantity: 2})
	if r.status != 201 {
		t.Fatalf("checkout: %d %s", r.status, r.body)
	}
	var placed orders.Order
	r.decode(t, &placed)
	if placed.Status != orders.Confirmed || placed.TotalCents != 2*1200 || placed.Currency != "EUR" || placed.ID == "" {
		t.Fatalf("order = %+v; want CONFIRMED, 2400 EUR", placed)
	}
	if got := s.available("GH-MUG-01"); got != mugs-2 {
		t.Errorf("mugs available %d, want %d", got, mugs-2)
	}

	// The same Idempotency-Key replays the same order and charges nothing more.
	r = s.order(token, "order-1", approveCard, orders.Item{SKU: "GH-MUG-01", Quantity: 2})
	var replayed orders.Order
	r.decode(t, &replayed)
	if r.status != 201 || replayed.ID != placed.ID {
		t.Errorf("replay: %d %+v; want 201 with order %s", r.status, replayed, placed.ID)
	}
	if got := s.available("GH-MUG-01"); got != mugs-2 {
		t.Errorf("mugs available %d after the replay, want %d", got, mugs-2)
	}

	// A declined card: 402, the order FAILED, the stock back.
	tees := s.available("GH-TEE-01")
	r = s.order(token, "order-2", declineCard, orders.Item{SKU: "GH-TEE-01", Quantity: 1})
	if code, _ := r.problem(t); r.status != 402 || code != "card_declined" {
		t.Errorf("declined checkout: %d %s", r.status, r.body)
	}
	if got := s.available("GH-TEE-01"); got != tees {
		t.Errorf("tees available %d after a decline, want %d", got, tees)
	}

	// More than the stock: 409, nothing charged.
	r = s.order(token, "order-3", approveCard, orders.Item{SKU: "GH-LAMP-01", Quantity: 4})
	if code, _ := r.problem(t); r.status != 409 || code != "out_of_stock" {
		t.Errorf("out-of-stock checkout: %d %s", r.status, r.body)
	}

	var mine orders.ListOrdersResponse
	s.call("GET", "/api/orders", token, nil).decode(t, &mine)
	statuses := map[orders.Status]int{}
	for _, o := range mine.Orders {
		statuses[o.Status]++
	}
	if len(mine.Orders) != 3 || statuses[orders.Confirmed] != 1 || statuses[orders.Failed] != 1 || statuses[orders.Rejected] != 1 {
		t.Errorf("my orders by status %v, want one CONFIRMED, one FAILED, one REJECTED", statuses)
	}
	if r := s.call("GET", "/api/orders/"+placed.ID, token, nil); r.status != 200 {
		t.Errorf("GET my order: %d %s", r.status, r.body)
	}

	// Another user cannot see it: 404, not 403.
	other := s.signUp("grace@example.com")
	if r := s.call("GET", "/api/orders/"+placed.ID, other, nil); r.status != 404 {
		t.Errorf("another user's order: %d, want 404", r.status)
	}

	// No token, a forged token: 401, with a trace ID to report.
	_, forgedKey, _ := ed25519.GenerateKey(rand.Reader)
	forged, _, _ := users.NewIssuer(forgedKey, time.Hour, nil).Issue("someone")
	for name, tok := range map[string]string{"missing": "", "forged": forged, "garbage": "not.a.jwt"} {
		r := s.order(tok, "order-x", approveCard, orders.Item{SKU: "GH-MUG-01", Quantity: 1})
		code, traceID := r.problem(t)
		if r.status != 401 || traceID == "" {
			t.Errorf("%s token: %d %s (code %s); want 401 with trace_id", name, r.status, r.body, code)
		}
	}

	// Only the public routes exist at the edge.
	for _, path := range []string{"/admin/faults", "/reservations", "/api/admin/faults", "/charges"} {
		if r := s.call("GET", path, "", nil); r.status != 404 {
			t.Errorf("GET %s through the gateway: %d, want 404", path, r.status)
		}
	}
	// The saga's calls went over the transport asked for: inventory and
	// payments counted them under it.
	for _, hop := range []struct {
		instances []*testenv.Service
		service   string
		endpoint  string
	}{{s.inventory, "inventory", "Reserve"}, {s.payments, "payments", "Charge"}} {
		var n float64
		for _, inst := range hop.instances {
			n += inst.CounterValue(t, fmt.Sprintf(`glasshouse_endpoint_request_duration_seconds_count{endpoint=%q,outcome="success",service=%q,transport=%q}`, hop.endpoint, hop.service, saga))
		}
		if n == 0 {
			t.Errorf("no successful %s.%s counted with transport=%q: the saga did not use %s", hop.service, hop.endpoint, saga, saga)
		}
	}

	// Each finished order's event left through the outbox: one message
	// per order on the ORDERS stream, its subject the order's status.
	want := map[string]string{}
	for _, o := range mine.Orders {
		want[o.ID+"."+strings.ToLower(string(o.Status))] = "orders." + strings.ToLower(string(o.Status))
	}
	testenv.Eventually(t, 15*time.Second, "the orders' events are on the ORDERS stream", func() error {
		got, err := streamEvents(s.nats.URL)
		if err != nil {
			return err
		}
		for id, subject := range want {
			if got[id] != subject {
				return fmt.Errorf("event %s: on %q, want %s (the stream holds %v)", id, got[id], subject, got)
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("the stream holds %v; want %v", got, want)
		}
		return nil
	})
	s.checkInvariants()
}

// streamEvents reads the ORDERS stream: each message's Nats-Msg-Id and
// subject.
func streamEvents(url string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, orders.StreamName)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", seq, err)
		}
		out[m.Header.Get(jetstream.MsgIDHeader)] = m.Subject
	}
	return out, nil
}

func TestPaymentsDownFailsFastAndRecovers(t *testing.T) {
	testenv.OnEachBackend(t, testPaymentsDownFailsFastAndRecovers)
}

func testPaymentsDownFailsFastAndRecovers(t *testing.T, b testenv.Backend) {
	s := startShopOn(t, b)
	token := s.signUp("ada@example.com")
	if r := s.order(token, "warm-up", approveCard, orders.Item{SKU: "GH-PEN-01", Quantity: 1}); r.status != 201 {
		t.Fatalf("warm-up checkout: %d %s", r.status, r.body)
	}

	ports := make([]string, len(s.payments))
	for i, p := range s.payments {
		ports[i] = p.Addr
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(15 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	s.consul.WaitServing("payments", 0, 10*time.Second)

	pens := s.available("GH-PEN-01")
	var latencies []time.Duration
	for i := range 20 {
		start := time.Now()
		r := s.order(token, fmt.Sprintf("down-%d", i), approveCard, orders.Item{SKU: "GH-PEN-01", Quantity: 1})
		latencies = append(latencies, time.Since(start))
		if code, _ := r.problem(t); r.status != 503 || code != "unavailable" {
			t.Fatalf("checkout with payments down: %d %s; want 503 unavailable", r.status, r.body)
		}
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	t.Logf("MEASURED checkout with every payments instance down: median %s, max %s (20 checkouts)", latencies[10], latencies[19])
	if got := s.available("GH-PEN-01"); got != pens {
		t.Errorf("pens available %d while payments is down, want %d (nothing left reserved)", got, pens)
	}

	for _, addr := range ports {
		var port int
		fmt.Sscan(addr[strings.LastIndex(addr, ":")+1:], &port)
		testenv.StartServiceOn(t, "payments", port, s.env("payments")...)
	}
	s.consul.WaitServing("payments", 2, 15*time.Second)
	testenv.Eventually(t, 15*time.Second, "checkouts succeed again", func() error {
		r := s.order(token, fmt.Sprintf("back-%d", time.Now().UnixNano()), approveCard, orders.Item{SKU: "GH-PEN-01", Quantity: 1})
		if r.status != 201 {
			return fmt.Errorf("%d %s", r.status, r.body)
		}
		return nil
	})
	s.checkInvariants()
}

func TestOrdersKilledMidCheckoutLosesNothing(t *testing.T) {
	testenv.OnEachBackend(t, testOrdersKilledMidCheckoutLosesNothing)
}

func testOrdersKilledMidCheckoutLosesNothing(t *testing.T, b testenv.Backend) {
	// Recovery is tuned for a test: a checkout untouched for 2s is taken
	// over.
	s := startShopOn(t, b, "SAGA_TIMEOUT=1500ms", "SAGA_STALE_AFTER=2s", "RECOVERY_INTERVAL=500ms")
	tokens := []string{s.signUp("a@example.com"), s.signUp("b@example.com"), s.signUp("c@example.com")}

	// Slow payments down so that sagas are caught between steps.
	for _, p := range s.payments {
		setFaults(t, p, `{"error_rate":0,"latency":"400ms"}`)
	}

	// Checkouts from several clients at once; orders is killed while
	// they are in flight.
	type outcome struct{ status int }
	results := make(chan outcome, 100)
	done := make(chan struct{})
	skus := []string{"GH-MUG-01", "GH-TEE-01", "GH-SOCK-01", "GH-LAMP-01"}
	for c := range 6 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 6 {
				items := []orders.Item{{SKU: skus[(c+i)%len(skus)], Quantity: 1 + i%2}}
				results <- outcome{s.orderQuietly(tokens[c%len(tokens)], fmt.Sprintf("crash-%d-%d", c, i), approveCard, items...)}
			}
		}()
	}
	ordersDB := s.stores["orders"]
	testenv.Eventually(t, 20*time.Second, "some checkouts done and others in flight", func() error {
		counts, err := orderCounts(ordersDB)
		if err != nil || counts[orders.Confirmed] < 3 || counts[orders.Pending] < 3 {
			return fmt.Errorf("orders by status %v (%v)", counts, err)
		}
		return nil
	})
	s.orders.Kill()
	// A saga can still finish between that reading and the kill: what
	// matters is that some were cut off mid-way.
	pending, err := pendingOrders(ordersDB)
	if err != nil || pending == 0 {
		t.Fatalf("no saga was interrupted (%d pending, %v): the test would prove nothing", pending, err)
	}
	t.Logf("killed orders with %d checkouts mid-saga", pending)
	for range 6 {
		<-done
	}
	close(results)
	byStatus := map[int]int{}
	for r := range results {
		byStatus[r.status]++
	}
	t.Logf("what clients saw: %v", byStatus)

	for _, p := range s.payments {
		setFaults(t, p, `{"error_rate":0,"latency":"0s"}`)
	}
	s.restartOrders()
	testenv.Eventually(t, 30*time.Second, "every order terminal", func() error {
		n, err := pendingOrders(ordersDB)
		if err != nil || n != 0 {
			return fmt.Errorf("%d pending (%v)", n, err)
		}
		return nil
	})
	// Late charges are refunded within the settle window.
	testenv.Eventually(t, 30*time.Second, "invariants hold", s.invariants)
	if !strings.Contains(s.orders.Log(), "recovered interrupted checkout") {
		t.Error("the restarted orders did not log any recovery")
	}
}

// orderQuietly places an order and returns the status, or 0 when the
// connection failed (orders died under the gateway: that is the point).
func (s *shop) orderQuietly(token, key, card string, items ...orders.Item) int {
	b, _ := json.Marshal(map[string]any{"items": items, "card_number": card})
	req, _ := http.NewRequest("POST", s.gateway.URL+"/api/orders", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func setFaults(t *testing.T, p *testenv.Service, body string) {
	t.Helper()
	// The fault knobs are on the admin listener only.
	req, _ := http.NewRequest("PUT", p.AdminURL+"/admin/faults", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT /admin/faults %s: %d", body, resp.StatusCode)
	}
}

// orderCounts counts orders by status in the orders database.
func orderCounts(path string) (map[orders.Status]int, error) {
	ctx := context.Background()
	st, err := orders.OpenStore(ctx, path, noop.NewTracerProvider())
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.CountByStatus(ctx)
}

func pendingOrders(path string) (int, error) {
	counts, err := orderCounts(path)
	return counts[orders.Pending], err
}
