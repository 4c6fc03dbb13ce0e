package inventory

import (
	"context"

	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
)

// Endpoints is the inventory service as a set of go-kit endpoints, one per
// method. On the server it wraps the Service; on the client it wraps HTTP
// calls, and its methods implement Service again, so a caller holding an
// inventory.Service cannot tell the difference.
type Endpoints struct {
	ListProductsEndpoint endpoint.Endpoint
	GetProductEndpoint   endpoint.Endpoint
	ReserveEndpoint      endpoint.Endpoint
	CommitEndpoint       endpoint.Endpoint
	ReleaseEndpoint      endpoint.Endpoint
}

// Middleware returns the endpoint middleware for the named endpoint, such
// as observability's tracing, metrics and logging stack.
type Middleware func(name string) endpoint.Middleware

// NewEndpoints wraps svc's methods as endpoints, each decorated by mw.
func NewEndpoints(svc Service, mw Middleware) Endpoints {
	return Endpoints{
		ListProductsEndpoint: transport.Endpoint(func(ctx context.Context, _ ListProductsRequest) (ListProductsResponse, error) {
			products, err := svc.ListProducts(ctx)
			return ListProductsResponse{Products: products}, err
		}),
		GetProductEndpoint: transport.Endpoint(func(ctx context.Context, req GetProductRequest) (Product, error) {
			return svc.GetProduct(ctx, req.SKU)
		}),
		ReserveEndpoint: transport.Endpoint(func(ctx context.Context, req ReserveRequest) (Reservation, error) {
			return svc.Reserve(ctx, req.OrderID, req.Items)
		}),
		CommitEndpoint: transport.Endpoint(func(ctx context.Context, req CommitRequest) (Reservation, error) {
			return svc.Commit(ctx, req.OrderID)
		}),
		ReleaseEndpoint: transport.Endpoint(func(ctx context.Context, req ReleaseRequest) (Reservation, error) {
			return svc.Release(ctx, req.OrderID)
		}),
	}.With(mw)
}

// With returns the set with each endpoint decorated by mw(its name).
func (e Endpoints) With(mw Middleware) Endpoints {
	return Endpoints{
		ListProductsEndpoint: mw("ListProducts")(e.ListProductsEndpoint),
		GetProductEndpoint:   mw("GetProduct")(e.GetProductEndpoint),
		ReserveEndpoint:      mw("Reserve")(e.ReserveEndpoint),
		CommitEndpoint:       mw("Commit")(e.CommitEndpoint),
		ReleaseEndpoint:      mw("Release")(e.ReleaseEndpoint),
	}
}

// Requests and responses of the endpoints. Their JSON forms are the wire
// contract (snake_case, money in integer cents).
type (
	ListProductsRequest  struct{}
	ListProductsResponse struct {
		Products []Product `json:"products"`
	}
	GetProductRequest struct {
		SKU string `json:"sku"`
	}
	ReserveRequest struct {
		OrderID string `json:"order_id"`
		Items   []Item `json:"items"`
	}
	CommitRequest struct {
		OrderID string `json:"order_id"`
	}
	ReleaseRequest struct {
		OrderID string `json:"order_id"`
	}
)

// ListProducts implements Service over the endpoints.
func (e Endpoints) ListProducts(ctx context.Context) ([]Product, error) {
	resp, err := transport.Call[ListProductsResponse](ctx, e.ListProductsEndpoint, ListProductsRequest{})
	return resp.Products, err
}

// GetProduct implements Service over the endpoints.
func (e Endpoints) GetProduct(ctx context.Context, sku string) (Product, error) {
	return transport.Call[Product](ctx, e.GetProductEndpoint, GetProductRequest{SKU: sku})
}

// Reserve implements Service over the endpoints.
func (e Endpoints) Reserve(ctx context.Context, orderID string, items []Item) (Reservation, error) {
	return transport.Call[Reservation](ctx, e.ReserveEndpoint, ReserveRequest{OrderID: orderID, Items: items})
}

// Commit implements Service over the endpoints.
func (e Endpoints) Commit(ctx context.Context, orderID string) (Reservation, error) {
	return transport.Call[Reservation](ctx, e.CommitEndpoint, CommitRequest{OrderID: orderID})
}

// Release implements Service over the endpoints.
func (e Endpoints) Release(ctx context.Context, orderID string) (Reservation, error) {
	return transport.Call[Reservation](ctx, e.ReleaseEndpoint, ReleaseRequest{OrderID: orderID})
}
