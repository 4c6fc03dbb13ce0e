package orders

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/glasshouse-dev/glasshouse/transport"
	"go.opentelemetry.io/otel/trace/noop"
)

// These tests run two orders processes, the service binary started twice
// on one PostgreSQL database, in front of real inventory and payments
// processes found in Consul: the guarantees that the TestTwoStores tests
// prove of two pools in one process, proved of replicas as they are
// deployed.

// processWorld is what two orders replicas need around them: Consul, one
// inventory and one payments process, each on a PostgreSQL database of
// its own (inventory seeds the demo catalogue), the database the orders
// replicas will share, and a key pair standing in for users': orders only
// checks tokens, so users itself need not run.
type processWorld struct {
	consul             *testenv.Consul
	inventory          *testenv.Service
	payments           *testenv.Service
	ordersURL          string
	inventoryStore     *inventory.Store
	paymentsStore      *payments.Store
	store              *Store // the test's own view of the orders database
	publicKey          string
	issuer             *users.Issuer
	inventoryClient    inventory.Service
	paymentsClient     payments.Service
	direct             func(url string) transport.ClientFactory // the test's calls to one instance
	inventoryAvailable int                                      // mug units in the demo catalogue
}

func startProcessWorld(t *testing.T) *processWorld {
	t.Helper()
	tp := noop.NewTracerProvider()
	w := &processWorld{consul: testenv.StartConsul(t), ordersURL: testenv.Postgres.NewDatabase(t)}
	inventoryURL, paymentsURL := testenv.Postgres.NewDatabase(t), testenv.Postgres.NewDatabase(t)
	common := []string{"CONSUL_HTTP_ADDR=" + w.consul.Addr, "OTEL_SDK_DISABLED=true"}
	w.inventory = testenv.StartService(t, "inventory", append(common, "DATABASE_URL="+inventoryURL)...)
	w.payments = testenv.StartService(t, "payments", append(common, "DATABASE_URL="+paymentsURL)...)
	w.consul.WaitPassing(inventory.ServiceName, 1, 15*time.Second)
	w.consul.WaitPassing(payments.ServiceName, 1, 15*time.Second)
	w.inventoryStore = testenv.OpenStoreAt(t, inventoryURL, inventory.OpenStore, tp)
	w.paymentsStore = testenv.OpenStoreAt(t, paymentsURL, payments.OpenStore, tp)
	w.store = testenv.OpenStoreAt(t, w.ordersURL, OpenStore, tp)

	tel := testenv.Telemetry(t, "gateway")
	w.inventoryClient = inventory.NewClient(testenv.Direct(t, w.inventory.URL, tel))
	w.paymentsClient = payments.NewClient(testenv.Direct(t, w.payments.URL, tel))
	// A checkout answers when its saga ends, and callers with one key
	// queue behind each other: generous timeouts, as the race is about
	// the answers.
	w.direct = func(url string) transport.ClientFactory { return testenv.DirectWithin(t, url, tel, 30*time.Second) }

	keyFile := filepath.Join(t.TempDir(), "users-jwt.key")
	key, _, err := users.EnsureKeyPair(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	w.publicKey, w.issuer = users.PublicKeyPath(keyFile), users.NewIssuer(key, time.Hour, nil)
	for _, p := range inventory.Catalogue {
		if p.SKU == mug {
			w.inventoryAvailable = p.Available
		}
	}
	return w
}

// mug is the demo catalogue's product every order here buys.
const mug = "GH-MUG-01"

// startOrders starts two orders replicas at once on the shared database.
func (w *processWorld) startOrders(t *testing.T, env ...string) []*testenv.Service {
	t.Helper()
	replicas := testenv.StartReplicas(t, "orders", 2, append([]string{
		"DATABASE_URL=" + w.ordersURL, "CONSUL_HTTP_ADDR=" + w.consul.Addr, "OTEL_SDK_DISABLED=true",
		"JWT_PUBLIC_KEY_FILE=" + w.publicKey,
	}, env...)...)
	w.consul.WaitPassing(ServiceName, 2, 15*time.Second)
	return replicas
}

// checkStockAndCharges asserts what must hold once no saga runs: the
// mug's stock is conserved with nothing held and confirmed units
// committed, and exactly the confirmed orders have a charge, one each,
// succeeded.
func (w *processWorld) checkStockAndCharges(t *testing.T, confirmed map[string]bool) {
	t.Helper()
	ctx := context.Background()
	ledger, err := w.inventoryStore.StockLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l := ledger[mug]; l.Total() != w.inventoryAvailable || l.Held != 0 || l.Committed != len(confirmed) {
		t.Errorf("%s: %+v; want %d in all, nothing held and %d committed", mug, l, w.inventoryAvailable, len(confirmed))
	}
	charges, err := w.paymentsStore.ListCharges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	perOrder := map[string]int{}
	for _, c := range charges {
		perOrder[c.OrderID]++
		if !confirmed[c.OrderID] || c.Status != payments.Succeeded {
			t.Errorf("charge %+v; want only succeeded charges of confirmed orders", c)
		}
	}
	for id := range confirmed {
		if perOrder[id] != 1 {
			t.Errorf("confirmed order %s has %d charges, want 1", id, perOrder[id])
		}
	}
}

// TestTwoProcessesHonourOneIdempotencyKeyOnPostgreSQL is 20 checkouts
// with one user and one Idempotency-Key at once, alternating between two
// orders processes: one order is placed, reserved and charged once, and
// every caller is answered with it, or told it is still in progress.
func TestTwoProcessesHonourOneIdempotencyKeyOnPostgreSQL(t *testing.T) {
	w := startProcessWorld(t)
	replicas := w.startOrders(t)
	token, _, err := w.issuer.Issue("user-ada")
	if err != nil {
		t.Fatal(err)
	}
	ctx := transport.WithBearerToken(context.Background(), token)
	var clients [2]Service
	for i, r := range replicas {
		clients[i] = NewClient(w.direct(r.URL))
	}
	items := []Item{{SKU: mug, Quantity: 1}}

	const callers = 20
	var (
		mu         sync.Mutex
		answers    = map[string]int{} // order ID → callers answered with it
		inProgress int
		perReplica [2]int // answers with the order, by replica
		unexpected []error
	)
	began := time.Now()
	testenv.AtOnce(callers, func(i int) {
		replica := i % 2
		o, err := clients[replica].PlaceOrder(ctx, "", "one-key", items, payments.TestCardApproved)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			answers[o.ID]++
			perReplica[replica]++
		case errs.CodeOf(err) == CodeOrderInProgress:
			inProgress++
		default:
			unexpected = append(unexpected, err)
		}
	})
	took := time.Since(began)
	counts, err := w.store.CountByStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d checkouts with one key over 2 orders processes (%s): answers by order ID %v (%d from replica 0, %d from replica 1), %d told in progress, %d other errors; orders by status %v",
		callers, took.Round(time.Millisecond), answers, perReplica[0], perReplica[1], inProgress, len(unexpected), counts)
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	// The winner's checkout ran to its end before it answered, so the
	// one order is CONFIRMED now, whoever asked when.
	if len(answers) != 1 || counts[Confirmed] != 1 || len(counts) != 1 {
		t.Fatalf("answers %v, orders by status %v; want one CONFIRMED order, the answer to every caller not told to wait", answers, counts)
	}
	var id string
	for id = range answers {
	}
	// Asked again, either replica answers with that order.
	for i, c := range clients {
		if o, err := c.PlaceOrder(ctx, "", "one-key", items, payments.TestCardApproved); err != nil || o.ID != id || o.Status != Confirmed {
			t.Errorf("replay on replica %d = %+v, %v; want order %s CONFIRMED", i, o, err, id)
		}
	}
	w.checkStockAndCharges(t, map[string]bool{id: true})
}

