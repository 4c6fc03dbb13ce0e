package users

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
)

// Endpoints is the users service as a set of go-kit endpoints, one per
// method. On the server it wraps the Service; on the client it wraps HTTP
// calls, and its methods implement Service again, so a caller holding a
// users.Service cannot tell the difference.
type Endpoints struct {
	RegisterEndpoint endpoint.Endpoint
	LoginEndpoint    endpoint.Endpoint
	GetUserEndpoint  endpoint.Endpoint
}

// Middleware returns the endpoint middleware for the named endpoint, such
// as observability's tracing, metrics and logging stack.
type Middleware func(name string) endpoint.Middleware

// NewEndpoints wraps svc's methods as endpoints, each decorated by mw.
func NewEndpoints(svc Service, mw Middleware) Endpoints {
	return Endpoints{
		RegisterEndpoint: transport.Endpoint(func(ctx context.Context, req RegisterRequest) (User, error) {
			return svc.Register(ctx, req.Email, string(req.Password), req.Name)
		}),
		LoginEndpoint: transport.Endpoint(func(ctx context.Context, req LoginRequest) (Token, error) {
			return svc.Login(ctx, req.Email, string(req.Password))
		}),
		GetUserEndpoint: transport.Endpoint(func(ctx context.Context, req GetUserRequest) (User, error) {
			return svc.GetUser(ctx, req.ID)
		}),
	}.With(mw)
}

// With returns the set with each endpoint decorated by mw(its name).
func (e Endpoints) With(mw Middleware) Endpoints {
	return Endpoints{
		RegisterEndpoint: mw("Register")(e.RegisterEndpoint),
		LoginEndpoint:    mw("Login")(e.LoginEndpoint),
		GetUserEndpoint:  mw("GetUser")(e.GetUserEndpoint),
	}
}

// Requests of the endpoints; responses are User and Token. Their JSON
// forms are the wire contract.
type (
	RegisterRequest struct {
		Email    string   `json:"email"`
		Password Password `json:"password"`
		Name     string   `json:"name"`
	}
	LoginRequest struct {
		Email    string   `json:"email"`
		Password Password `json:"password"`
	}
	GetUserRequest struct {
		ID string `json:"id"`
	}
)

// Password is a password on its way to the service. It travels as a plain
// JSON string, but prints as [REDACTED] through fmt (any verb, %#v too)
// and log/slog, so logging a request that holds one cannot leak it.
type Password string

const redacted = "[REDACTED]"

// Format implements fmt.Formatter.
func (Password) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue implements slog.LogValuer.
func (Password) LogValue() slog.Value { return slog.StringValue(redacted) }

// LogValue implements slog.LogValuer. slog's JSON handler would otherwise
// marshal the struct as JSON, password included.
func (r RegisterRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("email", r.Email), slog.Any("password", r.Password), slog.String("name", r.Name))
}

// LogValue implements slog.LogValuer, for the same reason as
// RegisterRequest's.
func (r LoginRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("email", r.Email), slog.Any("password", r.Password))
}

// Register implements Service over the endpoints.
func (e Endpoints) Register(ctx context.Context, email, password, name string) (User, error) {
	return transport.Call[User](ctx, e.RegisterEndpoint, RegisterRequest{Email: email, Password: Password(password), Name: name})
}

// Login implements Service over the endpoints.
func (e Endpoints) Login(ctx context.Context, email, password string) (Token, error) {
	return transport.Call[Token](ctx, e.LoginEndpoint, LoginRequest{Email: email, Password: Password(password)})
}

// GetUser implements Service over the endpoints.
func (e Endpoints) GetUser(ctx context.Context, id string) (User, error) {
	return transport.Call[User](ctx, e.GetUserEndpoint, GetUserRequest{ID: id})
}
