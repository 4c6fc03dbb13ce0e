package orders

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/events"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"go.opentelemetry.io/otel/trace/noop"
)

// These tests run the saga against the real inventory and payments
// services (their domain logic and SQLite stores, in process), so the
// invariants are checked on real ledgers. Only unavailability is
// simulated, by a decorator on the Service interface.

const (
	approve = "4242424242424242"
	decline = "4000000000000002"
)

var catalogue = []inventory.Product{
	{SKU: "MUG", Name: "Mug", PriceCents: 1200, Currency: "EUR", Available: 10},
	{SKU: "TEE", Name: "Tee", PriceCents: 2500, Currency: "EUR", Available: 3},
}

type world struct {
	saga      Service
	recovery  *Recovery
	store     *Store
	invStore  *inventory.Store
	payStore  *payments.Store
	inventory *outage[inventory.Service]
	payments  *outage[payments.Service]
	clock     *testenv.Clock

	crashInventoryOnCommit atomic.Bool
}

// outage wraps a service; while down, every call fails as unavailable
// without reaching it, like an open breaker.
type outage[S any] struct {
	svc  S
	down atomic.Bool
}

var errDown = errs.E(errs.Unavailable, "unavailable", "simulated outage")

func (o *outage[S]) call() error {
	if o.down.Load() {
		return errDown
	}
	return nil
}

type flakyInventory struct {
	*outage[inventory.Service]
	// crashOnCommit takes inventory down at the first Commit.
	crashOnCommit *atomic.Bool
}

func (f flakyInventory) GetProduct(ctx context.Context, sku string) (inventory.Product, error) {
	if err := f.call(); err != nil {
		return inventory.Product{}, err
	}
	return f.svc.GetProduct(ctx, sku)
}
func (f flakyInventory) Reserve(ctx context.Context, id string, items []inventory.Item) (inventory.Reservation, error) {
	if err := f.call(); err != nil {
		return inventory.Reservation{}, err
	}
	return f.svc.Reserve(ctx, id, items)
}
func (f flakyInventory) Commit(ctx context.Context, id string) (inventory.Reservation, error) {
	if f.crashOnCommit.Load() {
		f.down.Store(true)
	}
	if err := f.call(); err != nil {
		return inventory.Reservation{}, err
	}
	return f.svc.Commit(ctx, id)
}
func (f flakyInventory) Release(ctx context.Context, id string) (inventory.Reservation, error) {
	if err := f.call(); err != nil {
		return inventory.Reservation{}, err
	}
	return f.svc.Release(ctx, id)
}

type flakyPayments struct{ *outage[payments.Service] }

func (f flakyPayments) Charge(ctx context.Context, req payments.ChargeRequest) (payments.Charge, error) {
	if err := f.call(); err != nil {
		return payments.Charge{}, err
	}
	return f.svc.Charge(ctx, req)
}
func (f flakyPayments) Refund(ctx context.Context, id string) (payments.Charge, error) {
	if err := f.call(); err != nil {
		return payments.Charge{}, err
	}
	return f.svc.Refund(ctx, id)
}
func (f flakyPayments) Void(ctx context.Context, orderID string) (payments.Charge, error) {
	if err := f.call(); err != nil {
		return payments.Charge{}, err
	}
	return f.svc.Void(ctx, orderID)
}
func (f flakyPayments) FindCharge(ctx context.Context, orderID string) (payments.Charge, error) {
	if err := f.call(); err != nil {
		return payments.Charge{}, err
	}
	return f.svc.FindCharge(ctx, orderID)
}

func TestMain(m *testing.M) { testenv.Main(m) }

// newWorld is orders over real inventory and payments. Orders' store is on
// backend b; inventory's and payments' stay in SQLite files, as they
// stand for other services here.
func newWorld(t *testing.T, b testenv.Backend) *world {
	t.Helper()
	ctx, dir, tp := context.Background(), t.TempDir(), noop.NewTracerProvider()
	w := &world{clock: testenv.NewClock()} // 2026-01-01 12:00 UTC
	var err error
	if w.invStore, err = inventory.OpenStore(ctx, filepath.Join(dir, "inventory.db"), tp); err != nil {
		t.Fatal(err)
	}
	if _, err := w.invStore.Seed(ctx, catalogue); err != nil {
		t.Fatal(err)
	}
	if w.payStore, err = payments.OpenStore(ctx, filepath.Join(dir, "payments.db"), tp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.invStore.Close(); w.payStore.Close() })
	w.store = testenv.OpenStoreOn(t, b, OpenStore, tp)
	w.inventory = &outage[inventory.Service]{svc: inventory.NewService(w.invStore, inventory.Options{Now: w.clock.Now})}
	w.payments = &outage[payments.Service]{svc: payments.NewService(w.payStore, payments.Options{Now: w.clock.Now})}
	inv, pay := flakyInventory{w.inventory, &w.crashInventoryOnCommit}, flakyPayments{w.payments}
	opts := Options{Now: w.clock.Now, StaleAfter: 30 * time.Second}
	w.saga, w.recovery = NewService(w.store, inv, pay, opts), NewRecovery(w.store, inv, pay, opts)
	return w
}

