package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
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
//
// Every identifier taken from a path or a body (SKU, order ID) and the
// Idempotency-Key header are checked before any call leaves: a bad one is
// a 400 (docs/problems.md lists each), never an upstream call. Outside
// baggage is dropped (transport.EdgeBaggage); sign-up and login have
// their own limits on top of the per-client one (WithAuthLimits).
func NewHTTPHandler(e Endpoints, auth Authenticate, limiter *RateLimiter, opts ...HandlerOption) http.Handler {
	o := handlerOptions{validateIdentifiers: true}
	for _, opt := range opts {
		opt(&o)
	}
	v := validator{identifiers: o.validateIdentifiers}
	r := transport.NewRouter()
	r.Handle("POST", "/api/users", o.authPerClient.Middleware(
		endpointHandler(e.CreateUserEndpoint, decodeJSON[CreateUserRequest], transport.EncodeJSON(http.StatusCreated))))
	r.Handle("POST", "/api/login", o.authPerClient.Middleware(o.loginPerEmail.Middleware(
		endpointHandler(e.LoginEndpoint, decodeJSON[LoginRequest], transport.EncodeJSON(http.StatusOK)))))
	r.Endpoint("GET", "/api/products", e.ListProductsEndpoint, decodeNothing, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("GET", "/api/products/{sku}", e.GetProductEndpoint, v.decodeGetProduct, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("POST", "/api/orders", e.PlaceOrderEndpoint, v.decodePlaceOrder(auth), transport.EncodeJSON(http.StatusCreated))
	r.Endpoint("GET", "/api/orders", e.ListOrdersEndpoint, decodeListOrders(auth), transport.EncodeJSON(http.StatusOK))
	r.Endpoint("GET", "/api/orders/{id}", e.GetOrderEndpoint, v.decodeGetOrder(auth), transport.EncodeJSON(http.StatusOK))
	return limiter.Middleware(transport.EdgeBaggage(o.faultToken)(r))
}

// HandlerOption adjusts NewHTTPHandler; without any, the handler has the
// production behaviour.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	validateIdentifiers bool
	faultToken          string
	authPerClient       *RateLimiter
	loginPerEmail       *RateLimiter
}

// WithAuthLimits adds the sign-up and login limits: perClient on both
// routes, perEmail on login (see LimitsConfig).
func WithAuthLimits(perClient, perEmail *RateLimiter) HandlerOption {
	return func(o *handlerOptions) { o.authPerClient, o.loginPerEmail = perClient, perEmail }
}

// WithFaultToken lets requests that carry token in transport.FaultTokenHeader
// keep their fault baggage. Pass it only when fault injection is enabled;
// empty (the default) lets no request ask for faults.
func WithFaultToken(token string) HandlerOption {
	return func(o *handlerOptions) { o.faultToken = token }
}

// WithIdentifierValidation switches the identifier checks on (the
// default) or off. Off exists only so the chaos suite can show what the
// checks prevent; it is never to be used in production.
func WithIdentifierValidation(on bool) HandlerOption {
	return func(o *handlerOptions) { o.validateIdentifiers = on }
}

// endpointHandler serves ep as Router.Endpoint does, for the routes that
// need middleware of their own in front of it.
func endpointHandler(ep endpoint.Endpoint, dec httptransport.DecodeRequestFunc, enc httptransport.EncodeResponseFunc) http.Handler {
	return httptransport.NewServer(ep, dec, enc, httptransport.ServerErrorEncoder(transport.WriteError))
}

func decodeJSON[T any](_ context.Context, r *http.Request) (any, error) {
	return transport.DecodeJSON[T](r)
}

func decodeNothing(context.Context, *http.Request) (any, error) { return struct{}{}, nil }

// validator holds the decoders that check identifiers. identifiers is
// false only in the chaos suite's "mechanism switched off" run.
type validator struct {
	identifiers bool
}

func (v validator) sku(s string) error {
	if !v.identifiers {
		return nil
	}
	return ident.SKU(s)
}

func (v validator) orderID(s string) error {
	if !v.identifiers {
		return nil
	}
	return ident.OrderID(s)
}

func (v validator) decodeGetProduct(_ context.Context, r *http.Request) (any, error) {
	sku := r.PathValue("sku")
	if err := v.sku(sku); err != nil {
		return nil, err
	}
	return GetProductRequest{SKU: sku}, nil
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

func (v validator) decodePlaceOrder(auth Authenticate) httptransport.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		c, err := caller(r, auth)
		if err != nil {
			return nil, err
		}
		key := r.Header.Get(orders.IdempotencyKeyHeader)
		if err := checkIdempotencyKey(key); err != nil {
			return nil, err
		}
		req, err := transport.DecodeJSON[PlaceOrderRequest](r)
		if err != nil {
			return nil, err
		}
		for i, item := range req.Items {
			if err := v.sku(item.SKU); err != nil {
				var e *errs.Error
				errors.As(err, &e)
				return nil, errs.E(e.Kind, e.Code, "items[%d]: %s", i, e.Detail)
			}
		}
		req.Caller, req.IdempotencyKey = c, key
		return req, nil
	}
}

// maxIdempotencyKeyBytes is orders' limit on the key.
const maxIdempotencyKeyBytes = 128

// checkIdempotencyKey refuses a key that is not printable ASCII or is
// longer than orders keeps. An absent key is orders' to refuse
// (missing_idempotency_key), as it always was.
func checkIdempotencyKey(key string) error {
	ok := len(key) <= maxIdempotencyKeyBytes
	for i := 0; ok && i < len(key); i++ {
		ok = key[i] >= 0x20 && key[i] <= 0x7e
	}
	if !ok {
		return errs.E(errs.Invalid, "invalid_idempotency_key",
			"the %s header %s must be printable ASCII of at most %d bytes",
			orders.IdempotencyKeyHeader, ident.Quote(key), maxIdempotencyKeyBytes)
	}
	return nil
}

func decodeListOrders(auth Authenticate) httptransport.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		c, err := caller(r, auth)
		if err != nil {
			return nil, err
		}
		// A bad page is refused here, before any call to orders.
		q := r.URL.Query()
		page, err := orders.ParsePage(q.Get("limit"), q.Get("cursor"))
		return ListOrdersRequest{Caller: c, Page: page}, err
	}
}

func (v validator) decodeGetOrder(auth Authenticate) httptransport.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		c, err := caller(r, auth)
		if err != nil {
			return nil, err
		}
		id := r.PathValue("id")
		if err := v.orderID(id); err != nil {
			return nil, err
		}
		return GetOrderRequest{Caller: c, OrderID: id}, nil
	}
}
