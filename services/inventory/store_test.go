package inventory_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestStoreSurvivesReopenAndSeedsOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "inventory.db")

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
