package payments_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestStoreSurvivesReopen(t *testing.T) { testenv.OnEachBackend(t, testStoreSurvivesReopen) }

func testStoreSurvivesReopen(t *testing.T, b testenv.Backend) {
	ctx := context.Background()
	path := b.NewDatabase(t)
	if b.Name == testenv.SQLite.Name {
		path = filepath.Join(t.TempDir(), "data", "payments.db") // a directory Open must create
	}

	store, err := payments.OpenStore(ctx, path, noop.NewTracerProvider())
	if err != nil {
		t.Fatal(err)
	}
	svc := payments.NewService(store, payments.Options{})
	paid, err := svc.Charge(ctx, charge("paid", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}
	refunded, err := svc.Charge(ctx, charge("refunded", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}
	if refunded, err = svc.Refund(ctx, refunded.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Charge(ctx, charge("declined", payments.TestCardDeclined)); err == nil {
		t.Fatal("declined card was charged")
	}
	before := listCharges(t, store)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening runs the migrations again (a no-op at the same version)
	// and must keep every charge exactly, timestamps included.
	store, err = payments.OpenStore(ctx, path, noop.NewTracerProvider())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer store.Close()
	after := listCharges(t, store)
	if len(after) != 3 || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("after reopen:\n%+v\nwant\n%+v", after, before)
	}
	svc = payments.NewService(store, payments.Options{})
	if got, err := svc.GetCharge(ctx, refunded.ID); err != nil || fmt.Sprint(got) != fmt.Sprint(refunded) {
		t.Errorf("GetCharge(refunded) = %+v, %v; want %+v", got, err, refunded)
	}
	// Idempotency outlives the process: the order is not charged again.
	if again, err := svc.Charge(ctx, charge("paid", payments.TestCardApproved)); err != nil || again.ID != paid.ID {
		t.Errorf("charge after reopen = %+v, %v; want the first charge %s", again, err, paid.ID)
	}
	if n := len(listCharges(t, store)); n != 3 {
		t.Errorf("%d charges after the replay, want 3", n)
	}
	if err := store.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestCreateChargeKeepsTheFirstChargeOfAnOrder(t *testing.T) {
	testenv.OnEachBackend(t, testCreateChargeKeepsTheFirstChargeOfAnOrder)
}

func testCreateChargeKeepsTheFirstChargeOfAnOrder(t *testing.T, b testenv.Backend) {
	store := openStore(t, b)
	ctx := context.Background()
	at := time.UnixMilli(1_700_000_000_000).UTC()
	first := payments.Charge{ID: "ch_1", OrderID: "o1", AmountCents: 100, Currency: "EUR", Status: payments.Succeeded, CardLast4: "4242", CreatedAt: at}
	second := payments.Charge{ID: "ch_2", OrderID: "o1", AmountCents: 500, Currency: "USD", Status: payments.Declined, CardLast4: "0002", CreatedAt: at.Add(time.Second)}

	stored, created, err := store.CreateCharge(ctx, first)
	if err != nil || !created || fmt.Sprint(stored) != fmt.Sprint(first) {
		t.Fatalf("first CreateCharge = %+v, %v, %v; want %+v created", stored, created, err, first)
	}
	stored, created, err = store.CreateCharge(ctx, second)
	if err != nil || created || fmt.Sprint(stored) != fmt.Sprint(first) {
		t.Fatalf("second CreateCharge = %+v, %v, %v; want the first charge, not created", stored, created, err)
	}
	if all := listCharges(t, store); len(all) != 1 {
		t.Errorf("stored %+v, want only the first charge", all)
	}
}
