package gateway

import (
	"context"
	"net/http"

	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// ServiceName is the gateway's name in Consul, metrics and traces.
const ServiceName = "gateway"

// API is the public API, each method declared once below. Everything else
// (the services' own routes, payments' fault knobs) is unreachable
// through the gateway. Its requests and responses are those of the
// services behind it, so the public JSON is theirs; the orders routes need
// a bearer token (their requests' UserID is its subject).
var API = transport.NewAPI[Service](ServiceName, createUser, login, listProducts, getProduct, getRecommendations, placeOrder, listOrders, getOrder)

type method[Req, Resp any] = transport.Method[Service, Req, Resp]

var (
	createUser = method[users.RegisterRequest, users.User]{Name: "CreateUser", Route: "POST /api/users", Status: http.StatusCreated,
		Serve: func(s Service, ctx context.Context, req users.RegisterRequest) (users.User, error) {
			return s.CreateUser(ctx, req.Email, string(req.Password), req.Name)
		}}
	login = method[users.LoginRequest, users.Token]{Name: "Login", Route: "POST /api/login",
		Serve: func(s Service, ctx context.Context, req users.LoginRequest) (users.Token, error) {
			return s.Login(ctx, req.Email, string(req.Password))
		}}
	listProducts = method[struct{}, inventory.ListProductsResponse]{Name: "ListProducts", Route: "GET /api/products",
		Serve: func(s Service, ctx context.Context, _ struct{}) (inventory.ListProductsResponse, error) {
			products, err := s.ListProducts(ctx)
			return inventory.ListProductsResponse{Products: products}, err
		}}
	getProduct = method[inventory.ProductRequest, inventory.Product]{Name: "GetProduct", Route: "GET /api/products/{sku}",
		Serve: func(s Service, ctx context.Context, req inventory.ProductRequest) (inventory.Product, error) {
			return s.GetProduct(ctx, req.SKU)
		}}
	getRecommendations = method[recommendations.RecommendationsRequest, Recommendations]{Name: "GetRecommendations", Route: "GET /api/products/{sku}/recommendations",
		Serve: func(s Service, ctx context.Context, req recommendations.RecommendationsRequest) (Recommendations, error) {
			return s.GetRecommendations(ctx, req.SKU, req.Limit)
		}}
	placeOrder = method[orders.PlaceOrderRequest, orders.Order]{Name: "PlaceOrder", Route: "POST /api/orders", Status: http.StatusCreated,
		Serve: func(s Service, ctx context.Context, req orders.PlaceOrderRequest) (orders.Order, error) {
			return s.PlaceOrder(ctx, req.UserID, req.IdempotencyKey, req.Items, req.CardNumber)
		}}
	listOrders = method[orders.ListOrdersRequest, orders.ListOrdersResponse]{Name: "ListOrders", Route: "GET /api/orders",
		Serve: func(s Service, ctx context.Context, req orders.ListOrdersRequest) (orders.ListOrdersResponse, error) {
			return s.ListOrders(ctx, req.UserID, req.Limit, req.Cursor)
		}}
	getOrder = method[orders.GetOrderRequest, orders.Order]{Name: "GetOrder", Route: "GET /api/orders/{id}",
		Serve: func(s Service, ctx context.Context, req orders.GetOrderRequest) (orders.Order, error) {
			return s.GetOrder(ctx, req.UserID, req.OrderID)
		}}
)

// NewHandler serves svc as the public sees it: API.Server with the bearer
// token checked by auth (users.Verifier.Verify), sign-up and login behind
// their own limits (limits.Auth per client on both, limits.LoginEmail on
// login), outside baggage dropped (transport.EdgeBaggage: only a request
// carrying faultToken keeps its fault members; empty lets none), and the
// per-client limit in front of everything. A nil limit lets all through.
func NewHandler(svc Service, mw transport.EndpointMiddleware, auth transport.Authenticate, limits Limits, faultToken string) http.Handler {
	api := API.Server(svc, mw, transport.WithAuth(auth),
		transport.WithRouteMiddleware("CreateUser", limits.Auth.Middleware),
		transport.WithRouteMiddleware("Login", func(h http.Handler) http.Handler {
			return limits.Auth.Middleware(limits.LoginEmail.Middleware(h))
		}))
	return limits.Client.Middleware(transport.EdgeBaggage(faultToken)(api))
}
