package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// testCatalogue is small and scarce so concurrency tests run out of stock.
var testCatalogue = []inventory.Product{
	{SKU: "A", Name: "Apple", Description: "a", PriceCents: 100, Currency: "EUR", Available: 10},
	{SKU: "B", Name: "Banana", Description: "b", PriceCents: 250, Currency: "EUR", Available: 5},
	{SKU: "C", Name: "Cherry", Description: "c", PriceCents: 50, Currency: "EUR", Available: 0},
}

func TestMain(m *testing.M) { testenv.Main(m) }

// openStore opens a seeded store on backend b.
func openStore(t testing.TB, b testenv.Backend) *inventory.Store {
	t.Helper()
	return openTracedStore(t, b, noop.NewTracerProvider())
}

func openTracedStore(t testing.TB, b testenv.Backend, tp trace.TracerProvider) *inventory.Store {
	t.Helper()
	store := testenv.OpenStoreOn(t, b, inventory.OpenStore, tp)
	if _, err := store.Seed(context.Background(), testCatalogue); err != nil {
		t.Fatal(err)
	}
	return store
}

func newService(t testing.TB, b testenv.Backend) (inventory.Service, *inventory.Store, *testenv.Clock) {
	store := openStore(t, b)
	clk := testenv.NewClock()
	return inventory.NewService(store, inventory.Options{ReservationTTL: time.Minute, Now: clk.Now}), store, clk
}

func available(t *testing.T, svc inventory.Service, sku string) int {
	t.Helper()
	p, err := svc.GetProduct(context.Background(), sku)
	if err != nil {
		t.Fatal(err)
	}
	return p.Available
}

func assertConserved(t *testing.T, store *inventory.Store) {
	t.Helper()
	ledger, err := store.StockLedger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range testCatalogue {
		if got := ledger[p.SKU].Total(); got != p.Available {
			t.Errorf("%s: available+held+committed = %d (%+v), want %d", p.SKU, got, ledger[p.SKU], p.Available)
		}
	}
}

func TestReserveIsAllOrNothing(t *testing.T) { testenv.OnEachBackend(t, testReserveIsAllOrNothing) }

func testReserveIsAllOrNothing(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()

	_, err := svc.Reserve(ctx, "o1", []inventory.Item{{SKU: "A", Quantity: 2}, {SKU: "B", Quantity: 6}})
	testenv.WantCode(t, err, inventory.CodeOutOfStock)
	if got := available(t, svc, "A"); got != 10 {
		t.Errorf("A available = %d after a failed reservation, want 10 (nothing taken)", got)
	}

	_, err = svc.Reserve(ctx, "o2", []inventory.Item{{SKU: "A", Quantity: 1}, {SKU: "NOPE", Quantity: 1}})
	testenv.WantCode(t, err, inventory.CodeUnknownProduct)
	if errs.KindOf(err) != errs.NotFound {
		t.Errorf("kind = %v, want NotFound", errs.KindOf(err))
	}

	r, err := svc.Reserve(ctx, "o3", []inventory.Item{{SKU: "B", Quantity: 2}, {SKU: "A", Quantity: 3}, {SKU: "A", Quantity: 1}})
	if err != nil {
		t.Fatal(err)
	}
	want := []inventory.Item{{SKU: "A", Quantity: 4}, {SKU: "B", Quantity: 2}}
	if fmt.Sprint(r.Items) != fmt.Sprint(want) || r.Status != inventory.Held {
		t.Errorf("reservation = %+v, want held %v (merged, sorted)", r, want)
	}
	if a, b := available(t, svc, "A"), available(t, svc, "B"); a != 6 || b != 3 {
		t.Errorf("available A=%d B=%d, want 6 and 3", a, b)
	}
	assertConserved(t, store)
}

func TestReserveUnderConcurrentCallers(t *testing.T) {
	testenv.OnEachBackend(t, testReserveUnderConcurrentCallers)
}

func testReserveUnderConcurrentCallers(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()

	// 40 orders each want 1 A and 1 B: B (5 units) runs out first, so
	// exactly 5 succeed and the 35 others must take nothing at all.
	const callers = 40
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		reserved, refused int
		unexpected        []error
	)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := svc.Reserve(ctx, fmt.Sprintf("order-%d", i), []inventory.Item{{SKU: "A", Quantity: 1}, {SKU: "B", Quantity: 1}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				reserved++
			case errs.CodeOf(err) == inventory.CodeOutOfStock:
				refused++
			default:
				unexpected = append(unexpected, err)
			}
		}()
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if reserved != 5 || refused != callers-5 {
		t.Errorf("reserved %d, refused %d; want 5 and %d", reserved, refused, callers-5)
	}
	if a, b := available(t, svc, "A"), available(t, svc, "B"); a != 5 || b != 0 {
		t.Errorf("available A=%d B=%d, want 5 and 0", a, b)
	}
	assertConserved(t, store)
}

func TestReserveIsIdempotentPerOrder(t *testing.T) {
	testenv.OnEachBackend(t, testReserveIsIdempotentPerOrder)
}

func testReserveIsIdempotentPerOrder(t *testing.T, b testenv.Backend) {
	svc, _, _ := newService(t, b)
	ctx := context.Background()
	items := []inventory.Item{{SKU: "A", Quantity: 3}}

	first, err := svc.Reserve(ctx, "o1", items)
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.Reserve(ctx, "o1", items)
	if err != nil {
		t.Fatalf("repeated reserve: %v", err)
	}
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Errorf("repeat returned %+v, want the first reservation %+v", again, first)
	}
	if got := available(t, svc, "A"); got != 7 {
		t.Errorf("A available = %d after reserving twice, want 7 (taken once)", got)
	}

	_, err = svc.Reserve(ctx, "o1", []inventory.Item{{SKU: "A", Quantity: 4}})
	testenv.WantCode(t, err, inventory.CodeReservationMismatch)
}

