package orders

import (
	"context"

	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
)

// Endpoints is the orders service as go-kit endpoints; on the client its
// methods implement Service again.
type Endpoints struct {
	PlaceOrderEndpoint endpoint.Endpoint
	GetOrderEndpoint   endpoint.Endpoint
	ListOrdersEndpoint endpoint.Endpoint
}

// Middleware returns the endpoint middleware for the named endpoint.
type Middleware func(name string) endpoint.Middleware

// NewEndpoints wraps svc's methods as endpoints, each decorated by mw.
func NewEndpoints(svc Service, mw Middleware) Endpoints {
	return Endpoints{
		PlaceOrderEndpoint: transport.Endpoint(func(ctx context.Context, req PlaceOrderRequest) (Order, error) {
			return svc.PlaceOrder(ctx, req.UserID, req.IdempotencyKey, req.Items, req.CardNumber)
		}),
		GetOrderEndpoint: transport.Endpoint(func(ctx context.Context, req GetOrderRequest) (Order, error) {
			return svc.GetOrder(ctx, req.UserID, req.OrderID)
		}),
		ListOrdersEndpoint: transport.Endpoint(func(ctx context.Context, req ListOrdersRequest) (ListOrdersResponse, error) {
			return svc.ListOrders(ctx, req.UserID, req.Page)
		}),
	}.With(mw)
}

// With returns the set with each endpoint decorated by mw(its name).
func (e Endpoints) With(mw Middleware) Endpoints {
	return Endpoints{
		PlaceOrderEndpoint: mw("PlaceOrder")(e.PlaceOrderEndpoint),
		GetOrderEndpoint:   mw("GetOrder")(e.GetOrderEndpoint),
		ListOrdersEndpoint: mw("ListOrders")(e.ListOrdersEndpoint),
	}
}

// Requests and responses. The user and the idempotency key travel in
// headers (Authorization, Idempotency-Key), never in the body.
type (
	PlaceOrderRequest struct {
		UserID         string `json:"-"`
		IdempotencyKey string `json:"-"`
		Items          []Item `json:"items"`
		CardNumber     string `json:"card_number"`
	}
	GetOrderRequest struct {
		UserID  string
		OrderID string
	}
	// ListOrdersRequest's page travels as the query parameters limit and
	// cursor.
	ListOrdersRequest struct {
		UserID string
		Page   Page
	}
	// ListOrdersResponse is a page of orders on the wire:
	// {"orders": [...], "next_cursor": "..."}, next_cursor omitted on the
	// last page.
	ListOrdersResponse = OrderPage
)

// PlaceOrder implements Service over the endpoints. Over HTTP the user is
// the subject of the bearer token in ctx (transport.WithBearerToken);
// userID is not sent.
func (e Endpoints) PlaceOrder(ctx context.Context, userID, key string, items []Item, card string) (Order, error) {
	return transport.Call[Order](ctx, e.PlaceOrderEndpoint, PlaceOrderRequest{UserID: userID, IdempotencyKey: key, Items: items, CardNumber: card})
}

// GetOrder implements Service over the endpoints.
func (e Endpoints) GetOrder(ctx context.Context, userID, orderID string) (Order, error) {
	return transport.Call[Order](ctx, e.GetOrderEndpoint, GetOrderRequest{UserID: userID, OrderID: orderID})
}

// ListOrders implements Service over the endpoints.
func (e Endpoints) ListOrders(ctx context.Context, userID string, page Page) (OrderPage, error) {
	return transport.Call[ListOrdersResponse](ctx, e.ListOrdersEndpoint, ListOrdersRequest{UserID: userID, Page: page})
}
