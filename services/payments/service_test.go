package payments_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// openStore opens an empty store on backend b.
func openStore(t testing.TB, b testenv.Backend) *payments.Store {
	t.Helper()
	return openTracedStore(t, b, noop.NewTracerProvider())
}

func openTracedStore(t testing.TB, b testenv.Backend, tp trace.TracerProvider) *payments.Store {
	t.Helper()
	return testenv.OpenStoreOn(t, b, payments.OpenStore, tp)
}

func newService(t testing.TB, b testenv.Backend) (payments.Service, *payments.Store, *testenv.Clock) {
	store := openStore(t, b)
	// Nanoseconds on the clock prove the service keeps what the store
	// keeps (milliseconds), so a replay equals the first answer.
	clk := testenv.NewClock()
	clk.Advance(123456789 * time.Nanosecond) // 2026-01-01 12:00:00.123456789 UTC
	return payments.NewService(store, payments.Options{Now: clk.Now}), store, clk
}

func charge(orderID, card string) payments.ChargeRequest {
	return payments.ChargeRequest{OrderID: orderID, AmountCents: 1999, Currency: "EUR", CardNumber: card}
}

func listCharges(t *testing.T, store *payments.Store) []payments.Charge {
	t.Helper()
	charges, err := store.ListCharges(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return charges
}

var chargeIDPattern = regexp.MustCompile(`^ch_[0-9a-f]{32}$`)

func TestApprovedCardIsCharged(t *testing.T) { testenv.OnEachBackend(t, testApprovedCardIsCharged) }

func testApprovedCardIsCharged(t *testing.T, b testenv.Backend) {
	svc, store, clk := newService(t, b)
	ctx := context.Background()

	c, err := svc.Charge(ctx, charge("o1", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}
	want := payments.Charge{
		ID: c.ID, OrderID: "o1", AmountCents: 1999, Currency: "EUR", Status: payments.Succeeded,
		CardLast4: "4242", CreatedAt: clk.Now().Truncate(time.Millisecond),
	}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("charge = %+v\nwant     %+v", c, want)
	}
	if !chargeIDPattern.MatchString(c.ID) {
		t.Errorf("charge ID %q, want ch_ and 32 hex digits", c.ID)
	}
	if stored := listCharges(t, store); len(stored) != 1 || fmt.Sprint(stored[0]) != fmt.Sprint(c) {
		t.Errorf("stored %+v, want exactly the returned charge", stored)
	}
}

func TestDeclinedCardIsRefusedAndRecorded(t *testing.T) {
	testenv.OnEachBackend(t, testDeclinedCardIsRefusedAndRecorded)
}

func testDeclinedCardIsRefusedAndRecorded(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()

	_, err := svc.Charge(ctx, charge("o1", payments.TestCardDeclined))
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Declined || e.Code != payments.CodeCardDeclined {
		t.Fatalf("err = %v, want Declined/%s", err, payments.CodeCardDeclined)
	}
	if e.Detail != "card ending 0002 was declined" {
		t.Errorf("detail = %q", e.Detail)
	}
	stored := listCharges(t, store)
	if len(stored) != 1 || stored[0].Status != payments.Declined || stored[0].CardLast4 != "0002" {
		t.Errorf("stored %+v, want one declined charge ending 0002", stored)
	}
}

func TestCardNumbers(t *testing.T) { testenv.OnEachBackend(t, testCardNumbers) }

func testCardNumbers(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()
	tests := []struct {
		name, card string
		code       string // "" means approved
	}{
		{"test card", payments.TestCardApproved, ""},
		{"other 16 digits", "5555555555554444", ""},
		{"12 digits", "123456789012", ""},
		{"19 digits", "1234567890123456789", ""},
		{"11 digits", "12345678901", payments.CodeInvalidCard},
		{"20 digits", "12345678901234567890", payments.CodeInvalidCard},
		{"empty", "", payments.CodeInvalidCard},
		{"spaces", "4242 4242 4242 4242", payments.CodeInvalidCard},
		{"dashes", "4242-4242-4242-4242", payments.CodeInvalidCard},
		{"letters", "4242424242424abc", payments.CodeInvalidCard},
		{"sign", "+424242424242424", payments.CodeInvalidCard},
		{"non-ASCII digits", "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢", payments.CodeInvalidCard},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := svc.Charge(ctx, charge(fmt.Sprintf("o%d", i), tt.card))
			if tt.code == "" {
				if err != nil || c.Status != payments.Succeeded || c.CardLast4 != tt.card[len(tt.card)-4:] {
					t.Fatalf("charge = %+v, %v; want succeeded, ending %s", c, err, tt.card[len(tt.card)-4:])
				}
				return
			}
			testenv.WantCode(t, err, tt.code)
			if errs.KindOf(err) != errs.Invalid {
				t.Errorf("kind = %v, want Invalid", errs.KindOf(err))
			}
			if tt.card != "" && strings.Contains(err.Error(), tt.card) {
				t.Errorf("error %q echoes the card number", err)
			}
		})
	}
	if n := len(listCharges(t, store)); n != 4 {
		t.Errorf("%d charges stored, want 4 (the approved cards only)", n)
	}
}

