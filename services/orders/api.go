package orders

import (
	"context"
	"net/http"
	"strconv"

	"github.com/glasshouse-dev/glasshouse/transport"
)

// ServiceName is the orders service's name in Consul, metrics and traces.
const ServiceName = "orders"

// IdempotencyKeyHeader carries the client's key for POST /orders.
const IdempotencyKeyHeader = "Idempotency-Key"

// API is the orders service on the wire, each method declared once below:
// the server's routes and endpoints and the client are built from it.
// Every route needs a bearer token, which orders verifies itself
// (transport.WithAuth) rather than trusting the caller. Every call is
// idempotent: reads, and orders placed under an Idempotency-Key.
var API = transport.NewAPI[Service](ServiceName, placeOrder, listOrders, getOrder)

type method[Req, Resp any] = transport.Method[Service, Req, Resp]

var (
	placeOrder = method[PlaceOrderRequest, Order]{Name: "PlaceOrder", Route: "POST /orders", Status: http.StatusCreated, Idempotent: true,
		Serve: func(s Service, ctx context.Context, req PlaceOrderRequest) (Order, error) {
			return s.PlaceOrder(ctx, req.UserID, req.IdempotencyKey, req.Items, req.CardNumber)
		}}
	listOrders = method[ListOrdersRequest, ListOrdersResponse]{Name: "ListOrders", Route: "GET /orders", Idempotent: true,
		Serve: func(s Service, ctx context.Context, req ListOrdersRequest) (ListOrdersResponse, error) {
			page, err := ParsePage(req.Limit, req.Cursor)
			if err != nil {
				return ListOrdersResponse{}, err
			}
			return s.ListOrders(ctx, req.UserID, page)
		}}
	getOrder = method[GetOrderRequest, Order]{Name: "GetOrder", Route: "GET /orders/{id}", Idempotent: true,
		Serve: func(s Service, ctx context.Context, req GetOrderRequest) (Order, error) {
			return s.GetOrder(ctx, req.UserID, req.OrderID)
		}}
)

// Requests and responses on the wire. The user is the bearer token's
// subject, never a field a client can set.
type (
	PlaceOrderRequest struct {
		UserID         string `auth:"user" json:"-"`
		IdempotencyKey string `header:"Idempotency-Key" json:"-"`
		Items          []Item `json:"items"`
		CardNumber     string `json:"card_number"`
	}
	GetOrderRequest struct {
		UserID  string `auth:"user" json:"-"`
		OrderID string `path:"id" json:"-"`
	}
	// ListOrdersRequest is the page as the query carries it
	// (?limit=1..100&cursor=next_cursor), read by ParsePage.
	ListOrdersRequest struct {
		UserID string `auth:"user" json:"-"`
		Limit  string `query:"limit" json:"-"`
		Cursor string `query:"cursor" json:"-"`
	}
	// ListOrdersResponse is a page of orders on the wire:
	// {"orders": [...], "next_cursor": "..."}, next_cursor omitted on the
	// last page.
	ListOrdersResponse = OrderPage
)

//go:generate go run github.com/glasshouse-dev/glasshouse/transport/cmd/clientgen

// NewClient returns orders over the calls build makes: over discovery
// with breakers and retries (transport.Remote.Factory), or to one
// instance (transport.NewDirectFactory). Calls must carry the user's token
// in their context (transport.WithBearerToken): the token decides the
// user, so the userID arguments are not sent.
//
// Its methods are in client_gen.go, which clientgen writes from the
// declarations above.
func NewClient(build transport.ClientFactory) Service { return client{API.Client(build)} }

// ListOrders is the one client method written by hand: a page travels as
// query strings, and a zero limit is left out, so the server applies its
// default.
//
//clientgen:handwritten
func (c client) ListOrders(ctx context.Context, _ string, page Page) (OrderPage, error) {
	req := ListOrdersRequest{Cursor: page.Cursor}
	if page.Limit != 0 {
		req.Limit = strconv.Itoa(page.Limit)
	}
	return listOrders.Call(ctx, c.e, req)
}