// TestTwoProcessesNeverRecoverOneOrderTwiceOnPostgreSQL is the aftermath
// of a crash: 30 checkouts left PENDING long ago in the shared database,
// a third stopped before reserving, a third reserved but not charged, a
// third reserved and charged. Two orders processes start at once, and
// each one's first recovery pass goes after all of them. The claims must
// hand every order to one replica only, as both replicas' logs and
// metrics show, and together they must finish all: the charged ones
// CONFIRMED, the rest FAILED with their stock released.
func TestTwoProcessesNeverRecoverOneOrderTwiceOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	w := startProcessWorld(t)
	const stalled = 30
	long := time.Now().Add(-time.Hour) // well past any stale time
	wantStatus := map[string]Status{}
	paid := map[string]bool{}
	for i := range stalled {
		id := fmt.Sprintf("ord_stalled%02d", i)
		lines := []Line{{SKU: mug, Quantity: 1, UnitPriceCents: 1200}}
		if _, _, err := w.store.create(ctx, record{
			Order: Order{ID: id, UserID: "user-ada", Status: Pending, TotalCents: 1200, Currency: "EUR",
				Items: lines, CreatedAt: long},
			IdempotencyKey: fmt.Sprint("key-", i), RequestHash: "h", Step: StepCreated, UpdatedAt: long,
		}); err != nil {
			t.Fatal(err)
		}
		wantStatus[id] = Failed
		if i%3 == 0 {
			continue // crashed before reserving
		}
		if _, err := w.inventoryClient.Reserve(ctx, id, []inventory.Item{{SKU: mug, Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := w.store.advance(ctx, id, StepReserved, "", long); err != nil {
			t.Fatal(err)
		}
		if i%3 == 1 {
			continue // crashed before charging
		}
		// Crashed with the charge made but not yet recorded.
		if _, err := w.paymentsClient.Charge(ctx, payments.ChargeRequest{OrderID: id, AmountCents: 1200, Currency: "EUR", CardNumber: payments.TestCardApproved}); err != nil {
			t.Fatal(err)
		}
		wantStatus[id], paid[id] = Confirmed, true
	}

	began := time.Now()
	replicas := w.startOrders(t)
	testenv.Eventually(t, 30*time.Second, "every stalled order finished", func() error {
		counts, err := w.store.CountByStatus(ctx)
		if err != nil {
			return err
		}
		if counts[Pending] != 0 {
			return fmt.Errorf("orders by status %v", counts)
		}
		return nil
	})
	took := time.Since(began)

	// Every resumed saga is one "recovered interrupted checkout" line in
	// the log of the replica that claimed it. A replica writes the line
	// just after the order's final status, so the store can show every
	// order finished before the last line is in a log: wait for the lines.
	var resumedBy map[string][]int // order ID → replicas that resumed it
	var perReplica [2]int
	testenv.Eventually(t, 10*time.Second, "every resumed order logged", func() error {
		resumedBy, perReplica = map[string][]int{}, [2]int{}
		for i, r := range replicas {
			for _, rec := range r.LogRecords("recovered interrupted checkout") {
				id, _ := rec["order"].(string)
				resumedBy[id] = append(resumedBy[id], i)
				perReplica[i]++
			}
		}
		if n := perReplica[0] + perReplica[1]; n < stalled {
			return fmt.Errorf("%d lines (replica 0: %d, replica 1: %d) for %d stalled orders", n, perReplica[0], perReplica[1], stalled)
		}
		return nil
	})
	var twice []string
	for id, by := range resumedBy {
		if len(by) > 1 {
			twice = append(twice, fmt.Sprintf("%s by %v", id, by))
		}
	}
	var forward, compensated, deferred [2]float64
	for i, r := range replicas {
		forward[i] = r.MetricValue(t, `glasshouse_orders_recovery_actions_total{action="forward"}`)
		compensated[i] = r.MetricValue(t, `glasshouse_orders_recovery_actions_total{action="compensate"}`)
		deferred[i] = r.MetricValue(t, `glasshouse_orders_recovery_actions_total{action="deferred"}`)
	}
	t.Logf("%d stalled orders, 2 orders processes started at once, all finished %s after the start: replica 0 resumed %d (forward %v, compensated %v, deferred %v), replica 1 resumed %d (forward %v, compensated %v, deferred %v); %d orders resumed, %d of them more than once",
		stalled, took.Round(time.Millisecond), perReplica[0], forward[0], compensated[0], deferred[0],
		perReplica[1], forward[1], compensated[1], deferred[1], len(resumedBy), len(twice))
	if len(twice) > 0 {
		t.Errorf("orders resumed more than once: %v", twice)
	}
	if len(resumedBy) != stalled || perReplica[0]+perReplica[1] != stalled {
		t.Errorf("%d orders resumed in %d passes; want each of %d once", len(resumedBy), perReplica[0]+perReplica[1], stalled)
	}
	if f, c, d := forward[0]+forward[1], compensated[0]+compensated[1], deferred[0]+deferred[1]; f != float64(len(paid)) || c != float64(stalled-len(paid)) || d != 0 {
		t.Errorf("replicas counted %v forward, %v compensated, %v deferred; want %d, %d and 0", f, c, d, len(paid), stalled-len(paid))
	}
	for id, want := range wantStatus {
		if o, err := w.store.Order(ctx, id); err != nil || o.Status != want {
			t.Errorf("order %s = %s (%v), want %s", id, o.Status, err, want)
		}
	}
	w.checkStockAndCharges(t, paid)
}
