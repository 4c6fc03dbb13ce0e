package orders

import (
	"context"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
)

// TestInvalidInputReachesNeitherStoreNorPeers: with inventory and payments
// down and the orders store closed, any call that got past validation
// would fail as unavailable or internal; a malformed identifier or a bad
// order answers its own 400 instead.
func TestInvalidInputReachesNeitherStoreNorPeers(t *testing.T) {
	w := newWorld(t, testenv.SQLite)
	ctx := context.Background()
	w.inventory.down.Store(true)
	w.payments.down.Store(true)
	if err := w.store.Close(); err != nil {
		t.Fatal(err)
	}
	lines := func(n, qty int) []Item {
		items := make([]Item, n)
		for i := range items {
			items[i] = Item{"MUG", qty}
		}
		return items
	}
	huge := strings.Repeat("x", 70_000)
	for _, tt := range []struct {
		name string
		call func() error
		code string
	}{
		{"dot SKU", func() error {
			_, err := w.saga.PlaceOrder(ctx, "u1", "k", []Item{{"MUG", 1}, {"..", 1}}, approve)
			return err
		}, CodeInvalidSKU},
		{"huge SKU", func() error { _, err := w.saga.PlaceOrder(ctx, "u1", "k", []Item{{huge, 1}}, approve); return err }, CodeInvalidSKU},
		{"SKU with a slash", func() error {
			_, err := w.saga.PlaceOrder(ctx, "u1", "k", []Item{{"MUG/../TEE", 1}}, approve)
			return err
		}, CodeInvalidSKU},
		// 11 lines of 100 of one SKU: each line is within the cap, their
		// sum is not.
		{"one SKU split over lines", func() error { _, err := w.saga.PlaceOrder(ctx, "u1", "k", lines(11, 100), approve); return err }, CodeInvalidItems},
		{"two lines past the cap", func() error { _, err := w.saga.PlaceOrder(ctx, "u1", "k", lines(2, 51), approve); return err }, CodeInvalidItems},
		{"too many lines", func() error { _, err := w.saga.PlaceOrder(ctx, "u1", "k", lines(maxItems+1, 1), approve); return err }, CodeInvalidItems},
		{"malformed user", func() error { _, err := w.saga.PlaceOrder(ctx, "u1\x00", "k", []Item{{"MUG", 1}}, approve); return err }, CodeInvalidUserID},
		{"dot order id", func() error { _, err := w.saga.GetOrder(ctx, "u1", ".."); return err }, CodeInvalidOrderID},
		{"huge order id", func() error { _, err := w.saga.GetOrder(ctx, "u1", huge); return err }, CodeInvalidOrderID},
		{"empty order id", func() error { _, err := w.saga.GetOrder(ctx, "u1", ""); return err }, CodeInvalidOrderID},
		{"GetOrder malformed user", func() error { _, err := w.saga.GetOrder(ctx, "", "ord_1"); return err }, CodeInvalidUserID},
		{"ListOrders malformed user", func() error { _, err := w.saga.ListOrders(ctx, huge, Page{}); return err }, CodeInvalidUserID},
	} {
		err := tt.call()
		if errs.KindOf(err) != errs.Invalid || errs.CodeOf(err) != tt.code {
			t.Errorf("%s: %.200v; want invalid/%s", tt.name, err, tt.code)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("%s: error of %d bytes echoes the input", tt.name, len(err.Error()))
		}
	}
	// The control: a valid request does go on, and fails for the outage.
	if _, err := w.saga.GetOrder(ctx, "u1", "ord_1"); errs.KindOf(err) != errs.Internal {
		t.Errorf("GetOrder(valid) on a closed store = %v; want internal, so the checks above prove something", err)
	}
}

// TestLinesOfOneSKUAreMergedThenCapped: lines naming the same SKU within
// the cap make one line of their sum.
func TestLinesOfOneSKUAreMergedThenCapped(t *testing.T) {
	w := newWorld(t, testenv.SQLite)
	o, err := w.place(t, "u1", "k1", approve, Item{"MUG", 3}, Item{"TEE", 1}, Item{"MUG", 2})
	if err != nil || len(o.Items) != 2 || o.Items[0] != (Line{"MUG", 5, 1200}) || o.TotalCents != 5*1200+2500 {
		t.Fatalf("order = %+v, %v; want MUG×5 and TEE×1", o, err)
	}
	// 100 in all is the cap itself, and allowed.
	if _, err := w.place(t, "u2", "k1", approve, Item{"MUG", 60}, Item{"MUG", 40}); errs.CodeOf(err) != "out_of_stock" {
		t.Errorf("MUG 60+40 = %v; want it past validation (out_of_stock: 10 mugs exist)", err)
	}
	w.checkInvariants(t)
}
