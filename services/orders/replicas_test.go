package orders

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"go.opentelemetry.io/otel/trace/noop"
)

// These tests are two replicas of orders in one process on one PostgreSQL
// database, each with its own store and connection pool, as two processes
// would have: fast proofs of the store. processes_test.go proves the same
// of two orders processes.

// openReplicaStores opens n stores on one new PostgreSQL database.
func openReplicaStores(t *testing.T, n int) []*Store {
	t.Helper()
	url := testenv.Postgres.NewDatabase(t)
	stores := make([]*Store, n)
	for i := range stores {
		store, err := OpenStore(context.Background(), url, noop.NewTracerProvider())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		stores[i] = store
	}
	return stores
}

// TestTwoStoresHonourOneIdempotencyKeyOnPostgreSQL is 20 creations of an
// order with one user and Idempotency-Key at once, half on each replica,
// each with an order ID of its own: exactly one is created, and every
// caller is answered with that one order.
func TestTwoStoresHonourOneIdempotencyKeyOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	stores := openReplicaStores(t, 2)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

	const callers = 20
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		created    int
		perReplica [2]int
		answers    = map[string]int{} // order ID → callers answered with it
		failures   []error
		start      = make(chan struct{})
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			replica := i % 2
			r, won, err := stores[replica].create(ctx, record{
				Order: Order{
					ID: fmt.Sprintf("ord_race%02d", i), UserID: "u1", Status: Pending, TotalCents: 1200, Currency: "EUR",
					Items: []Line{{SKU: "MUG", Quantity: 1, UnitPriceCents: 1200}}, CreatedAt: now,
				},
				IdempotencyKey: "one-key", RequestHash: "h", Step: StepCreated, UpdatedAt: now,
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err)
				return
			}
			answers[r.ID]++
			if won {
				created++
				perReplica[replica]++
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("%d creations with one key over 2 replicas: %d created (%d on replica 0, %d on replica 1), answers by order ID %v, %d errors",
		callers, created, perReplica[0], perReplica[1], answers, len(failures))
	if len(failures) > 0 {
		t.Fatalf("errors: %v", failures)
	}
	if created != 1 || len(answers) != 1 {
		t.Errorf("%d created, answers %v; want one order, the answer to all %d", created, answers, callers)
	}
	counts, err := stores[1].CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[Pending] != 1 || len(counts) != 1 {
		t.Errorf("orders by status %v; want exactly one PENDING", counts)
	}
	for id := range answers {
		for i, s := range stores {
			if r, ok, err := s.byKey(ctx, "u1", "one-key"); err != nil || !ok || r.ID != id || len(r.Items) != 1 {
				t.Errorf("replica %d reads the key as %+v, %v, %v; want order %s with its one line", i, r, ok, err, id)
			}
		}
	}
}

// countingInventory counts the releases each order gets: a recovery pass
// that resumes a saga stalled before reserving compensates it, releasing
// its reservation once.
type countingInventory struct {
	Inventory
	mu       sync.Mutex
	releases map[string]int
}

func (c *countingInventory) Release(ctx context.Context, orderID string) (inventory.Reservation, error) {
	c.mu.Lock()
	c.releases[orderID]++
	c.mu.Unlock()
	return c.Inventory.Release(ctx, orderID)
}

// TestTwoStoresNeverRecoverOneOrderTwiceOnPostgreSQL is two replicas'
// recovery passes at once over 60 stalled checkouts: the claims must hand
// each order to one replica only, and together they finish every one.
func TestTwoStoresNeverRecoverOneOrderTwiceOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, testenv.SQLite) // inventory, payments and the clock the replicas share
	stores := openReplicaStores(t, 2)
	inv := &countingInventory{Inventory: flakyInventory{w.inventory, &w.crashInventoryOnCommit}, releases: map[string]int{}}
	pay := flakyPayments{w.payments}
	opts := Options{Now: w.clock.Now, StaleAfter: 30 * time.Second}

	const stalled = 60
	for i := range stalled {
		now := w.clock.Now()
		if _, _, err := stores[0].create(ctx, record{
			Order: Order{ID: fmt.Sprintf("ord_stalled%02d", i), UserID: "u1", Status: Pending, TotalCents: 1200, Currency: "EUR",
				Items: []Line{{SKU: "MUG", Quantity: 1, UnitPriceCents: 1200}}, CreatedAt: now},
			IdempotencyKey: fmt.Sprint("k", i), RequestHash: "h", Step: StepCreated, UpdatedAt: now,
		}); err != nil {
			t.Fatal(err)
		}
	}
	w.clock.Advance(31 * time.Second)

	var (
		wg      sync.WaitGroup
		reports [2]RecoveryReport
		failed  [2]error
		start   = make(chan struct{})
	)
	began := time.Now()
	for i, store := range stores {
		recovery := NewRecovery(store, inv, pay, opts)
		wg.Go(func() {
			<-start
			reports[i], failed[i] = recovery.Recover(ctx)
		})
	}
	close(start)
	wg.Wait()
	took := time.Since(began)

	twice := 0
	for _, n := range inv.releases {
		if n > 1 {
			twice++
		}
	}
	t.Logf("%d stalled orders, 2 recovery passes at once (%s): replica 0 %+v, replica 1 %+v; %d orders released, %d of them more than once",
		stalled, took.Round(time.Millisecond), reports[0], reports[1], len(inv.releases), twice)
	for i, err := range failed {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if got := reports[0].Compensated + reports[1].Compensated; got != stalled || reports[0].Deferred+reports[1].Deferred != 0 {
		t.Errorf("%d compensated in all, reports %+v; want each of %d once", got, reports, stalled)
	}
	if twice != 0 || len(inv.releases) != stalled {
		t.Errorf("%d orders released, %d more than once; want each of %d once", len(inv.releases), twice, stalled)
	}
	counts, err := stores[1].CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[Failed] != stalled || len(counts) != 1 {
		t.Errorf("orders by status %v; want all %d FAILED", counts, stalled)
	}
}
