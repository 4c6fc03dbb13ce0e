// Package gateway is glasshouse's only public entry. It owns no data: it
// checks who is calling (JWT), limits how fast each client may call, and
// routes each public API call to the service that owns it, found in Consul
// through that service's own client. Errors from behind pass through with
// their codes, so a client sees "out_of_stock" whichever hop said it.
package gateway

import (
	"context"

	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
	"github.com/glasshouse-dev/glasshouse/services/users"
)

// Service is the public API. The user of the authenticated methods is the
// subject of the caller's verified token, and the token itself travels on
// to orders in ctx. Every identifier (a SKU, an order ID), the
// Idempotency-Key and the page are checked before any call leaves: a bad
// one is Invalid (docs/problems.md lists each), never an upstream call.
type Service interface {
	CreateUser(ctx context.Context, email, password, name string) (users.User, error)
	Login(ctx context.Context, email, password string) (users.Token, error)
	ListProducts(ctx context.Context) ([]inventory.Product, error)
	GetProduct(ctx context.Context, sku string) (inventory.Product, error)
	// GetRecommendations reads limit as recommendations does
	// (recommendations.ParseLimit).
	GetRecommendations(ctx context.Context, sku, limit string) (Recommendations, error)
	PlaceOrder(ctx context.Context, userID, idempotencyKey string, items []orders.Item, cardNumber string) (orders.Order, error)
	// ListOrders reads limit and cursor as orders does (orders.ParsePage).
	ListOrders(ctx context.Context, userID, limit, cursor string) (orders.OrderPage, error)
	GetOrder(ctx context.Context, userID, orderID string) (orders.Order, error)
}

// Backends are the services the gateway routes to: their clients.
type Backends struct {
	Users     users.Service
	Inventory inventory.Service
	Orders    orders.Service
	// Recommendations is called with a short budget: when it does not
	// answer, the gateway answers a fallback.
	Recommendations recommendations.Service
}

// Options adjust the gateway; the zero value is the production behaviour.
type Options struct {
	// SkipIdentifierValidation passes malformed SKUs and order IDs on to
	// the services. It exists only so the chaos suite can show what the
	// checks prevent; it is never to be used in production.
	SkipIdentifierValidation bool
	// NoRecommendationFallback passes recommendations' failures on to
	// the client instead of answering the catalogue. It exists only so
	// the chaos suite can show what the fallback prevents; never use it in
	// production.
	NoRecommendationFallback bool
}

// NewService returns the public API over the backends.
func NewService(b Backends, opts Options) Service {
	return gateway{Backends: b, validateIdentifiers: !opts.SkipIdentifierValidation, fallback: !opts.NoRecommendationFallback, catalogue: &catalogue{}}
}
