// Package payments charges cards for orders and refunds the charges.
//
// Charges are idempotent by order ID: an order is charged at most once,
// whatever the number of calls, so a caller that lost an answer (a timeout,
// a crash mid-checkout) may simply ask again and gets the first answer. A
// declined attempt is kept too, so asking again replays the decline rather
// than trying the card a second time. FindCharge lets a caller learn
// whether an order was charged without risking a charge.
//
// Cards behave like a payment provider's test mode: TestCardApproved
// approves, TestCardDeclined declines, and any other 12 to 19 digit number
// approves. Only a card's last four digits are ever stored, logged or sent
// back.
//
// The service also carries fault knobs (see Faults) that add latency and
// errors on demand, for demos and chaos tests.
package payments

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
	"github.com/google/uuid"
)

// Service is the payments domain. Every method takes the caller's context
// first, so traces and deadlines flow through.
type Service interface {
	// Charge charges req.CardNumber for an order. Charging an order again
	// returns the first result, never a second charge: the same charge,
	// or the same Declined error. A request whose amount or currency
	// differs from the first is a Conflict (charge_mismatch).
	Charge(ctx context.Context, req ChargeRequest) (Charge, error)
	// Refund refunds a succeeded charge. Refunding twice returns the
	// refunded charge unchanged; a declined charge is a Conflict
	// (charge_not_refundable).
	Refund(ctx context.Context, chargeID string) (Charge, error)
	// GetCharge returns one charge, or NotFound (charge_not_found).
	GetCharge(ctx context.Context, chargeID string) (Charge, error)
	// FindCharge returns the charge made for an order, or NotFound
	// (charge_not_found). It never creates one, so the orders saga's
	// recovery uses it to learn whether a charge exists.
	FindCharge(ctx context.Context, orderID string) (Charge, error)
	// Void closes an order to charges: it returns the order's charge if
	// one was made (the caller refunds it if it succeeded), else records
	// the order as voided, so a Charge arriving late for it is refused
	// (Conflict charge_voided) instead of taking money for a failed order.
	// The orders saga compensates with it; it is idempotent.
	Void(ctx context.Context, orderID string) (Charge, error)
}

// ChargeRequest asks to charge a card for an order.
type ChargeRequest struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	CardNumber  string `json:"card_number"`
}

// ChargeStatus is where a charge is in its life.
type ChargeStatus string

// A charge is Succeeded or Declined when made; a succeeded charge may
// later be Refunded.
const (
	Succeeded ChargeStatus = "succeeded"
	Declined  ChargeStatus = "declined"
	Refunded  ChargeStatus = "refunded"
	// Voided is the status Void reports for an order that was never
	// charged and now never will be; such a "charge" has no ID.
	Voided ChargeStatus = "voided"
)

// Charge is the record of one order's payment.
type Charge struct {
	ID          string       `json:"id"`
	OrderID     string       `json:"order_id"`
	AmountCents int64        `json:"amount_cents"`
	Currency    string       `json:"currency"`
	Status      ChargeStatus `json:"status"`
	CardLast4   string       `json:"card_last4"`
	CreatedAt   time.Time    `json:"created_at"`
	RefundedAt  *time.Time   `json:"refunded_at,omitempty"`
}

// Error codes this service returns, besides the generic ones.
const (
	CodeCardDeclined        = "card_declined"
	CodeInvalidCard         = "invalid_card"
	CodeInvalidOrderID      = "invalid_order_id"
	CodeInvalidAmount       = "invalid_amount"
	CodeInvalidCurrency     = "invalid_currency"
	CodeChargeMismatch      = "charge_mismatch"
	CodeChargeNotFound      = "charge_not_found"
	CodeChargeNotRefundable = "charge_not_refundable"
	CodeChargeVoided        = "charge_voided"
)

// Test cards, as payment providers document them.
const (
	TestCardApproved = "4242424242424242"
	TestCardDeclined = "4000000000000002"
)

// ChargeIDPrefix starts every charge ID, so an ID says what it names.
const ChargeIDPrefix = "ch_"

// Limits on a charge request. Card numbers are 12 to 19 digits (ISO/IEC
// 7812); order IDs follow the identifier grammar of package ident, like
// everywhere else in glasshouse.
const (
	minCardDigits = 12
	maxCardDigits = 19
)

// Options tune the service. The zero value is usable.
type Options struct {
	// Now is the clock; tests replace it.
	Now func() time.Time
}

type service struct {
	store *Store
	now   func() time.Time
}

// NewService returns the payments service backed by store.
func NewService(store *Store, opts Options) Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &service{store: store, now: opts.Now}
}

