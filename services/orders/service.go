// Package orders owns orders and the checkout saga.
//
// Placing an order is a saga across two services that own their own data:
// reserve the stock (inventory), charge the card (payments), commit the
// reservation (inventory). Every step is recorded in the orders store
// before the next begins, every remote call is idempotent by order ID, and
// every step has a compensation (release the reservation, refund the
// charge). So a checkout stays consistent when any process dies at any
// moment: the recovery loop finds orders left half-done and drives each to
// a terminal state, forward when the customer has paid, backward
// otherwise.
package orders

import (
	"context"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/payments"
)

// Service is the orders domain. The user is whoever the caller
// authenticated; over HTTP that is the subject of the bearer token.
type Service interface {
	// PlaceOrder runs the checkout saga for items, paying with card.
	// The idempotency key makes it safe to retry: the same user and key
	// replay the first outcome, success or failure, and never charge
	// twice.
	PlaceOrder(ctx context.Context, userID, idempotencyKey string, items []Item, cardNumber string) (Order, error)
	// GetOrder returns one of the user's orders; another user's order is
	// NotFound, never Forbidden, so order IDs cannot be probed.
	GetOrder(ctx context.Context, userID, orderID string) (Order, error)
	// ListOrders returns one page of the user's orders, newest first
	// (ties broken by ID, so the order is stable). page.Limit is 1 to
	// MaxPageLimit orders, 0 meaning DefaultPageLimit; page.Cursor is ""
	// for the first page, else a NextCursor from the page before. A limit
	// out of range is Invalid invalid_limit, a cursor this service did not
	// issue is Invalid invalid_cursor.
	ListOrders(ctx context.Context, userID string, page Page) (OrderPage, error)
}

// NewService returns the orders service over store, calling inventory and
// payments (their clients, in production).
func NewService(store *Store, inv Inventory, pay Payments, opts Options) Service {
	return newCheckoutSaga(store, inv, pay, opts)
}

// NewRecovery returns the recovery loop for the checkouts that the service
// built with the same arguments leaves half-done; run it beside the
// service (Recovery.Run). The two need no shared memory: each saga's step
// and lease are recorded in the store.
func NewRecovery(store *Store, inv Inventory, pay Payments, opts Options) *Recovery {
	return &Recovery{saga: newCheckoutSaga(store, inv, pay, opts)}
}

// Page asks for one page of a list.
type Page struct {
	Limit  int
	Cursor string
}

// OrderPage is one page of a user's orders. NextCursor, when not empty,
// asks for the page after this one; it is empty on the last page.
type OrderPage struct {
	Orders     []Order `json:"orders"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// Status is where an order is in the checkout.
type Status string

// An order is PENDING while its saga runs, then CONFIRMED (paid, stock
// committed), REJECTED (refused before any money moved: out of stock,
// unknown product) or FAILED (declined card, unavailable dependency,
// interrupted checkout; anything reserved or charged was given back).
const (
	Pending   Status = "PENDING"
	Confirmed Status = "CONFIRMED"
	Rejected  Status = "REJECTED"
	Failed    Status = "FAILED"
)

// Terminal reports whether the saga is over for an order in status s.
func (s Status) Terminal() bool { return s != Pending }

// Item is a quantity of one product.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Line is an ordered item with the unit price it was sold at.
type Line struct {
	SKU            string `json:"sku"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Order is a checkout and its outcome.
type Order struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	Status     Status    `json:"status"`
	TotalCents int64     `json:"total_cents"`
	Currency   string    `json:"currency"`
	Items      []Line    `json:"items"`
	CreatedAt  time.Time `json:"created_at"`
	// FailureCode and FailureReason say why an order was REJECTED or
	// FAILED: the error code the customer got, and its detail.
	FailureCode   string `json:"failure_code,omitempty"`
	FailureReason string `json:"failure_reason,omitempty"`
}