// listOrders is the first page of the user's orders, large enough for
// every test that is not about paging.
func (w *world) listOrders(ctx context.Context, user string) ([]Order, error) {
	page, err := w.saga.ListOrders(ctx, user, Page{Limit: MaxPageLimit})
	return page.Orders, err
}

func (w *world) place(t *testing.T, user, key string, card string, items ...Item) (Order, error) {
	t.Helper()
	return w.saga.PlaceOrder(context.Background(), user, key, items, card)
}

// checkInvariants asserts what must hold once no saga is running: stock is
// conserved with nothing left held, and every successful charge belongs
// to a CONFIRMED order, once.
func (w *world) checkInvariants(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ledger, err := w.invStore.StockLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range catalogue {
		l := ledger[p.SKU]
		if l.Total() != p.Available || l.Held != 0 {
			t.Errorf("%s: %+v; want total %d and nothing held", p.SKU, l, p.Available)
		}
	}
	charges, err := w.payStore.ListCharges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	perOrder := map[string]int{}
	for _, c := range charges {
		perOrder[c.OrderID]++
		if c.Status != payments.Succeeded {
			continue
		}
		o, err := w.store.get(ctx, c.OrderID)
		if err != nil || o.Status != Confirmed {
			t.Errorf("charge %s succeeded for order %s, which is %s (%v); want CONFIRMED or refunded", c.ID, c.OrderID, o.Status, err)
		}
	}
	for order, n := range perOrder {
		if n > 1 {
			t.Errorf("order %s has %d charges", order, n)
		}
	}
	w.checkOutbox(t)
}