func TestInvalidChargeRequestsAreRejected(t *testing.T) {
	testenv.OnEachBackend(t, testInvalidChargeRequestsAreRejected)
}

func testInvalidChargeRequestsAreRejected(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()
	valid := charge("o1", payments.TestCardApproved)
	tests := []struct {
		name   string
		modify func(*payments.ChargeRequest)
		code   string
	}{
		{"empty order id", func(r *payments.ChargeRequest) { r.OrderID = "" }, payments.CodeInvalidOrderID},
		{"blank order id", func(r *payments.ChargeRequest) { r.OrderID = " \t" }, payments.CodeInvalidOrderID},
		{"long order id", func(r *payments.ChargeRequest) { r.OrderID = strings.Repeat("x", 129) }, payments.CodeInvalidOrderID},
		{"zero amount", func(r *payments.ChargeRequest) { r.AmountCents = 0 }, payments.CodeInvalidAmount},
		{"negative amount", func(r *payments.ChargeRequest) { r.AmountCents = -5 }, payments.CodeInvalidAmount},
		{"lower-case currency", func(r *payments.ChargeRequest) { r.Currency = "eur" }, payments.CodeInvalidCurrency},
		{"long currency", func(r *payments.ChargeRequest) { r.Currency = "EURO" }, payments.CodeInvalidCurrency},
		{"digit in currency", func(r *payments.ChargeRequest) { r.Currency = "E1R" }, payments.CodeInvalidCurrency},
		{"empty currency", func(r *payments.ChargeRequest) { r.Currency = "" }, payments.CodeInvalidCurrency},
		{"invalid card", func(r *payments.ChargeRequest) { r.CardNumber = "42" }, payments.CodeInvalidCard},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := valid
			tt.modify(&req)
			_, err := svc.Charge(ctx, req)
			if !errors.Is(err, errs.E(errs.Invalid, tt.code, "")) {
				t.Errorf("error %v is not Invalid/%s", err, tt.code)
			}
		})
	}
	// An order ID of the identifier grammar's longest length is fine.
	req := valid
	req.OrderID = strings.Repeat("x", ident.MaxLen)
	if _, err := svc.Charge(ctx, req); err != nil {
		t.Errorf("%d-byte order id: %v", ident.MaxLen, err)
	}
	if n := len(listCharges(t, store)); n != 1 {
		t.Errorf("%d charges stored, want 1 (the %d-byte order id)", n, ident.MaxLen)
	}
}

func TestChargeIsIdempotentPerOrder(t *testing.T) {
	testenv.OnEachBackend(t, testChargeIsIdempotentPerOrder)
}