// Error codes this service returns, besides those passed through from
// inventory (out_of_stock, unknown_product) and payments (card_declined).
const (
	CodeOrderNotFound         = "order_not_found"
	CodeMissingIdempotencyKey = "missing_idempotency_key"
	CodeIdempotencyMismatch   = "idempotency_mismatch"
	CodeOrderInProgress       = "order_in_progress"
	CodeInvalidItems          = "invalid_items"
	CodeInvalidCard           = "invalid_card"
	CodeMixedCurrency         = "mixed_currency"
	CodeInvalidSKU            = "invalid_sku"
	CodeInvalidOrderID        = "invalid_order_id"
	CodeInvalidUserID         = "invalid_user_id"
	CodeInvalidLimit          = "invalid_limit"
	CodeInvalidCursor         = "invalid_cursor"
	// CodeInterrupted is the failure code of an order whose checkout was
	// cut short by a crash and compensated by the recovery loop.
	CodeInterrupted = "checkout_interrupted"
)

// Limits on one order: at most maxItems lines, and at most maxQuantity
// units of one SKU in the whole order (lines naming the same SKU are
// added up before the cap is checked, so splitting cannot pass it).
const (
	maxItems     = 50
	maxQuantity  = 100
	maxKeyLength = 128
)

// Page sizes of ListOrders. A limit above the maximum is refused rather
// than quietly cut, so a client that asked for 1000 learns the rule
// instead of mistaking the first 100 for everything.
const (
	DefaultPageLimit = 20
	MaxPageLimit     = 100
)

// Inventory is what the saga needs from the inventory service; its
// client (inventory.NewClient) provides it.
type Inventory interface {
	GetProduct(ctx context.Context, sku string) (inventory.Product, error)
	Reserve(ctx context.Context, orderID string, items []inventory.Item) (inventory.Reservation, error)
	Commit(ctx context.Context, orderID string) (inventory.Reservation, error)
	Release(ctx context.Context, orderID string) (inventory.Reservation, error)
}

// Payments is what the saga needs from the payments service; its client
// (payments.NewClient) provides it.
type Payments interface {
	Charge(ctx context.Context, req payments.ChargeRequest) (payments.Charge, error)
	Refund(ctx context.Context, chargeID string) (payments.Charge, error)
	FindCharge(ctx context.Context, orderID string) (payments.Charge, error)
	Void(ctx context.Context, orderID string) (payments.Charge, error)
}

func validateOrder(key string, items []Item, card string) error {
	switch {
	case strings.TrimSpace(key) == "":
		return errs.E(errs.Invalid, CodeMissingIdempotencyKey, "an Idempotency-Key header is required to place an order")
	case len(key) > maxKeyLength:
		return errs.E(errs.Invalid, CodeMissingIdempotencyKey, "the Idempotency-Key must be at most %d bytes", maxKeyLength)
	case len(items) == 0:
		return errs.E(errs.Invalid, CodeInvalidItems, "items must hold at least one item")
	case len(items) > maxItems:
		return errs.E(errs.Invalid, CodeInvalidItems, "items must hold at most %d items", maxItems)
	}
	total := make(map[string]int, len(items))
	for i, it := range items {
		if strings.TrimSpace(it.SKU) == "" {
			return errs.E(errs.Invalid, CodeInvalidItems, "items[%d].sku must not be empty", i)
		}
		if !ident.Valid(it.SKU) {
			return errs.E(errs.Invalid, CodeInvalidSKU, "items[%d].sku %s is not a valid SKU: 1 to %d letters, digits, '_' or '-', starting with a letter or digit",
				i, ident.Quote(it.SKU), ident.MaxLen)
		}
		if it.Quantity <= 0 || it.Quantity > maxQuantity {
			return errs.E(errs.Invalid, CodeInvalidItems, "items[%d].quantity must be between 1 and %d, got %d", i, maxQuantity, it.Quantity)
		}
		// Each line is at most maxQuantity and there are at most maxItems
		// lines, so this sum cannot overflow.
		if total[it.SKU] += it.Quantity; total[it.SKU] > maxQuantity {
			return errs.E(errs.Invalid, CodeInvalidItems, "the order asks for %d of %s over several lines; at most %d of one SKU per order",
				total[it.SKU], it.SKU, maxQuantity)
		}
	}
	// The card's digits are checked here too, so a typo is a 400 before
	// any stock is reserved; payments stays the judge of approval.
	if n := len(card); n < 12 || n > 19 || strings.Trim(card, "0123456789") != "" {
		return errs.E(errs.Invalid, CodeInvalidCard, "card_number must be 12 to 19 digits")
	}
	return nil
}
