package inventory

import (
	"context"
	"net/http"

	"github.com/glasshouse-dev/glasshouse/transport"
)

// ServiceName is the inventory service's name in Consul, metrics and traces.
const ServiceName = "inventory"

// API is the inventory service on the wire, each method declared once
// below: the server's routes and endpoints and the client are built from
// it. Every call is idempotent: reads, and writes keyed by order ID.
var API = transport.NewAPI[Service](ServiceName, listProducts, getProduct, reserve, commit, release)

type (
	method[Req, Resp any] = transport.Method[Service, Req, Resp]
	orderMethod           = method[OrderRequest, Reservation]
)

var (
	listProducts = method[struct{}, ListProductsResponse]{Name: "ListProducts", Route: "GET /products", Idempotent: true,
		Serve: func(s Service, ctx context.Context, _ struct{}) (ListProductsResponse, error) {
			products, err := s.ListProducts(ctx)
			return ListProductsResponse{Products: products}, err
		}}
	getProduct = method[ProductRequest, Product]{Name: "GetProduct", Route: "GET /products/{sku}", Idempotent: true,
		Serve: func(s Service, ctx context.Context, req ProductRequest) (Product, error) {
			return s.GetProduct(ctx, req.SKU)
		}}
	reserve = method[ReserveRequest, Reservation]{Name: "Reserve", Route: "POST /reservations", Status: http.StatusCreated, Idempotent: true,
		Serve: func(s Service, ctx context.Context, req ReserveRequest) (Reservation, error) {
			return s.Reserve(ctx, req.OrderID, req.Items)
		}}
	commit = orderMethod{Name: "Commit", Route: "POST /reservations/{orderID}/commit", Idempotent: true,
		Serve: func(s Service, ctx context.Context, req OrderRequest) (Reservation, error) {
			return s.Commit(ctx, req.OrderID)
		}}
	release = orderMethod{Name: "Release", Route: "DELETE /reservations/{orderID}", Idempotent: true,
		Serve: func(s Service, ctx context.Context, req OrderRequest) (Reservation, error) {
			return s.Release(ctx, req.OrderID)
		}}
)

// Requests and responses on the wire (snake_case, money in integer cents).
type (
	ListProductsResponse struct {
		Products []Product `json:"products"`
	}
	ProductRequest struct {
		SKU string `path:"sku" json:"-"`
	}
	ReserveRequest struct {
		OrderID string `json:"order_id"`
		Items   []Item `json:"items"`
	}
	OrderRequest struct {
		OrderID string `path:"orderID" json:"-"`
	}
)

//go:generate go run github.com/glasshouse-dev/glasshouse/transport/cmd/clientgen

// NewClient returns inventory over the calls build makes: over discovery
// with breakers and retries (transport.Remote.Factory), or to one
// instance (transport.NewDirectFactory). Errors come back typed, as the
// service returned them; an unreachable inventory is errs.Unavailable.
//
// Its methods are in client_gen.go, which clientgen writes from the
// declarations above.
func NewClient(build transport.ClientFactory) Service { return client{API.Client(build)} }