func testChargeIsIdempotentPerOrder(t *testing.T, b testenv.Backend) {
	svc, store, clk := newService(t, b)
	ctx := context.Background()

	first, err := svc.Charge(ctx, charge("o1", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	// A replay returns the first charge even with another (approving)
	// card: the order is paid, the card is not charged again.
	again, err := svc.Charge(ctx, charge("o1", "5555555555554444"))
	if err != nil {
		t.Fatalf("repeated charge: %v", err)
	}
	if fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("repeat returned %+v\nwant the first charge %+v", again, first)
	}
	if n := len(listCharges(t, store)); n != 1 {
		t.Errorf("%d charges stored after charging one order twice, want 1", n)
	}
}

func TestDeclineIsReplayed(t *testing.T) { testenv.OnEachBackend(t, testDeclineIsReplayed) }

func testDeclineIsReplayed(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()

	_, first := svc.Charge(ctx, charge("o1", payments.TestCardDeclined))
	testenv.WantCode(t, first, payments.CodeCardDeclined)
	// Retrying the order, even with a good card, gets the same answer:
	// the first attempt decides.
	_, again := svc.Charge(ctx, charge("o1", payments.TestCardApproved))
	if errs.KindOf(again) != errs.Declined || again.Error() != first.Error() {
		t.Errorf("replay = %v, want the first decline %v", again, first)
	}
	stored := listCharges(t, store)
	if len(stored) != 1 || stored[0].Status != payments.Declined {
		t.Errorf("stored %+v, want the one declined attempt", stored)
	}
}

func TestChargeMismatchIsAConflict(t *testing.T) {
	testenv.OnEachBackend(t, testChargeMismatchIsAConflict)
}

func testChargeMismatchIsAConflict(t *testing.T, b testenv.Backend) {
	svc, store, clk := newService(t, b)
	ctx := context.Background()
	first, err := svc.Charge(ctx, charge("o1", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Millisecond) // ListCharges lists by creation time: first stays first
	if _, err := svc.Charge(ctx, charge("o2", payments.TestCardDeclined)); err == nil {
		t.Fatal("declined card was charged")
	}
	tests := []struct {
		name, orderID string
		amount        int64
		currency      string
	}{
		{"other amount", "o1", 2000, "EUR"},
		{"other currency", "o1", 1999, "USD"},
		{"other amount after a decline", "o2", 1, "EUR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Charge(ctx, payments.ChargeRequest{OrderID: tt.orderID, AmountCents: tt.amount, Currency: tt.currency, CardNumber: payments.TestCardApproved})
			if !errors.Is(err, errs.E(errs.Conflict, payments.CodeChargeMismatch, "")) {
				t.Fatalf("err = %v, want Conflict/%s", err, payments.CodeChargeMismatch)
			}
		})
	}
	stored := listCharges(t, store)
	if len(stored) != 2 || fmt.Sprint(stored[0]) != fmt.Sprint(first) {
		t.Errorf("stored %+v, want the two first charges unchanged", stored)
	}
}

func TestConcurrentChargesForOneOrderChargeOnce(t *testing.T) {
	testenv.OnEachBackend(t, testConcurrentChargesForOneOrderChargeOnce)
}

func testConcurrentChargesForOneOrderChargeOnce(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()

	// Many retries of one checkout race each other: all must get the
	// same charge, and only one row may exist.
	const callers = 40
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     = map[string]int{}
		failure []error
	)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := svc.Charge(ctx, charge("contended", payments.TestCardApproved))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failure = append(failure, err)
				return
			}
			ids[c.ID]++
		}()
	}
	wg.Wait()
	if len(failure) > 0 {
		t.Fatalf("unexpected errors: %v", failure)
	}
	if len(ids) != 1 {
		t.Errorf("callers saw charges %v, want one charge ID for all %d", ids, callers)
	}
	if n := len(listCharges(t, store)); n != 1 {
		t.Errorf("%d charges stored, want 1", n)
	}
}

func TestRefund(t *testing.T) { testenv.OnEachBackend(t, testRefund) }

