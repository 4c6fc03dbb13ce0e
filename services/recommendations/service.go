// Package recommendations answers "customers who bought X also bought Y".
// It learns from the orders.confirmed events orders publishes on the
// stream ORDERS, through a durable consumer (events.Consumer), and keeps
// its own model: for each pair of products, how many distinct customers
// bought both. It never calls another service, and no request path
// depends on it: the gateway answers a fallback when it is down.
package recommendations

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/events"
	"github.com/glasshouse-dev/glasshouse/ident"
)

// Service is the recommendations API.
type Service interface {
	// GetRecommendations returns at most limit products bought by the
	// customers who bought sku, most customers first. A product nobody
	// bought has none; that is not an error, as this service does not
	// know the catalogue.
	GetRecommendations(ctx context.Context, sku string, limit int) (Recommendations, error)
}

// Recommendations are the products bought with SKU.
type Recommendations struct {
	SKU             string           `json:"sku"`
	Recommendations []Recommendation `json:"recommendations"`
}

// Recommendation is one product and how many customers bought it and the
// product asked about.
type Recommendation struct {
	SKU       string `json:"sku"`
	Customers int    `json:"customers"`
}

// CodeInvalidLimit is the error code of a limit out of bounds.
const CodeInvalidLimit = "invalid_limit"

// DefaultLimit and MaxLimit bound how many recommendations one answer
// holds.
const (
	DefaultLimit = 5
	MaxLimit     = 50
)

// ParseLimit reads a limit as a query string carries it: empty is
// DefaultLimit.
func ParseLimit(s string) (int, error) {
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, errs.E(errs.Invalid, CodeInvalidLimit, "limit %s must be a whole number from 1 to %d", ident.Quote(s), MaxLimit)
	}
	return n, nil
}

type service struct{ store *Store }

// NewService returns the API over store.
func NewService(store *Store) Service { return service{store} }

func (s service) GetRecommendations(ctx context.Context, sku string, limit int) (Recommendations, error) {
	if err := ident.SKU(sku); err != nil {
		return Recommendations{}, err
	}
	if limit < 1 || limit > MaxLimit {
		return Recommendations{}, errs.E(errs.Invalid, CodeInvalidLimit, "limit %d must be from 1 to %d", limit, MaxLimit)
	}
	recs, err := s.store.Recommend(ctx, sku, limit)
	if err != nil {
		return Recommendations{}, err
	}
	return Recommendations{SKU: sku, Recommendations: recs}, nil
}

// What this service reads of orders' events (docs/events.md): the stream,
// the subject, and of the JSON only the fields it needs, so a field orders
// adds changes nothing here. The names are written out rather than
// imported, as this service depends on the event's contract, not on the
// orders package; a test checks they agree.
const (
	Stream           = "ORDERS"
	SubjectConfirmed = "orders.confirmed"
	// SchemaVersion is the one version of the event this service reads.
	SchemaVersion = 1
	// Durable is the consumer every replica shares.
	Durable = "recommendations"
)

// confirmedOrder is the part of an order.confirmed event this service
// reads.
type confirmedOrder struct {
	SchemaVersion int    `json:"schema_version"`
	EventID       string `json:"event_id"`
	OrderID       string `json:"order_id"`
	UserID        string `json:"user_id"`
	Items         []struct {
		SKU string `json:"sku"`
	} `json:"items"`
}

// Handler records each confirmed order in store: the customer bought its
// products. An event that cannot be decoded, has another version or
// misses what it needs is poison (dead-lettered, never retried forever);
// a store failure is transient, and the event comes again.
func Handler(store *Store) events.Handler {
	return func(ctx context.Context, m events.Message) error {
		p, err := decodeConfirmed(m)
		if err != nil {
			return events.Poison(err)
		}
		events.SetConversationID(ctx, p.OrderID)
		_, err = store.Record(ctx, p)
		return err
	}
}

func decodeConfirmed(m events.Message) (Purchase, error) {
	var ev confirmedOrder
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return Purchase{}, fmt.Errorf("decode %s event: %w", m.Subject, err)
	}
	if ev.SchemaVersion != SchemaVersion {
		return Purchase{}, fmt.Errorf("%s event %s has schema version %d; this service reads %d", m.Subject, ev.EventID, ev.SchemaVersion, SchemaVersion)
	}
	p := Purchase{EventID: ev.EventID, OrderID: ev.OrderID, UserID: ev.UserID, Sequence: m.Sequence}
	for _, it := range ev.Items {
		p.SKUs = append(p.SKUs, it.SKU)
	}
	if p.EventID == "" || p.OrderID == "" || p.UserID == "" || len(p.SKUs) == 0 {
		return Purchase{}, fmt.Errorf("%s event %q lacks an event ID, order ID, user ID or items", m.Subject, ev.EventID)
	}
	for _, sku := range p.SKUs {
		if err := ident.SKU(sku); err != nil {
			return Purchase{}, fmt.Errorf("%s event %s: %w", m.Subject, ev.EventID, err)
		}
	}
	return p, nil
}

// Purchase is one confirmed order as the model learns it.
type Purchase struct {
	EventID, OrderID, UserID string
	SKUs                     []string
	// Sequence is the event's sequence in the stream.
	Sequence uint64
}