// checkOutbox asserts that every finished order wrote exactly one event,
// of its status, and that no other event exists.
func (w *world) checkOutbox(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	rows, err := events.Rows(ctx, w.store.DB)
	if err != nil {
		t.Fatal(err)
	}
	byOrder := map[string][]OrderEvent{}
	for _, r := range rows {
		var ev OrderEvent
		if err := json.Unmarshal(r.Payload, &ev); err != nil {
			t.Fatalf("outbox row %s: %v", r.ID, err)
		}
		if ev.EventID != r.ID || r.Subject != "orders."+strings.TrimPrefix(ev.Type, "order.") || ev.SchemaVersion != EventSchemaVersion {
			t.Errorf("outbox row %s on %s holds %+v", r.ID, r.Subject, ev)
		}
		byOrder[ev.OrderID] = append(byOrder[ev.OrderID], ev)
	}
	counts, err := w.store.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if finished := counts[Confirmed] + counts[Failed] + counts[Rejected]; len(rows) != finished {
		t.Errorf("%d events for %d finished orders (%v); want one each", len(rows), finished, counts)
	}
	for id, evs := range byOrder {
		o, err := w.store.get(ctx, id)
		switch {
		case err != nil:
			t.Errorf("event for order %s, which cannot be read: %v", id, err)
		case len(evs) != 1:
			t.Errorf("order %s has %d events", id, len(evs))
		case evs[0].Status != o.Status || evs[0].UserID != o.UserID || evs[0].TotalCents != o.TotalCents || len(evs[0].Items) != len(o.Items):
			t.Errorf("order %s is %+v; its event says %+v", id, o.Order, evs[0])
		case o.Status != Confirmed && evs[0].FailureCode != o.FailureCode:
			t.Errorf("order %s failed with %q; its event says %q", id, o.FailureCode, evs[0].FailureCode)
		}
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := errs.CodeOf(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

func TestCheckoutConfirmsAndReplays(t *testing.T) {
	testenv.OnEachBackend(t, testCheckoutConfirmsAndReplays)
}

func testCheckoutConfirmsAndReplays(t *testing.T, b testenv.Backend) {
	w := newWorld(t, b)
	o, err := w.place(t, "u1", "k1", approve, Item{"MUG", 2}, Item{"TEE", 1}, Item{"MUG", 1})
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != Confirmed || o.TotalCents != 3*1200+2500 || o.Currency != "EUR" || len(o.Items) != 2 {
		t.Fatalf("order = %+v; want CONFIRMED, 6100 EUR, 2 lines", o)
	}
	again, err := w.place(t, "u1", "k1", approve, Item{"MUG", 3}, Item{"TEE", 1})
	if err != nil || again.ID != o.ID {
		t.Fatalf("replay = %+v, %v; want the same order %s", again, err, o.ID)
	}
	_, err = w.place(t, "u1", "k1", approve, Item{"MUG", 1})
	wantCode(t, err, CodeIdempotencyMismatch)

	// The same key from another user is another order.
	if other, err := w.place(t, "u2", "k1", approve, Item{"MUG", 1}); err != nil || other.ID == o.ID {
		t.Fatalf("other user's order = %+v, %v", other, err)
	}
	ledger, _ := w.invStore.StockLedger(context.Background())
	if ledger["MUG"].Committed != 4 || ledger["TEE"].Committed != 1 {
		t.Errorf("committed %+v; want MUG 4 and TEE 1", ledger)
	}
	w.checkInvariants(t)
}

func TestDeclinedCardFailsAndGivesStockBack(t *testing.T) {
	testenv.OnEachBackend(t, testDeclinedCardFailsAndGivesStockBack)
}

func testDeclinedCardFailsAndGivesStockBack(t *testing.T, b testenv.Backend) {
	w := newWorld(t, b)
	_, err := w.place(t, "u1", "k1", decline, Item{"TEE", 3})
	wantCode(t, err, payments.CodeCardDeclined)
	if errs.KindOf(err) != errs.Declined {
		t.Errorf("kind %v, want Declined (402)", errs.KindOf(err))
	}
	list, _ := w.listOrders(context.Background(), "u1")
	if len(list) != 1 || list[0].Status != Failed || list[0].FailureCode != payments.CodeCardDeclined {
		t.Fatalf("orders = %+v; want one FAILED card_declined", list)
	}
	_, err = w.place(t, "u1", "k1", decline, Item{"TEE", 3})
	wantCode(t, err, payments.CodeCardDeclined) // replayed, not re-run
	w.checkInvariants(t)
}

func TestOutOfStockIsRejectedAndChargesNothing(t *testing.T) {
	testenv.OnEachBackend(t, testOutOfStockIsRejectedAndChargesNothing)
}

func testOutOfStockIsRejectedAndChargesNothing(t *testing.T, b testenv.Backend) {
	w := newWorld(t, b)
	_, err := w.place(t, "u1", "k1", approve, Item{"MUG", 1}, Item{"TEE", 4})
	wantCode(t, err, inventory.CodeOutOfStock)
	list, _ := w.listOrders(context.Background(), "u1")
	if len(list) != 1 || list[0].Status != Rejected {
		t.Fatalf("orders = %+v; want one REJECTED", list)
	}
	if _, err := w.payments.svc.FindCharge(context.Background(), list[0].ID); errs.CodeOf(err) != payments.CodeChargeNotFound {
		t.Errorf("a rejected order has a charge (%v)", err)
	}
	w.checkInvariants(t)
}

func TestBadRequestsCreateNoOrder(t *testing.T) {
	testenv.OnEachBackend(t, testBadRequestsCreateNoOrder)
}

func testBadRequestsCreateNoOrder(t *testing.T, b testenv.Backend) {
	w := newWorld(t, b)
	for _, tt := range []struct {
		key, card string
		items     []Item
		code      string
	}{
		{"", approve, []Item{{"MUG", 1}}, CodeMissingIdempotencyKey},
		{"k", approve, nil, CodeInvalidItems},
		{"k", approve, []Item{{"MUG", 0}}, CodeInvalidItems},
		{"k", "4242-4242", []Item{{"MUG", 1}}, CodeInvalidCard},
		{"k", approve, []Item{{"NOPE", 1}}, inventory.CodeUnknownProduct},
	} {
		_, err := w.saga.PlaceOrder(context.Background(), "u1", tt.key, tt.items, tt.card)
		wantCode(t, err, tt.code)
	}
	if counts, _ := w.store.CountByStatus(context.Background()); len(counts) != 0 {
		t.Errorf("bad requests created orders: %v", counts)
	}
}

func TestPaymentsDownFailsFastAndCompensates(t *testing.T) {
	testenv.OnEachBackend(t, testPaymentsDownFailsFastAndCompensates)
}

func testPaymentsDownFailsFastAndCompensates(t *testing.T, b testenv.Backend) {
	w := newWorld(t, b)
	ctx := context.Background()
	w.payments.down.Store(true)
	_, err := w.place(t, "u1", "k1", approve, Item{"TEE", 2})
	wantCode(t, err, "unavailable")
	list, _ := w.listOrders(ctx, "u1")
	if len(list) != 1 || list[0].Status != Failed || list[0].FailureCode != "unavailable" {
		t.Fatalf("orders = %+v; want one FAILED unavailable", list)
	}
	if ledger, _ := w.invStore.StockLedger(ctx); ledger["TEE"].Held != 0 {
		t.Errorf("stock still held after the failure: %+v", ledger["TEE"])
	}
	// The order could not be voided at payments; recovery keeps trying.
	if rep, _ := w.recovery.Recover(ctx); rep.Settled != 0 {
		t.Errorf("settled while payments is still down: %+v", rep)
	}

	w.payments.down.Store(false)
	if rep, err := w.recovery.Recover(ctx); err != nil || rep.Settled != 1 {
		t.Errorf("recovery = %+v, %v; want the failed order voided at payments", rep, err)
	}
	// Voided: a charge for it that was still in flight is refused.
	_, err = w.payments.svc.Charge(ctx, payments.ChargeRequest{OrderID: list[0].ID, AmountCents: 5000, Currency: "EUR", CardNumber: approve})
	wantCode(t, err, payments.CodeChargeVoided)
	if o, err := w.place(t, "u1", "k2", approve, Item{"TEE", 1}); err != nil || o.Status != Confirmed {
		t.Fatalf("after payments returned: %+v, %v", o, err)
	}
	w.checkInvariants(t)
}

func TestInventoryLostAtCommitIsCompensatedByRecovery(t *testing.T) {
	testenv.OnEachBackend(t, testInventoryLostAtCommitIsCompensatedByRecovery)
}

func testInventoryLostAtCommitIsCompensatedByRecovery(t *testing.T, b testenv.Backend) {
	w := newWorld(t, b)
	ctx := context.Background()
	// Inventory goes away just as the saga commits: the customer has paid,
	// the stock is held, and neither can be given back right now.
	w.crashInventoryOnCommit.Store(true)
	_, err := w.place(t, "u1", "k1", approve, Item{"MUG", 2})
	wantCode(t, err, "unavailable")
	list, _ := w.listOrders(ctx, "u1")
	if len(list) != 1 || list[0].Status != Pending {
		t.Fatalf("orders = %+v; want one PENDING, its compensation deferred", list)
	}

	w.inventory.down.Store(false)
	w.clock.Advance(31 * time.Second)
	rep, err := w.recovery.Recover(ctx)
	if err != nil || rep.Compensated != 1 {
		t.Fatalf("recovery = %+v, %v; want one compensated", rep, err)
	}
	o, _ := w.saga.GetOrder(ctx, "u1", list[0].ID)
	if o.Status != Failed {
		t.Errorf("order %s, want FAILED", o.Status)
	}
	charge, _ := w.payments.svc.FindCharge(ctx, o.ID)
	if charge.Status != payments.Refunded {
		t.Errorf("charge %s, want refunded", charge.Status)
	}
	w.checkInvariants(t)
}

func TestRecoveryDrivesEveryInterruptedStepToAnEnd(t *testing.T) {
	testenv.OnEachBackend(t, testRecoveryDrivesEveryInterruptedStepToAnEnd)
}

func testRecoveryDrivesEveryInterruptedStepToAnEnd(t *testing.T, b testenv.Backend) {
	w := newWorld(t, b)
	ctx := context.Background()
	// Interrupted sagas, built as a crash would leave them: the store says
	// where the saga was, the other services show what really happened.
	newOrder := func(key string) record {
		r, _, err := w.store.create(ctx, record{
			Order:          Order{ID: "ord_" + key, UserID: "u1", Status: Pending, TotalCents: 1200, Currency: "EUR", Items: []Line{{"MUG", 1, 1200}}, CreatedAt: w.clock.Now()},
			IdempotencyKey: key, RequestHash: "h", Step: StepCreated, UpdatedAt: w.clock.Now(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	reserve := func(r record) {
		if _, err := w.inventory.svc.Reserve(ctx, r.ID, []inventory.Item{{SKU: "MUG", Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	charge := func(r record) payments.Charge {
		c, err := w.payments.svc.Charge(ctx, payments.ChargeRequest{OrderID: r.ID, AmountCents: 1200, Currency: "EUR", CardNumber: approve})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	createdOnly := newOrder("created-only")         // died before reserving
	createdReserved := newOrder("created-reserved") // reserved, died before recording it
	reservedOnly := newOrder("reserved-only")       // recorded reserved, died before charging
	reserve(reservedOnly)
	w.store.advance(ctx, reservedOnly.ID, StepReserved, "", w.clock.Now())
	reserve(createdReserved)
	reservedCharged := newOrder("reserved-charged") // charged, died before recording it
	reserve(reservedCharged)
	w.store.advance(ctx, reservedCharged.ID, StepReserved, "", w.clock.Now())
	charge(reservedCharged)
	charged := newOrder("charged") // recorded charged, died before committing
	reserve(charged)
	c := charge(charged)
	w.store.advance(ctx, charged.ID, StepCharged, c.ID, w.clock.Now())

	// Not stale yet: a live saga may still own them.
	if rep, _ := w.recovery.Recover(ctx); rep != (RecoveryReport{}) {
		t.Fatalf("recovery touched fresh orders: %+v", rep)
	}
	w.clock.Advance(31 * time.Second)
	rep, err := w.recovery.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Forward != 2 || rep.Compensated != 3 || rep.Deferred != 0 {
		t.Errorf("recovery = %+v; want 2 forward (paid), 3 compensated", rep)
	}
	want := map[string]Status{
		createdOnly.ID: Failed, createdReserved.ID: Failed, reservedOnly.ID: Failed,
		reservedCharged.ID: Confirmed, charged.ID: Confirmed,
	}
	for id, status := range want {
		o, err := w.store.get(ctx, id)
		if err != nil || o.Status != status {
			t.Errorf("%s: %s (%v), want %s", id, o.Status, err, status)
		}
	}

	// A charge request that was in flight when orders died and arrives
	// now is refused: compensation voided the order at payments.
	_, err = w.payments.svc.Charge(ctx, payments.ChargeRequest{OrderID: reservedOnly.ID, AmountCents: 1200, Currency: "EUR", CardNumber: approve})
	wantCode(t, err, payments.CodeChargeVoided)
	w.checkInvariants(t)
}

func TestConcurrentRequestsWithOneKeyPlaceOneOrder(t *testing.T) {
	testenv.OnEachBackend(t, testConcurrentRequestsWithOneKeyPlaceOneOrder)
}

func testConcurrentRequestsWithOneKeyPlaceOneOrder(t *testing.T, b testenv.Backend) {
	w := newWorld(t, b)
	var wg sync.WaitGroup
	results := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := w.place(t, "u1", "same", approve, Item{"MUG", 1})
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil && errs.CodeOf(err) != CodeOrderInProgress {
			t.Errorf("unexpected error: %v", err)
		}
	}
	counts, _ := w.store.CountByStatus(context.Background())
	if counts[Confirmed] != 1 || len(counts) != 1 {
		t.Errorf("orders by status %v; want exactly one CONFIRMED", counts)
	}
	w.checkInvariants(t)
}

func TestOrdersAreVisibleOnlyToTheirOwner(t *testing.T) {
	testenv.OnEachBackend(t, testOrdersAreVisibleOnlyToTheirOwner)
}

func testOrdersAreVisibleOnlyToTheirOwner(t *testing.T, b testenv.Backend) {
	w := newWorld(t, b)
	first, _ := w.place(t, "u1", "k1", approve, Item{"MUG", 1})
	w.clock.Advance(time.Second)
	second, _ := w.place(t, "u1", "k2", approve, Item{"MUG", 1})
	if _, err := w.saga.GetOrder(context.Background(), "u2", first.ID); errs.CodeOf(err) != CodeOrderNotFound {
		t.Errorf("another user's order: %v, want order_not_found", err)
	}
	list, err := w.listOrders(context.Background(), "u1")
	if err != nil || len(list) != 2 || list[0].ID != second.ID {
		t.Errorf("ListOrders = %v, %v; want 2, newest first", list, err)
	}
	if list, _ := w.listOrders(context.Background(), "u2"); len(list) != 0 {
		t.Errorf("u2 sees %d orders", len(list))
	}
}
