package inventory_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestTwoProcessesRaceForTheLastUnitsOnPostgreSQL is the race of
// TestTwoStoresRaceForTheLastUnitsOnPostgreSQL between two inventory
// processes, the service binary started twice on one PostgreSQL
// database, called over their HTTP API as orders calls them: 50
// reservations at once, each for another order, alternating between the
// replicas, for a product with 10 units left. Exactly 10 may succeed, the
// other 40 must be refused out of stock, and no unit may be lost or
// invented.
func TestTwoProcessesRaceForTheLastUnitsOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	url := testenv.Postgres.NewDatabase(t)
	// The stock is loaded before the replicas start, so they find a
	// catalogue and seed none: A has its last 10 units.
	store := testenv.OpenStoreAt(t, url, inventory.OpenStore, noop.NewTracerProvider())
	if _, err := store.Seed(ctx, testCatalogue); err != nil {
		t.Fatal(err)
	}
	consul := testenv.StartConsul(t)
	replicas := testenv.StartReplicas(t, "inventory", 2,
		"DATABASE_URL="+url, "CONSUL_HTTP_ADDR="+consul.Addr, "OTEL_SDK_DISABLED=true")
	consul.WaitPassing(inventory.ServiceName, 2, 15*time.Second)
	tel := testenv.Telemetry(t, "orders")
	var clients [2]inventory.Service
	for i, r := range replicas {
		// The 50 calls queue on A's row lock: the race is about what each
		// is answered, not how fast the queue drains.
		clients[i] = inventory.NewClient(testenv.DirectWithin(t, r.URL, tel, 30*time.Second))
	}

	const callers, units = 50, 10 // testCatalogue has 10 of A
	var (
		mu                sync.Mutex
		reserved, refused int
		perReplica        [2]int
		unexpected        []error
	)
	began := time.Now()
	testenv.AtOnce(callers, func(i int) {
		replica := i % 2
		_, err := clients[replica].Reserve(ctx, fmt.Sprintf("order-%d", i), []inventory.Item{{SKU: "A", Quantity: 1}})
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
	t.Logf("%d reservations over 2 inventory processes for %d units (%s): %d reserved (%d on replica 0, %d on replica 1), %d refused out of stock, %d other errors",
		callers, units, time.Since(began).Round(time.Millisecond), reserved, perReplica[0], perReplica[1], refused, len(unexpected))
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if reserved != units || refused != callers-units {
		t.Errorf("reserved %d, refused %d; want %d and %d", reserved, refused, units, callers-units)
	}

	// Both replicas tell their callers that nothing is left, and the
	// database holds every unit once: available, held or committed.
	for i, c := range clients {
		if p, err := c.GetProduct(ctx, "A"); err != nil || p.Available != 0 {
			t.Errorf("replica %d answers A = %+v, %v; want 0 available", i, p, err)
		}
	}
	ledger, err := store.StockLedger(ctx)
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
