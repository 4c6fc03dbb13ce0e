// Package inventory owns the product catalogue and its stock.
//
// Stock moves through reservations: an order first reserves every item it
// needs, all or nothing; a reservation is then committed (the units are
// sold) or released (the units return), and one that is neither within its
// time to live expires and returns its units on its own. Every operation is
// idempotent per order ID, so a caller that lost an answer may ask again.
//
// Stock is conserved: for every product, available units + units held by
// open reservations + units committed = the units ever stocked.
package inventory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
)

// Service is the inventory domain. Every method takes the caller's context
// first, so traces and deadlines flow through.
type Service interface {
	// ListProducts returns the whole catalogue, ordered by SKU.
	ListProducts(ctx context.Context) ([]Product, error)
	// GetProduct returns one product, or NotFound.
	GetProduct(ctx context.Context, sku string) (Product, error)
	// Reserve holds every item for orderID, or none: if one item is short
	// it fails with Conflict out_of_stock naming the SKU. Reserving again
	// for the same order with the same items returns the first reservation.
	Reserve(ctx context.Context, orderID string, items []Item) (Reservation, error)
	// Commit marks an order's reservation as sold. Committing twice is a
	// no-op; committing a released or expired reservation is a Conflict.
	Commit(ctx context.Context, orderID string) (Reservation, error)
	// Release returns a held reservation's units to stock. Releasing twice
	// is a no-op, and releasing an order that reserved nothing records
	// that, so a Reserve arriving late for it fails instead of leaking
	// stock.
	Release(ctx context.Context, orderID string) (Reservation, error)
}

// Product is a catalogue entry with the units available to reserve.
type Product struct {
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	PriceCents  int64  `json:"price_cents"`
	Currency    string `json:"currency"`
	Available   int    `json:"available"`
}

// Item is a quantity of one product.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// ReservationStatus is where a reservation is in its life.
type ReservationStatus string

// A reservation starts Held and ends Committed, Released or Expired.
const (
	Held      ReservationStatus = "held"
	Committed ReservationStatus = "committed"
	Released  ReservationStatus = "released"
	Expired   ReservationStatus = "expired"
)

// Reservation is the stock held for one order.
type Reservation struct {
	OrderID   string            `json:"order_id"`
	Status    ReservationStatus `json:"status"`
	Items     []Item            `json:"items"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// Error codes this service returns, besides the generic ones.
const (
	CodeOutOfStock           = "out_of_stock"
	CodeUnknownProduct       = "unknown_product"
	CodeReservationNotFound  = "reservation_not_found"
	CodeReservationReleased  = "reservation_released"
	CodeReservationExpired   = "reservation_expired"
	CodeReservationCommitted = "reservation_committed"
	CodeReservationMismatch  = "reservation_mismatch"
	CodeInvalidItems         = "invalid_items"
	CodeInvalidOrderID       = "invalid_order_id"
	CodeInvalidSKU           = "invalid_sku"
)

// Limits on a reservation request, so one call cannot lock the catalogue.
// SKUs and order IDs follow the identifier grammar of package ident.
const (
	maxItems    = 100
	maxQuantity = 1000
)

// Options tune the service. The zero value is usable.
type Options struct {
	// ReservationTTL is how long a reservation holds stock before it
	// expires; the default 15 minutes outlives any checkout.
	ReservationTTL time.Duration
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// DefaultReservationTTL is used when Options.ReservationTTL is zero.
const DefaultReservationTTL = 15 * time.Minute

type service struct {
	store *Store
	ttl   time.Duration
	now   func() time.Time
}

// NewService returns the inventory service backed by store.
func NewService(store *Store, opts Options) Service {
	if opts.ReservationTTL <= 0 {
		opts.ReservationTTL = DefaultReservationTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &service{store: store, ttl: opts.ReservationTTL, now: opts.Now}
}

func (s *service) ListProducts(ctx context.Context) ([]Product, error) {
	return s.store.ListProducts(ctx)
}

func (s *service) GetProduct(ctx context.Context, sku string) (Product, error) {
	if strings.TrimSpace(sku) == "" {
		return Product{}, errs.E(errs.Invalid, CodeInvalidSKU, "sku must not be empty")
	}
	// Checked here, not only at the gateway, so that no transport and no
	// caller inside the platform can make the store look up a megabyte.
	if err := ident.SKU(sku); err != nil {
		return Product{}, err
	}
	return s.store.GetProduct(ctx, sku)
}

func (s *service) Reserve(ctx context.Context, orderID string, items []Item) (Reservation, error) {
	if err := validateOrderID(orderID); err != nil {
		return Reservation{}, err
	}
	merged, err := normalizeItems(items)
	if err != nil {
		return Reservation{}, err
	}
	now := s.now()
	return s.store.Reserve(ctx, orderID, merged, now, now.Add(s.ttl))
}

func (s *service) Commit(ctx context.Context, orderID string) (Reservation, error) {
	if err := validateOrderID(orderID); err != nil {
		return Reservation{}, err
	}
	return s.store.Commit(ctx, orderID, s.now())
}

func (s *service) Release(ctx context.Context, orderID string) (Reservation, error) {
	if err := validateOrderID(orderID); err != nil {
		return Reservation{}, err
	}
	return s.store.Release(ctx, orderID, s.now())
}

func validateOrderID(id string) error {
	if strings.TrimSpace(id) == "" {
		return errs.E(errs.Invalid, CodeInvalidOrderID, "order_id must not be empty")
	}
	return ident.OrderID(id)
}

// normalizeItems validates items and merges repeated SKUs, returning them
// sorted by SKU: a canonical form that makes idempotency checks a simple
// comparison and makes every transaction lock rows in the same order.
func normalizeItems(items []Item) ([]Item, error) {
	if len(items) == 0 {
		return nil, errs.E(errs.Invalid, CodeInvalidItems, "items must hold at least one item")
	}
	if len(items) > maxItems {
		return nil, errs.E(errs.Invalid, CodeInvalidItems, "items must hold at most %d items", maxItems)
	}
	qty := make(map[string]int, len(items))
	for i, it := range items {
		if strings.TrimSpace(it.SKU) == "" {
			return nil, errs.E(errs.Invalid, CodeInvalidItems, "items[%d].sku must not be empty", i)
		}
		// A present but malformed SKU is its own code, the one the gateway
		// and orders answer for the same input.
		if err := ident.SKU(it.SKU); err != nil {
			return nil, errs.E(errs.Invalid, CodeInvalidSKU, "items[%d].sku %s is not a valid SKU: 1 to %d letters, digits, '_' or '-', starting with a letter or digit",
				i, ident.Quote(it.SKU), ident.MaxLen)
		}
		if it.Quantity <= 0 {
			return nil, errs.E(errs.Invalid, CodeInvalidItems, "items[%d].quantity must be positive, got %d", i, it.Quantity)
		}
		qty[it.SKU] += it.Quantity
		if qty[it.SKU] > maxQuantity {
			return nil, errs.E(errs.Invalid, CodeInvalidItems, "quantity of %s must be at most %d", it.SKU, maxQuantity)
		}
	}
	merged := make([]Item, 0, len(qty))
	for sku, q := range qty {
		merged = append(merged, Item{SKU: sku, Quantity: q})
	}
	slices.SortFunc(merged, func(a, b Item) int { return strings.Compare(a.SKU, b.SKU) })
	return merged, nil
}

// String makes items readable in logs and error details.
func (it Item) String() string { return fmt.Sprintf("%d×%s", it.Quantity, it.SKU) }
