package payments_test

import (
	"context"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/payments"
)

// hostileIDs are identifiers outside the grammar of package ident: what a
// hostile caller sends to make a path climb, a log line explode or a query
// scan for nothing.
var hostileIDs = []string{"", ".", "..", "a/b", "a b", "-rf", "é", "a\x00", "a\u202e", strings.Repeat("x", 70_000)}

// TestInvalidIdentifiersNeverReachTheStore proves the service refuses a
// malformed identifier itself: the store is closed, so any query would
// fail as internal, and only the service's own check answers in kind.
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
			kind errs.Kind
			code string
		}{
			{"Charge", func() error { _, err := svc.Charge(ctx, charge(id, payments.TestCardApproved)); return err }, errs.Invalid, payments.CodeInvalidOrderID},
			{"Void", func() error { _, err := svc.Void(ctx, id); return err }, errs.Invalid, payments.CodeInvalidOrderID},
			{"FindCharge", func() error { _, err := svc.FindCharge(ctx, id); return err }, errs.Invalid, payments.CodeInvalidOrderID},
			// A charge ID is not the caller's input to validate but a name
			// to look up: one outside the grammar names no charge, so the
			// promised 404 answers, still without a query.
			{"Refund", func() error { _, err := svc.Refund(ctx, id); return err }, errs.NotFound, payments.CodeChargeNotFound},
			{"GetCharge", func() error { _, err := svc.GetCharge(ctx, id); return err }, errs.NotFound, payments.CodeChargeNotFound},
		}
		for _, c := range calls {
			err := c.call()
			if errs.KindOf(err) != c.kind || errs.CodeOf(err) != c.code {
				t.Errorf("%s(%.20q) = %v; want %s/%s", c.name, id, err, c.kind, c.code)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Errorf("%s(%.20q): error of %d bytes echoes the identifier", c.name, id, len(err.Error()))
			}
		}
	}
	// The control: a valid identifier does reach the (closed) store.
	if _, err := svc.FindCharge(ctx, "ord-1"); errs.KindOf(err) != errs.Internal {
		t.Errorf("FindCharge(valid) on a closed store = %v; want an internal error, so the test above proves something", err)
	}
}
