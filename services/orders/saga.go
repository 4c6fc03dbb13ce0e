package orders

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Options tune the service. The zero value is usable.
type Options struct {
	// SagaTimeout bounds one checkout, all steps and compensations
	// included (default 20s). The saga runs detached from the caller's
	// cancellation: a customer closing the tab must not leave stock held.
	SagaTimeout time.Duration
	// StaleAfter is how long a PENDING order may go untouched before the
	// recovery loop takes it over (default 30s). It must exceed
	// SagaTimeout, so a checkout still running is never resumed as well.
	StaleAfter time.Duration
	// Now is the clock; tests replace it.
	Now func() time.Time
	// Logger receives saga decisions; nil discards them.
	Logger *slog.Logger
	// Metrics receives saga outcomes; nil counts nothing.
	Metrics *SagaMetrics
	// Tracer traces recovery passes (a live saga is traced by its
	// request); nil traces nothing.
	Tracer trace.Tracer
	// EventWritten is called after an order's event is committed to the
	// outbox, to wake the relay (events.Relay.Notify); nil does nothing,
	// and the relay finds the row at its next poll.
	EventWritten func()
}

func (o Options) withDefaults() Options {
	if o.SagaTimeout <= 0 {
		o.SagaTimeout = 20 * time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = &SagaMetrics{}
	}
	if o.Tracer == nil {
		o.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if o.EventWritten == nil {
		o.EventWritten = func() {}
	}
	return o
}

// Validate reports settings that would break the saga's guarantees.
func (o Options) Validate() error {
	o = o.withDefaults()
	if o.StaleAfter <= o.SagaTimeout {
		return fmt.Errorf("the saga stale time (%s) must exceed the saga timeout (%s), or recovery could resume a checkout that is still running", o.StaleAfter, o.SagaTimeout)
	}
	return nil
}

// checkoutSaga is the orders service: it places orders by running the
// checkout saga. Recovery, built over the same store and clients, drives
// the sagas a crash left half-done.
type checkoutSaga struct {
	store     *Store
	inventory Inventory
	payments  Payments
	opts      Options
}

func newCheckoutSaga(store *Store, inv Inventory, pay Payments, opts Options) *checkoutSaga {
	return &checkoutSaga{store: store, inventory: inv, payments: pay, opts: opts.withDefaults()}
}

// PlaceOrder validates the order, prices it, records it PENDING, then runs
// the saga: reserve → charge → commit.
func (s *checkoutSaga) PlaceOrder(ctx context.Context, userID, key string, items []Item, card string) (Order, error) {
	if err := ident.UserID(userID); err != nil {
		return Order{}, err
	}
	if err := validateOrder(key, items, card); err != nil {
		return Order{}, err
	}
	items = mergeItems(items)
	hash := requestHash(items, card)
	if existing, found, err := s.store.byKey(ctx, userID, key); err != nil {
		return Order{}, err
	} else if found {
		return replay(existing, hash)
	}

	lines, total, currency, err := s.price(ctx, items)
	if err != nil {
		return Order{}, err
	}
	now := s.opts.Now()
	rec, created, err := s.store.create(ctx, record{
		Order: Order{
			ID: "ord_" + strings.ReplaceAll(uuid.NewString(), "-", ""), UserID: userID, Status: Pending,
			TotalCents: total, Currency: currency, Items: lines, CreatedAt: now,
		},
		IdempotencyKey: key, RequestHash: hash, Step: StepCreated, UpdatedAt: now,
	})
	if err != nil {
		return Order{}, err
	}
	if !created { // a concurrent request with the same key won the race
		return replay(rec, hash)
	}

	// Detached from the caller's cancellation, bounded by its own timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.SagaTimeout)
	defer cancel()
	return s.run(ctx, rec, card)
}

// replay answers a repeated request with the first one's outcome.
func replay(r record, hash string) (Order, error) {
	switch {
	case r.RequestHash != hash:
		return Order{}, errs.E(errs.Conflict, CodeIdempotencyMismatch, "this Idempotency-Key was used for a different order (%s)", r.ID)
	case r.Status == Pending:
		return Order{}, errs.E(errs.Conflict, CodeOrderInProgress, "order %s for this Idempotency-Key is still being placed; retry shortly", r.ID)
	case r.Status == Confirmed:
		return r.Order, nil
	}
	return Order{}, r.failure()
}

// price looks up each product's current price. Reads are retried by the
// client, and an unknown SKU is answered before any order exists.
func (s *checkoutSaga) price(ctx context.Context, items []Item) ([]Line, int64, string, error) {
	var (
		lines    []Line
		total    int64
		currency string
	)
	for _, it := range items {
		p, err := s.inventory.GetProduct(ctx, it.SKU)
		if err != nil {
			return nil, 0, "", err
		}
		if currency != "" && p.Currency != currency {
			return nil, 0, "", errs.E(errs.Invalid, CodeMixedCurrency, "%s is priced in %s, the rest in %s", p.SKU, p.Currency, currency)
		}
		currency = p.Currency
		lines = append(lines, Line{SKU: it.SKU, Quantity: it.Quantity, UnitPriceCents: p.PriceCents})
		total += p.PriceCents * int64(it.Quantity)
	}
	return lines, total, currency, nil
}

// run drives a freshly created order through the saga.
func (s *checkoutSaga) run(ctx context.Context, r record, card string) (Order, error) {
	step(ctx, "reserve")
	if _, err := s.inventory.Reserve(ctx, r.ID, toInventoryItems(r.Items)); err != nil {
		if errs.IsBusiness(err) {
			// Out of stock or unknown product: all-or-nothing, so nothing
			// is held and no money moved.
			return s.finish(ctx, r, Rejected, err, false)
		}
		return s.compensate(ctx, r, err)
	}
	if err := s.store.advance(ctx, r.ID, StepReserved, "", s.opts.Now()); err != nil {
		return s.compensate(ctx, r, err)
	}
	r.Step = StepReserved

	step(ctx, "charge")
	charge, err := s.payments.Charge(ctx, payments.ChargeRequest{
		OrderID: r.ID, AmountCents: r.TotalCents, Currency: r.Currency, CardNumber: card,
	})
	if err != nil {
		return s.compensate(ctx, r, err)
	}
	if err := s.store.advance(ctx, r.ID, StepCharged, charge.ID, s.opts.Now()); err != nil {
		return s.compensate(ctx, r, err)
	}
	r.Step, r.ChargeID = StepCharged, charge.ID
	return s.commit(ctx, r)
}

// commit is the last step: once the reservation is committed the order is
// confirmed.
func (s *checkoutSaga) commit(ctx context.Context, r record) (Order, error) {
	step(ctx, "commit")
	if _, err := s.inventory.Commit(ctx, r.ID); err != nil {
		return s.compensate(ctx, r, err)
	}
	return s.finish(ctx, r, Confirmed, nil, false)
}

// compensate gives back what the saga did because of cause: it releases
// the reservation (which also fences off a Reserve still in flight) and
// makes sure no successful charge is left (refunding one if found). When
// the stock cannot be released now the order stays PENDING in step
// compensating, and recovery finishes it later. The caller gets cause.
func (s *checkoutSaga) compensate(ctx context.Context, r record, cause error) (Order, error) {
	step(ctx, "compensate", attribute.String("glasshouse.saga.cause", errs.CodeOf(cause)))
	now := s.opts.Now()
	if err := s.store.compensating(ctx, r.ID, cause, now); err != nil {
		return Order{}, err
	}

	if _, err := s.inventory.Release(ctx, r.ID); err != nil {
		if errs.CodeOf(err) == inventory.CodeReservationCommitted {
			// The commit we thought had failed went through: the order is
			// complete, not failed.
			return s.finish(ctx, r, Confirmed, nil, false)
		}
		s.opts.Logger.WarnContext(ctx, "compensation deferred: cannot release the reservation", "order", r.ID, "error", err)
		return Order{}, cause
	}
	s.opts.Metrics.compensation("release")

	// If payments cannot be reached now, the order still fails (the
	// customer's answer cannot wait), marked unsettled: recovery voids it
	// as soon as payments answers, refunding any charge it finds.
	unsettled := false
	if err := s.voidCharge(ctx, r); err != nil {
		s.opts.Logger.WarnContext(ctx, "charge left to recovery: cannot reach payments", "order", r.ID, "error", err)
		unsettled = true
	}
	return s.finish(ctx, r, Failed, cause, unsettled)
}

// voidCharge closes the order to charges and refunds the charge it had,
// if that one succeeded. Voiding mirrors releasing the reservation: a
// Charge request still in flight when the saga failed is refused when it
// arrives, so no money can be taken for a failed order, however late.
func (s *checkoutSaga) voidCharge(ctx context.Context, r record) error {
	charge, err := s.payments.Void(ctx, r.ID)
	if err != nil {
		return err
	}
	if charge.Status != payments.Succeeded {
		return nil // never charged (now never will be), declined, or refunded
	}
	if _, err := s.payments.Refund(ctx, charge.ID); err != nil {
		return err
	}
	s.opts.Metrics.compensation("refund")
	return nil
}

// finish records the order's terminal status and returns what the caller
// gets: the order, or the error that ended it.
func (s *checkoutSaga) finish(ctx context.Context, r record, status Status, cause error, unsettled bool) (Order, error) {
	won, err := s.store.finish(ctx, r, status, cause, unsettled, s.opts.Now())
	if err != nil {
		return Order{}, err
	}
	if won {
		s.opts.EventWritten()
	}
	if !won { // recovery finished it first: answer with what it recorded
		final, err := s.store.get(ctx, r.ID)
		if err != nil {
			return Order{}, err
		}
		return replay(final, final.RequestHash)
	}
	s.opts.Metrics.outcome(status, cause)
	step(ctx, "finish", attribute.String("glasshouse.order.status", string(status)))
	if cause != nil {
		return Order{}, cause
	}
	r.Status = status
	return r.Order, nil
}

// step marks a saga step on the current span, so a trace reads like the
// saga's story.
func step(ctx context.Context, name string, attrs ...attribute.KeyValue) {
	trace.SpanFromContext(ctx).AddEvent("saga."+name, trace.WithAttributes(attrs...))
}

// GetOrder implements Service.
func (s *checkoutSaga) GetOrder(ctx context.Context, userID, orderID string) (Order, error) {
	if err := ident.UserID(userID); err != nil {
		return Order{}, err
	}
	if err := ident.OrderID(orderID); err != nil {
		return Order{}, err
	}
	r, err := s.store.get(ctx, orderID)
	if err != nil {
		return Order{}, err
	}
	if r.UserID != userID {
		return Order{}, errs.E(errs.NotFound, CodeOrderNotFound, "no order %s", orderID)
	}
	return r.Order, nil
}

// ListOrders implements Service. It reads one order more than the page
// holds, to know whether a next page exists without a second query.
func (s *checkoutSaga) ListOrders(ctx context.Context, userID string, page Page) (OrderPage, error) {
	if err := ident.UserID(userID); err != nil {
		return OrderPage{}, err
	}
	limit, err := checkLimit(page.Limit)
	if err != nil {
		return OrderPage{}, err
	}
	var after *cursor
	if page.Cursor != "" {
		c, err := parseCursor(page.Cursor)
		if err != nil {
			return OrderPage{}, err
		}
		after = &c
	}
	rs, err := s.store.listByUser(ctx, userID, after, limit+1)
	if err != nil {
		return OrderPage{}, err
	}
	out := OrderPage{Orders: make([]Order, 0, min(len(rs), limit))}
	for _, r := range rs[:min(len(rs), limit)] {
		out.Orders = append(out.Orders, r.Order)
	}
	if len(rs) > limit {
		last := out.Orders[limit-1]
		out.NextCursor = cursor{createdAt: last.CreatedAt, orderID: last.ID}.String()
	}
	return out, nil
}

func mergeItems(items []Item) []Item {
	qty := map[string]int{}
	for _, it := range items {
		qty[it.SKU] += it.Quantity
	}
	out := make([]Item, 0, len(qty))
	for sku, q := range qty {
		out = append(out, Item{SKU: sku, Quantity: q})
	}
	slices.SortFunc(out, func(a, b Item) int { return strings.Compare(a.SKU, b.SKU) })
	return out
}

// requestHash fingerprints what an idempotent request asked for, so a key
// reused for a different order is refused. Only the card's last digits
// enter it: a full card number is never stored, hashed or not.
func requestHash(items []Item, card string) string {
	h := sha256.New()
	for _, it := range items {
		fmt.Fprintf(h, "%s×%d;", it.SKU, it.Quantity)
	}
	fmt.Fprintf(h, "card…%s", card[len(card)-4:])
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func toInventoryItems(lines []Line) []inventory.Item {
	out := make([]inventory.Item, len(lines))
	for i, l := range lines {
		out[i] = inventory.Item{SKU: l.SKU, Quantity: l.Quantity}
	}
	return out
}
