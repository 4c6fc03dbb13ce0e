package users

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/glasshouse-dev/glasshouse/transport"
)

// ServiceName is the users service's name in Consul, metrics and traces.
const ServiceName = "users"

// API is the users service on the wire, each method declared once below:
// the server's routes and endpoints and the client are built from it.
//
// Register is not idempotent: a retry after a lost answer would find the
// email taken by the first attempt, so it is never resent once it may have
// arrived. Login is marked not idempotent although repeating it is
// harmless (it only issues another token): a login times out when the
// service is saturated with bcrypt work, and resending it would add the
// very work that caused the timeout, turning a flood of logins into two or
// three times the flood. GetUser reads, so it is safe to send again.
var API = transport.NewAPI[Service](ServiceName, register, login, getUser)

type method[Req, Resp any] = transport.Method[Service, Req, Resp]

var (
	register = method[RegisterRequest, User]{Name: "Register", Route: "POST /users", Status: http.StatusCreated,
		Serve: func(s Service, ctx context.Context, req RegisterRequest) (User, error) {
			return s.Register(ctx, req.Email, string(req.Password), req.Name)
		}}
	login = method[LoginRequest, Token]{Name: "Login", Route: "POST /login",
		Serve: func(s Service, ctx context.Context, req LoginRequest) (Token, error) {
			return s.Login(ctx, req.Email, string(req.Password))
		}}
	getUser = method[GetUserRequest, User]{Name: "GetUser", Route: "GET /users/{id}", Idempotent: true,
		Serve: func(s Service, ctx context.Context, req GetUserRequest) (User, error) {
			return s.GetUser(ctx, req.ID)
		}}
)

// Requests on the wire; responses are User and Token. Their JSON forms
// are the wire contract.
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
		ID string `path:"id" json:"-"`
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

//go:generate go run github.com/glasshouse-dev/glasshouse/transport/cmd/clientgen

// NewClient returns users over the calls build makes: over discovery with
// breakers and retries of GetUser only (transport.Remote.Factory), or to
// one instance (transport.NewDirectFactory). Errors come back typed, as
// the service returned them; an unreachable users service is
// errs.Unavailable.
//
// Checking a token needs no client: see Verifier.
//
// Its methods are in client_gen.go, which clientgen writes from the
// declarations above.
func NewClient(build transport.ClientFactory) Service { return client{API.Client(build)} }