func testRefund(t *testing.T, b testenv.Backend) {
	svc, _, clk := newService(t, b)
	ctx := context.Background()
	c, err := svc.Charge(ctx, charge("o1", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Hour)
	refundedAt := clk.Now().Truncate(time.Millisecond)
	refunded, err := svc.Refund(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if refunded.Status != payments.Refunded || refunded.RefundedAt == nil || !refunded.RefundedAt.Equal(refundedAt) {
		t.Fatalf("refund = %+v, want refunded at %s", refunded, refundedAt)
	}
	if refunded.ID != c.ID || refunded.AmountCents != c.AmountCents || !refunded.CreatedAt.Equal(c.CreatedAt) {
		t.Errorf("refund = %+v changed more than the status of %+v", refunded, c)
	}

	// Refunding again returns the refund as it was: refunded_at stays.
	clk.Advance(time.Hour)
	again, err := svc.Refund(ctx, c.ID)
	if err != nil || fmt.Sprint(again) != fmt.Sprint(refunded) {
		t.Errorf("second refund = %+v, %v; want the first refund %+v", again, err, refunded)
	}
	got, err := svc.GetCharge(ctx, c.ID)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(refunded) {
		t.Errorf("GetCharge = %+v, %v; want %+v", got, err, refunded)
	}

	// A replayed Charge of a refunded order returns the refunded charge:
	// it is still that order's charge, and it is not charged again.
	replay, err := svc.Charge(ctx, charge("o1", payments.TestCardApproved))
	if err != nil || replay.Status != payments.Refunded || replay.ID != c.ID {
		t.Errorf("replay after refund = %+v, %v; want the refunded charge", replay, err)
	}
}

func TestRefundErrors(t *testing.T) { testenv.OnEachBackend(t, testRefundErrors) }

func testRefundErrors(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()
	if _, err := svc.Charge(ctx, charge("o1", payments.TestCardDeclined)); err == nil {
		t.Fatal("declined card was charged")
	}
	declined, err := svc.FindCharge(ctx, "o1")
	if err != nil {
		t.Fatal(err)
	}

	_, err = svc.Refund(ctx, declined.ID)
	if !errors.Is(err, errs.E(errs.Conflict, payments.CodeChargeNotRefundable, "")) {
		t.Errorf("refund of a declined charge = %v, want Conflict/%s", err, payments.CodeChargeNotRefundable)
	}
	_, err = svc.Refund(ctx, "ch_nope")
	if !errors.Is(err, errs.E(errs.NotFound, payments.CodeChargeNotFound, "")) {
		t.Errorf("refund of an unknown charge = %v, want NotFound/%s", err, payments.CodeChargeNotFound)
	}
	if stored := listCharges(t, store); len(stored) != 1 || fmt.Sprint(stored[0]) != fmt.Sprint(declined) {
		t.Errorf("stored %+v, want the declined charge unchanged", stored)
	}
}

func TestGetAndFindCharge(t *testing.T) { testenv.OnEachBackend(t, testGetAndFindCharge) }

func testGetAndFindCharge(t *testing.T, b testenv.Backend) {
	svc, _, _ := newService(t, b)
	ctx := context.Background()
	c, err := svc.Charge(ctx, charge("o1", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}

	got, err := svc.GetCharge(ctx, c.ID)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(c) {
		t.Errorf("GetCharge = %+v, %v; want %+v", got, err, c)
	}
	found, err := svc.FindCharge(ctx, "o1")
	if err != nil || fmt.Sprint(found) != fmt.Sprint(c) {
		t.Errorf("FindCharge = %+v, %v; want %+v", found, err, c)
	}

	_, err = svc.GetCharge(ctx, "ch_nope")
	if !errors.Is(err, errs.E(errs.NotFound, payments.CodeChargeNotFound, "")) {
		t.Errorf("GetCharge(unknown) = %v, want NotFound/%s", err, payments.CodeChargeNotFound)
	}
	_, err = svc.FindCharge(ctx, "o2")
	if !errors.Is(err, errs.E(errs.NotFound, payments.CodeChargeNotFound, "")) {
		t.Errorf("FindCharge(uncharged order) = %v, want NotFound/%s", err, payments.CodeChargeNotFound)
	}
	_, err = svc.FindCharge(ctx, "")
	testenv.WantCode(t, err, payments.CodeInvalidOrderID)
}

func TestChargeRequestNeverPrintsTheCard(t *testing.T) {
	req := charge("o1", payments.TestCardApproved)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if got := fmt.Sprintf(format, req); strings.Contains(got, payments.TestCardApproved) || !strings.Contains(got, "4242") {
			t.Errorf("Sprintf(%s) = %q, want the card masked to its last 4 digits", format, got)
		}
	}
	if got := fmt.Sprint(charge("o1", "4242-4242-4242-4242")); strings.Contains(got, "4242") {
		t.Errorf("Sprint of an invalid card = %q, want nothing of it", got)
	}

	// slog's JSON handler would marshal every field of a plain struct.
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("charging", "request", req)
	if got := buf.String(); strings.Contains(got, payments.TestCardApproved) || !strings.Contains(got, `"order_id":"o1"`) {
		t.Errorf("log line = %s, want the request with the card masked", got)
	}
}

func TestVoidFencesOffALateCharge(t *testing.T) {
	testenv.OnEachBackend(t, testVoidFencesOffALateCharge)
}

func testVoidFencesOffALateCharge(t *testing.T, b testenv.Backend) {
	svc, store, _ := newService(t, b)
	ctx := context.Background()

	// Compensation closes an order that was never charged...
	for range 2 { // ...idempotently
		v, err := svc.Void(ctx, "ord-1")
		if err != nil || v.Status != payments.Voided || v.ID != "" {
			t.Fatalf("Void of an uncharged order = %+v, %v; want voided, no charge", v, err)
		}
	}
	// ...so a charge request still in flight for it is refused.
	_, err := svc.Charge(ctx, charge("ord-1", payments.TestCardApproved))
	if errs.CodeOf(err) != payments.CodeChargeVoided || errs.KindOf(err) != errs.Conflict {
		t.Fatalf("late charge: %v; want 409 charge_voided", err)
	}
	if all, _ := store.ListCharges(ctx); len(all) != 0 {
		t.Errorf("charges after a voided order's late charge: %v", all)
	}

	// Voiding an order that was charged hands back the charge to refund.
	ch, err := svc.Charge(ctx, charge("ord-2", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}
	v, err := svc.Void(ctx, "ord-2")
	if err != nil || v.ID != ch.ID || v.Status != payments.Succeeded {
		t.Fatalf("Void of a charged order = %+v, %v; want its charge %s", v, err, ch.ID)
	}
	if _, err := svc.Void(ctx, ""); errs.CodeOf(err) != payments.CodeInvalidOrderID {
		t.Errorf("Void without an order: %v", err)
	}
}
