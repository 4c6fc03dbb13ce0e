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
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
)

// ServiceName is the gateway's name in Consul, metrics and traces.
const ServiceName = "gateway"

// Backends are the services the gateway routes to: their clients.
type Backends struct {
	Users     users.Service
	Inventory inventory.Service
	Orders    orders.Service
}

// Endpoints are the public API's operations.
type Endpoints struct {
	CreateUserEndpoint   endpoint.Endpoint
	LoginEndpoint        endpoint.Endpoint
	ListProductsEndpoint endpoint.Endpoint
	GetProductEndpoint   endpoint.Endpoint
	PlaceOrderEndpoint   endpoint.Endpoint
	ListOrdersEndpoint   endpoint.Endpoint
	GetOrderEndpoint     endpoint.Endpoint
}

// Middleware returns the endpoint middleware for the named endpoint.
type Middleware func(name string) endpoint.Middleware

// Public requests. Authenticated ones carry the caller's user ID and
// token, taken from the Authorization header after verification.
type (
	CreateUserRequest struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Name     string `json:"name"`
	}
	LoginRequest struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	GetProductRequest struct {
		SKU string
	}
	PlaceOrderRequest struct {
		Caller         Caller        `json:"-"`
		IdempotencyKey string        `json:"-"`
		Items          []orders.Item `json:"items"`
		CardNumber     string        `json:"card_number"`
	}
	// ListOrdersRequest asks for one page (query parameters limit and
	// cursor, checked here as orders checks them).
	ListOrdersRequest struct {
		Caller Caller
		Page   orders.Page
	}
	GetOrderRequest struct {
		Caller  Caller
		OrderID string
	}
)

// Caller is an authenticated user and the token that proved it; the token
// is passed on so orders can check it too.
type Caller struct {
	UserID string
	Token  string
}

// context returns ctx carrying the caller's token for the calls behind.
func (c Caller) context(ctx context.Context) context.Context {
	return transport.WithBearerToken(ctx, c.Token)
}

// NewEndpoints builds the public operations over the backends.
func NewEndpoints(b Backends, mw Middleware) Endpoints {
	return Endpoints{
		CreateUserEndpoint: mw("CreateUser")(transport.Endpoint(func(ctx context.Context, req CreateUserRequest) (users.User, error) {
			return b.Users.Register(ctx, req.Email, req.Password, req.Name)
		})),
		LoginEndpoint: mw("Login")(transport.Endpoint(func(ctx context.Context, req LoginRequest) (users.Token, error) {
			return b.Users.Login(ctx, req.Email, req.Password)
		})),
		ListProductsEndpoint: mw("ListProducts")(transport.Endpoint(func(ctx context.Context, _ struct{}) (inventory.ListProductsResponse, error) {
			products, err := b.Inventory.ListProducts(ctx)
			return inventory.ListProductsResponse{Products: products}, err
		})),
		GetProductEndpoint: mw("GetProduct")(transport.Endpoint(func(ctx context.Context, req GetProductRequest) (inventory.Product, error) {
			return b.Inventory.GetProduct(ctx, req.SKU)
		})),
		PlaceOrderEndpoint: mw("PlaceOrder")(transport.Endpoint(func(ctx context.Context, req PlaceOrderRequest) (orders.Order, error) {
			return b.Orders.PlaceOrder(req.Caller.context(ctx), req.Caller.UserID, req.IdempotencyKey, req.Items, req.CardNumber)
		})),
		ListOrdersEndpoint: mw("ListOrders")(transport.Endpoint(func(ctx context.Context, req ListOrdersRequest) (orders.ListOrdersResponse, error) {
			return b.Orders.ListOrders(req.Caller.context(ctx), req.Caller.UserID, req.Page)
		})),
		GetOrderEndpoint: mw("GetOrder")(transport.Endpoint(func(ctx context.Context, req GetOrderRequest) (orders.Order, error) {
			return b.Orders.GetOrder(req.Caller.context(ctx), req.Caller.UserID, req.OrderID)
		})),
	}
}