func (s *service) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	if err := validateCharge(req); err != nil {
		return Charge{}, err
	}
	status := Succeeded
	if req.CardNumber == TestCardDeclined {
		status = Declined
	}
	candidate := Charge{
		ID:          newChargeID(),
		OrderID:     req.OrderID,
		AmountCents: req.AmountCents,
		Currency:    req.Currency,
		Status:      status,
		CardLast4:   last4(req.CardNumber),
		CreatedAt:   s.stamp(),
	}
	stored, created, err := s.store.CreateCharge(ctx, candidate)
	if err != nil {
		return Charge{}, err
	}
	if !created {
		noteReplay(ctx)
		if stored.AmountCents != req.AmountCents || stored.Currency != req.Currency {
			return Charge{}, errs.E(errs.Conflict, CodeChargeMismatch, "order %s was already charged %d %s, not %d %s",
				req.OrderID, stored.AmountCents, stored.Currency, req.AmountCents, req.Currency)
		}
	}
	if stored.Status == Declined {
		return Charge{}, declined(stored)
	}
	return stored, nil
}

func (s *service) Refund(ctx context.Context, chargeID string) (Charge, error) {
	if err := checkChargeID(chargeID); err != nil {
		return Charge{}, err
	}
	return s.store.Refund(ctx, chargeID, s.stamp())
}

func (s *service) GetCharge(ctx context.Context, chargeID string) (Charge, error) {
	if err := checkChargeID(chargeID); err != nil {
		return Charge{}, err
	}
	return s.store.GetCharge(ctx, chargeID)
}

func (s *service) Void(ctx context.Context, orderID string) (Charge, error) {
	if err := validateOrderID(orderID); err != nil {
		return Charge{}, err
	}
	return s.store.Void(ctx, orderID, s.stamp())
}

func (s *service) FindCharge(ctx context.Context, orderID string) (Charge, error) {
	if err := validateOrderID(orderID); err != nil {
		return Charge{}, err
	}
	return s.store.FindCharge(ctx, orderID)
}

// stamp is the time now at the store's precision (UTC milliseconds), so
// the first answer to a call is identical to every later read or replay.
func (s *service) stamp() time.Time { return time.UnixMilli(s.now().UnixMilli()).UTC() }

// declined is the error for a declined charge: the same for the first
// attempt and for every replay of it.
func declined(c Charge) error {
	return errs.E(errs.Declined, CodeCardDeclined, "card ending %s was declined", c.CardLast4)
}

// validateCharge checks a request before anything is stored. No detail
// ever quotes the card number: error details are logged and sent back.
func validateCharge(req ChargeRequest) error {
	if err := validateOrderID(req.OrderID); err != nil {
		return err
	}
	if req.AmountCents <= 0 {
		return errs.E(errs.Invalid, CodeInvalidAmount, "amount_cents must be positive, got %d", req.AmountCents)
	}
	if !isCurrencyCode(req.Currency) {
		return errs.E(errs.Invalid, CodeInvalidCurrency, "currency must be three upper-case letters (ISO 4217), like EUR")
	}
	if !isCardNumber(req.CardNumber) {
		return errs.E(errs.Invalid, CodeInvalidCard, "card_number must be %d to %d digits", minCardDigits, maxCardDigits)
	}
	return nil
}

// validateOrderID refuses an order ID outside the identifier grammar
// (Invalid invalid_order_id) before it reaches a query or a log line.
func validateOrderID(id string) error { return ident.OrderID(id) }

// checkChargeID answers NotFound for a charge ID outside the identifier
// grammar, without a query: the contract of Refund and GetCharge already
// promises 404 charge_not_found for an ID that names no charge, and such an
// ID cannot name one (every charge ID is "ch_" and hex). The detail quotes
// it bounded, so a megabyte ID is not echoed back.
func checkChargeID(id string) error {
	if ident.Valid(id) {
		return nil
	}
	return errs.E(errs.NotFound, CodeChargeNotFound, "no charge with id %s", ident.Quote(id))
}

func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := range len(s) {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// isCardNumber reports whether s is 12 to 19 ASCII digits. Bytes, not
// runes: other scripts' digits are not card numbers.
func isCardNumber(s string) bool {
	if len(s) < minCardDigits || len(s) > maxCardDigits {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// last4 is the only part of a (validated) card number that is kept.
func last4(card string) string { return card[len(card)-4:] }

// newChargeID returns "ch_" and a random (version 4) UUID in hex.
func newChargeID() string {
	id := uuid.New()
	return ChargeIDPrefix + hex.EncodeToString(id[:])
}

// String shows the request with the card number masked, so printing a
// request with %v or %+v can never leak the card into a log.
func (r ChargeRequest) String() string {
	return fmt.Sprintf("{order_id:%s amount_cents:%d currency:%s card:%s}", r.OrderID, r.AmountCents, r.Currency, maskCard(r.CardNumber))
}

// GoString masks the card under %#v too.
func (r ChargeRequest) GoString() string { return "payments.ChargeRequest" + r.String() }

// LogValue masks the card in slog output, which would otherwise marshal
// every field.
func (r ChargeRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("order_id", r.OrderID),
		slog.Int64("amount_cents", r.AmountCents),
		slog.String("currency", r.Currency),
		slog.String("card", maskCard(r.CardNumber)),
	)
}

// maskCard keeps the last four digits of a well-formed card number and
// nothing of anything else (which might be a card with typos in it).
func maskCard(card string) string {
	if !isCardNumber(card) {
		return "[invalid]"
	}
	return "••••" + last4(card)
}
