package payments_test

import (
	"context"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInstrumentingCountsChargesAndMoneyOnce(t *testing.T) {
	inner, _, _ := newService(t, testenv.SQLite)
	reg := prometheus.NewRegistry()
	svc := payments.Instrumenting(reg)(inner)
	ctx := context.Background()

	c, err := svc.Charge(ctx, charge("o1", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}
	// A retried checkout replays the charge: the call counts, the money
	// does not.
	if _, err := svc.Charge(ctx, charge("o1", payments.TestCardApproved)); err != nil {
		t.Fatal(err)
	}
	usd := payments.ChargeRequest{OrderID: "o2", AmountCents: 500, Currency: "USD", CardNumber: payments.TestCardApproved}
	if _, err := svc.Charge(ctx, usd); err != nil {
		t.Fatal(err)
	}
	for _, req := range []payments.ChargeRequest{
		charge("o3", payments.TestCardDeclined),
		charge("o3", payments.TestCardDeclined), // replayed decline
		charge("o4", "not a card"),
		{OrderID: "o1", AmountCents: 1, Currency: "EUR", CardNumber: payments.TestCardApproved}, // mismatch
	} {
		if _, err := svc.Charge(ctx, req); err == nil {
			t.Fatalf("charge %v succeeded", req)
		}
	}
	for range 2 { // refunding twice is one refund, but two answers
		if _, err := svc.Refund(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Refund(ctx, "ch_nope"); err == nil {
		t.Fatal("refund of an unknown charge succeeded")
	}

	want := `
# HELP glasshouse_payments_charged_cents_total Money charged by succeeded charges, in cents, by currency; each charge counts once.
# TYPE glasshouse_payments_charged_cents_total counter
glasshouse_payments_charged_cents_total{currency="EUR"} 1999
glasshouse_payments_charged_cents_total{currency="USD"} 500
# HELP glasshouse_payments_charges_total Charge calls by result (succeeded, or the error code such as card_declined); replays of a charge count again.
# TYPE glasshouse_payments_charges_total counter
glasshouse_payments_charges_total{result="card_declined"} 2
glasshouse_payments_charges_total{result="charge_mismatch"} 1
glasshouse_payments_charges_total{result="invalid_card"} 1
glasshouse_payments_charges_total{result="succeeded"} 3
# HELP glasshouse_payments_refunds_total Refund calls by result (succeeded, or the error code such as charge_not_refundable).
# TYPE glasshouse_payments_refunds_total counter
glasshouse_payments_refunds_total{result="charge_not_found"} 1
glasshouse_payments_refunds_total{result="succeeded"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
