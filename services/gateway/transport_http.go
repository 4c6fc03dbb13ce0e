package gateway

import (
	"context"
	"net/http"

	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/transport"
	httptransport "github.com/go-kit/kit/transport/http"
)

// Authenticate turns a bearer token into the user it was issued to
// (users.Verifier.Verify), or fails with an Unauthenticated error: 401.
type Authenticate func(token string) (userID string, err error)

// NewHTTPHandler is the public API. Everything else (the services' own
// routes, payments' fault knobs) is unreachable through the gateway.
//
//	POST /api/users         sign up                     public
//	POST /api/login         get a token                 public
//	GET  /api/products      the catalogue               public
//	GET  /api/products/{sku}                            public
//	POST /api/orders        check out (Idempotency-Key) bearer token
//	GET  /api/orders        your orders                 bearer token
//	GET  /api/orders/{id}   one of your orders          bearer token
func NewHTTPHandler(e Endpoints, auth Authenticate, limiter *RateLimiter) http.Handler {
	r := transport.NewRouter()
	r.Endpoint("POST", "/api/users", e.CreateUserEndpoint, decodeJSON[CreateUserRequest], transport.EncodeJSON(http.StatusCreated))
	r.Endpoint("POST", "/api/login", e.LoginEndpoint, decodeJSON[LoginRequest], transport.EncodeJSON(http.StatusOK))
	r.Endpoint("GET", "/api/products", e.ListProductsEndpoint, decodeNothing, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("GET", "/api/products/{sku}", e.GetProductEndpoint, decodeGetProduct, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("POST", "/api/orders", e.PlaceOrderEndpoint, decodePlaceOrder(auth), transport.EncodeJSON(http.StatusCreated))
	r.Endpoint("GET", "/api/orders", e.ListOrdersEndpoint, decodeListOrders(auth), transport.EncodeJSON(http.StatusOK))
	r.Endpoint("GET", "/api/orders/{id}", e.GetOrderEndpoint, decodeGetOrder(auth), transport.EncodeJSON(http.StatusOK))
	return limiter.Middleware(r)
}

func decodeJSON[T any](_ context.Context, r *http.Request) (any, error) {
	return transport.DecodeJSON[T](r)
}

func decodeNothing(context.Context, *http.Request) (any, error) { return struct{}{}, nil }

func decodeGetProduct(_ context.Context, r *http.Request) (any, error) {
	return GetProductRequest{SKU: r.PathValue("sku")}, nil
}

func caller(r *http.Request, auth Authenticate) (Caller, error) {
	token, err := transport.BearerTokenFrom(r)
	if err != nil {
		return Caller{}, err
	}
	userID, err := auth(token)
	if err != nil {
		return Caller{}, err
	}
	return Caller{UserID: userID, Token: token}, nil
}

// The authenticated decoders check the token first: a request without a
// valid one is a 401 whatever its body holds.

func decodePlaceOrder(auth Authenticate) httptransport.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		c, err := caller(r, auth)
		if err != nil {
			return nil, err
		}
		req, err := transport.DecodeJSON[PlaceOrderRequest](r)
		if err != nil {
			return nil, err
		}
		req.Caller, req.IdempotencyKey = c, r.Header.Get(orders.IdempotencyKeyHeader)
		return req, nil
	}
}

func decodeListOrders(auth Authenticate) httptransport.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		c, err := caller(r, auth)
		return ListOrdersRequest{Caller: c}, err
	}
}

func decodeGetOrder(auth Authenticate) httptransport.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		c, err := caller(r, auth)
		return GetOrderRequest{Caller: c, OrderID: r.PathValue("id")}, err
	}
}
