package inventory_test

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
	"go.opentelemetry.io/otel/trace/noop"
)

func TestStoreSurvivesReopenAndSeedsOnce(t *testing.T) {
	testenv.OnEachBackend(t, testStoreSurvivesReopenAndSeedsOnce)
}

func testStoreSurvivesReopenAndSeedsOnce(t *testing.T, b testenv.Backend) {
	ctx := context.Background()
	path := b.NewDatabase(t)
	if b.Name == testenv.SQLite.Name {
		path = filepath.Join(t.TempDir(), "data", "inventory.db") // a directory Open must create
	}

	store, err := inventory.OpenStore(ctx, path, noop.NewTracerProvider())
	if err != nil {
		t.Fatal(err)
	}
	if seeded, err := store.Seed(ctx, testCatalogue); err != nil || !seeded {
		t.Fatalf("first seed = %v, %v; want true", seeded, err)
	}
	svc := inventory.NewService(store, inventory.Options{})
	if _, err := svc.Reserve(ctx, "o1", []inventory.Item{{SKU: "A", Quantity: 4}}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening runs the migrations again (a no-op at the same version)
	// and must neither reseed nor lose the reservation.
	store, err = inventory.OpenStore(ctx, path, noop.NewTracerProvider())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer store.Close()
	if seeded, err := store.Seed(ctx, testCatalogue); err != nil || seeded {
		t.Fatalf("second seed = %v, %v; want false", seeded, err)
	}
	products, err := store.ListProducts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(products) != len(testCatalogue) {
		t.Fatalf("%d products after reopen, want %d", len(products), len(testCatalogue))
	}
	if products[0].SKU != "A" || products[0].Available != 6 {
		t.Errorf("A = %+v, want 6 available (10 - 4 held)", products[0])
	}
	ledger, err := store.StockLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ledger["A"]; got.Held != 4 || got.Total() != 10 {
		t.Errorf("ledger A = %+v, want 4 held of 10", got)
	}
	if err := store.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
}

// TestTwoStoresRaceForTheLastUnitsOnPostgreSQL is two replicas of the
// service in one process, each with its own store and connection pool on
// one PostgreSQL database (TestTwoProcessesRaceForTheLastUnitsOnPostgreSQL
// runs the service binary twice instead), taking 50 reservations at
// once for a product with 10 units left: the row locks must let exactly
// 10 through and refuse the other 40 as out of stock, without losing or
// inventing a unit.
func TestTwoStoresRaceForTheLastUnitsOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	url := testenv.Postgres.NewDatabase(t)
	var replicas [2]inventory.Service
	var stores [2]*inventory.Store
	for i := range replicas {
		store, err := inventory.OpenStore(ctx, url, noop.NewTracerProvider())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		if _, err := store.Seed(ctx, testCatalogue); err != nil { // the second finds the catalogue there
			t.Fatal(err)
		}
		stores[i], replicas[i] = store, inventory.NewService(store, inventory.Options{ReservationTTL: time.Minute})
	}

	const callers, units = 50, 10 // testCatalogue has 10 of A
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		reserved, refused int
		perReplica        [2]int
		unexpected        []error
		start             = make(chan struct{})
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			replica := i % 2
			_, err := replicas[replica].Reserve(ctx, fmt.Sprintf("order-%d", i), []inventory.Item{{SKU: "A", Quantity: 1}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				reserved++
				perReplica[replica]++
			case errs.CodeOf(err) == inventory.CodeOutOfStock:
				refused++
			default:
				unexpected = append(unexpected, err)
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("%d reservations over 2 replicas for %d units: %d reserved (%d on replica 0, %d on replica 1), %d refused out of stock, %d other errors",
		callers, units, reserved, perReplica[0], perReplica[1], refused, len(unexpected))
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if reserved != units || refused != callers-units {
		t.Errorf("reserved %d, refused %d; want %d and %d", reserved, refused, units, callers-units)
	}
	ledger, err := stores[1].StockLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ledger of A after the race: %+v", ledger["A"])
	if got := ledger["A"]; got.Available != 0 || got.Held != units || got.Total() != units {
		t.Errorf("ledger A = %+v, want 0 available and all %d held", got, units)
	}
	for _, p := range testCatalogue {
		if got := ledger[p.SKU].Total(); got != p.Available {
			t.Errorf("%s: %d units in all, want %d (stock conserved)", p.SKU, got, p.Available)
		}
	}
}
