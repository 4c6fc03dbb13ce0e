package inventory_test

import (
	"context"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
)

// hostileIDs are identifiers outside the grammar of package ident: what a
// hostile caller sends to make a path climb (the ".." that once became a
// redirect), a log line explode or a query scan for nothing.
var hostileIDs = []string{".", "..", "a/b", "a b", "-rf", "é", "a\x00", "a\u202e", strings.Repeat("x", 70_000)}

// TestInvalidIdentifiersNeverReachTheStore proves the service refuses a
// malformed identifier itself: the store is closed, so any query would
// fail as internal, and only the service's own check answers 400.
func TestInvalidIdentifiersNeverReachTheStore(t *testing.T) {
	svc, store, _ := newService(t, testenv.SQLite)
	ctx := context.Background()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range hostileIDs {
		calls := []struct {
			name string
			call func() error
			code string
		}{
			{"GetProduct", func() error { _, err := svc.GetProduct(ctx, id); return err }, inventory.CodeInvalidSKU},
			{"Reserve sku", func() error {
				_, err := svc.Reserve(ctx, "ord-1", []inventory.Item{{SKU: "A", Quantity: 1}, {SKU: id, Quantity: 1}})
				return err
			}, inventory.CodeInvalidSKU},
			{"Reserve order", func() error {
				_, err := svc.Reserve(ctx, id, []inventory.Item{{SKU: "A", Quantity: 1}})
				return err
			}, inventory.CodeInvalidOrderID},
			{"Commit", func() error { _, err := svc.Commit(ctx, id); return err }, inventory.CodeInvalidOrderID},
			{"Release", func() error { _, err := svc.Release(ctx, id); return err }, inventory.CodeInvalidOrderID},
		}
		for _, c := range calls {
			err := c.call()
			if errs.KindOf(err) != errs.Invalid || errs.CodeOf(err) != c.code {
				t.Errorf("%s(%.20q) = %.200v; want invalid/%s", c.name, id, err, c.code)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Errorf("%s(%.20q): error of %d bytes echoes the identifier", c.name, id, len(err.Error()))
			}
		}
	}
	// The control: valid identifiers do reach the (closed) store.
	if _, err := svc.GetProduct(ctx, "A"); errs.KindOf(err) != errs.Internal {
		t.Errorf("GetProduct(valid) on a closed store = %v; want an internal error, so the test above proves something", err)
	}
	if _, err := svc.Release(ctx, "ord-1"); errs.KindOf(err) != errs.Internal {
		t.Errorf("Release(valid) on a closed store = %v; want an internal error", err)
	}
}

// TestQuantityCapCountsMergedLines: the per-SKU cap applies to the sum of
// lines naming the same SKU, so splitting an order into lines cannot
// reserve past it.
func TestQuantityCapCountsMergedLines(t *testing.T) {
	svc, store, _ := newService(t, testenv.SQLite)
	items := make([]inventory.Item, 11)
	for i := range items {
		items[i] = inventory.Item{SKU: "A", Quantity: 100}
	}
	if _, err := svc.Reserve(context.Background(), "ord-1", items); errs.CodeOf(err) != inventory.CodeInvalidItems {
		t.Errorf("11 lines of 100 A = %v; want invalid_items (1100 > 1000 per SKU)", err)
	}
	assertConserved(t, store)
}
