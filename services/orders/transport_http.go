package orders

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/glasshouse-dev/glasshouse/transport"
	httptransport "github.com/go-kit/kit/transport/http"
)

// IdempotencyKeyHeader carries the client's key for POST /orders.
const IdempotencyKeyHeader = "Idempotency-Key"

// Authenticate turns a bearer token into the user it was issued to
// (users.Verifier.Verify does), or fails with an Unauthenticated error.
type Authenticate func(token string) (userID string, err error)

// NewHTTPHandler exposes the endpoints over HTTP. Every route needs a
// bearer token: orders checks it itself rather than trusting the caller.
//
//	POST /orders       place an order (Idempotency-Key header) → 201
//	GET  /orders       a page of the caller's orders (?limit=1..100&cursor=next_cursor)
//	GET  /orders/{id}  one of the caller's orders
func NewHTTPHandler(e Endpoints, auth Authenticate) http.Handler {
	r := transport.NewRouter()
	r.Endpoint("POST", "/orders", e.PlaceOrderEndpoint, decodePlaceOrder(auth), transport.EncodeJSON(http.StatusCreated))
	r.Endpoint("GET", "/orders", e.ListOrdersEndpoint, decodeListOrders(auth), transport.EncodeJSON(http.StatusOK))
	r.Endpoint("GET", "/orders/{id}", e.GetOrderEndpoint, decodeGetOrder(auth), transport.EncodeJSON(http.StatusOK))
	return r
}

func user(r *http.Request, auth Authenticate) (string, error) {
	token, err := transport.BearerTokenFrom(r)
	if err != nil {
		return "", err
	}
	return auth(token)
}

func decodePlaceOrder(auth Authenticate) httptransport.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		userID, err := user(r, auth)
		if err != nil {
			return nil, err
		}
		req, err := transport.DecodeJSON[PlaceOrderRequest](r)
		if err != nil {
			return nil, err
		}
		req.UserID, req.IdempotencyKey = userID, r.Header.Get(IdempotencyKeyHeader)
		return req, nil
	}
}

func decodeListOrders(auth Authenticate) httptransport.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		userID, err := user(r, auth)
		if err != nil {
			return nil, err
		}
		q := r.URL.Query()
		page, err := ParsePage(q.Get("limit"), q.Get("cursor"))
		return ListOrdersRequest{UserID: userID, Page: page}, err
	}
}

func decodeGetOrder(auth Authenticate) httptransport.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		userID, err := user(r, auth)
		return GetOrderRequest{UserID: userID, OrderID: r.PathValue("id")}, err
	}
}

// Client-side encoders. The bearer token comes from the context
// (transport.ClientOptions sends it).

func encodePlaceOrder(ctx context.Context, r *http.Request, request any) error {
	req := request.(PlaceOrderRequest)
	if err := transport.SetPath(r, "orders"); err != nil {
		return err
	}
	r.Header.Set(IdempotencyKeyHeader, req.IdempotencyKey)
	return httptransport.EncodeJSONRequest(ctx, r, req)
}

func encodeListOrders(_ context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "orders"); err != nil {
		return err
	}
	page := request.(ListOrdersRequest).Page
	q := url.Values{}
	if page.Limit != 0 {
		q.Set("limit", strconv.Itoa(page.Limit))
	}
	if page.Cursor != "" {
		q.Set("cursor", page.Cursor)
	}
	r.URL.RawQuery = q.Encode()
	return nil
}

func encodeGetOrder(_ context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "orders", request.(GetOrderRequest).OrderID); err != nil {
		return err
	}
	return nil
}

// makeClientEndpoints describes every call on the wire. Placing an order
// carries an idempotency key, so it is as safe to retry as the reads.
func makeClientEndpoints(build transport.ClientFactory) Endpoints {
	return Endpoints{
		PlaceOrderEndpoint: build(transport.ClientRoute{Name: "PlaceOrder", Method: "POST", Idempotent: true,
			Encode: encodePlaceOrder, Decode: transport.DecodeJSONResponse[Order]()}),
		GetOrderEndpoint: build(transport.ClientRoute{Name: "GetOrder", Method: "GET", Idempotent: true,
			Encode: encodeGetOrder, Decode: transport.DecodeJSONResponse[Order]()}),
		ListOrdersEndpoint: build(transport.ClientRoute{Name: "ListOrders", Method: "GET", Idempotent: true,
			Encode: encodeListOrders, Decode: transport.DecodeJSONResponse[ListOrdersResponse]()}),
	}
}