func TestCommitAndReleaseLifecycle(t *testing.T) {
	testenv.OnEachBackend(t, testCommitAndReleaseLifecycle)
}

func testCommitAndReleaseLifecycle(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()

	if _, err := svc.Reserve(ctx, "sold", []inventory.Item{{SKU: "A", Quantity: 2}}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // committing twice is a no-op
		r, err := svc.Commit(ctx, "sold")
		if err != nil || r.Status != inventory.Committed {
			t.Fatalf("commit = %+v, %v; want committed", r, err)
		}
	}
	_, err := svc.Release(ctx, "sold")
	testenv.WantCode(t, err, inventory.CodeReservationCommitted)

	if _, err := svc.Reserve(ctx, "returned", []inventory.Item{{SKU: "B", Quantity: 5}}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // releasing twice is a no-op, and returns stock once
		r, err := svc.Release(ctx, "returned")
		if err != nil || r.Status != inventory.Released {
			t.Fatalf("release = %+v, %v; want released", r, err)
		}
	}
	if got := available(t, svc, "B"); got != 5 {
		t.Errorf("B available = %d after release, want 5", got)
	}
	_, err = svc.Commit(ctx, "returned")
	testenv.WantCode(t, err, inventory.CodeReservationReleased)

	_, err = svc.Commit(ctx, "never-reserved")
	testenv.WantCode(t, err, inventory.CodeReservationNotFound)
	assertConserved(t, store)
}

func TestReleaseBeforeReserveFencesALateReserve(t *testing.T) {
	testenv.OnEachBackend(t, testReleaseBeforeReserveFencesALateReserve)
}

func testReleaseBeforeReserveFencesALateReserve(t *testing.T, b testenv.Backend) {
	svc, _, _ := newService(t, b)
	ctx := context.Background()

	// A saga compensating a reservation whose request may still be in
	// flight releases first; the late reservation must then fail rather
	// than hold stock no one will ever release.
	r, err := svc.Release(ctx, "o1")
	if err != nil || r.Status != inventory.Released || len(r.Items) != 0 {
		t.Fatalf("release of unknown order = %+v, %v; want an empty released reservation", r, err)
	}
	_, err = svc.Reserve(ctx, "o1", []inventory.Item{{SKU: "A", Quantity: 1}})
	testenv.WantCode(t, err, inventory.CodeReservationReleased)
	if got := available(t, svc, "A"); got != 10 {
		t.Errorf("A available = %d, want 10", got)
	}
}

func TestReservationsExpire(t *testing.T) { testenv.OnEachBackend(t, testReservationsExpire) }

func testReservationsExpire(t *testing.T, b testenv.Backend) {
	svc, store, clk := newService(t, b)
	ctx := context.Background()

	if _, err := svc.Reserve(ctx, "slow", []inventory.Item{{SKU: "B", Quantity: 5}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Second)
	if n, err := store.ExpireReservations(ctx, clk.Now()); err != nil || n != 0 {
		t.Fatalf("expired %d (%v) before the TTL, want 0", n, err)
	}
	clk.Advance(time.Second)

	// The next write sees the reservation is due and returns its stock,
	// so a new order gets the units.
	if _, err := svc.Reserve(ctx, "fast", []inventory.Item{{SKU: "B", Quantity: 5}}); err != nil {
		t.Fatalf("reserve after expiry: %v", err)
	}
	_, err := svc.Commit(ctx, "slow")
	testenv.WantCode(t, err, inventory.CodeReservationExpired)
	_, err = svc.Reserve(ctx, "slow", []inventory.Item{{SKU: "B", Quantity: 5}})
	testenv.WantCode(t, err, inventory.CodeReservationExpired)
	assertConserved(t, store)

	clk.Advance(time.Minute)
	if n, err := store.ExpireReservations(ctx, clk.Now()); err != nil || n != 1 {
		t.Fatalf("sweeper expired %d (%v), want 1", n, err)
	}
	if got := available(t, svc, "B"); got != 5 {
		t.Errorf("B available = %d after the sweep, want 5", got)
	}
}

func TestInvalidRequestsAreRejected(t *testing.T) {
	testenv.OnEachBackend(t, testInvalidRequestsAreRejected)
}

func testInvalidRequestsAreRejected(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()
	tests := []struct {
		name    string
		orderID string
		items   []inventory.Item
		code    string
	}{
		{"empty order id", "", []inventory.Item{{SKU: "A", Quantity: 1}}, inventory.CodeInvalidOrderID},
		{"no items", "o", nil, inventory.CodeInvalidItems},
		{"zero quantity", "o", []inventory.Item{{SKU: "A", Quantity: 0}}, inventory.CodeInvalidItems},
		{"negative quantity", "o", []inventory.Item{{SKU: "A", Quantity: -2}}, inventory.CodeInvalidItems},
		{"empty sku", "o", []inventory.Item{{SKU: " ", Quantity: 1}}, inventory.CodeInvalidItems},
		{"huge quantity", "o", []inventory.Item{{SKU: "A", Quantity: 600}, {SKU: "A", Quantity: 600}}, inventory.CodeInvalidItems},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Reserve(ctx, tt.orderID, tt.items)
			testenv.WantCode(t, err, tt.code)
			if !errors.Is(err, errs.E(errs.Invalid, tt.code, "")) {
				t.Errorf("error %v is not Invalid/%s", err, tt.code)
			}
		})
	}
	assertConserved(t, store)
}
