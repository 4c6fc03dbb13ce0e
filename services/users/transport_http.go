package users

import (
	"context"
	"net/http"

	"github.com/glasshouse-dev/glasshouse/transport"
	httptransport "github.com/go-kit/kit/transport/http"
)

// NewHTTPHandler exposes the endpoints over HTTP. All routes are here:
//
//	POST /users       register an account (201)
//	POST /login       exchange email and password for a token
//	GET  /users/{id}  one user
func NewHTTPHandler(e Endpoints) http.Handler {
	r := transport.NewRouter()
	r.Endpoint("POST", "/users", e.RegisterEndpoint, decodeRegister, transport.EncodeJSON(http.StatusCreated))
	r.Endpoint("POST", "/login", e.LoginEndpoint, decodeLogin, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("GET", "/users/{id}", e.GetUserEndpoint, decodeGetUser, transport.EncodeJSON(http.StatusOK))
	return r
}

func decodeRegister(_ context.Context, r *http.Request) (any, error) {
	return transport.DecodeJSON[RegisterRequest](r)
}

func decodeLogin(_ context.Context, r *http.Request) (any, error) {
	return transport.DecodeJSON[LoginRequest](r)
}

func decodeGetUser(_ context.Context, r *http.Request) (any, error) {
	return GetUserRequest{ID: r.PathValue("id")}, nil
}

// Client-side request encoders: the mirror image of the decoders above.

func encodeRegister(ctx context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "users"); err != nil {
		return err
	}
	return httptransport.EncodeJSONRequest(ctx, r, request)
}

func encodeLogin(ctx context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "login"); err != nil {
		return err
	}
	return httptransport.EncodeJSONRequest(ctx, r, request)
}

func encodeGetUser(_ context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "users", request.(GetUserRequest).ID); err != nil {
		return err
	}
	return nil
}

// makeClientEndpoints describes every call on the wire and builds each
// with build: against one instance, or over discovery with breakers and
// retries. Register is not idempotent: a retry after a lost answer would
// find the email taken by the first attempt, so it is never resent once it
// may have arrived. Login is marked not idempotent although repeating it
// is harmless (it only issues another token): a login times out when the
// service is saturated with bcrypt work, and resending it would add the
// very work that caused the timeout, turning a flood of logins into two
// or three times the flood. GetUser reads.
func makeClientEndpoints(build transport.ClientFactory) Endpoints {
	return Endpoints{
		RegisterEndpoint: build(transport.ClientRoute{Name: "Register", Method: "POST", Idempotent: false,
			Encode: encodeRegister, Decode: transport.DecodeJSONResponse[User]()}),
		LoginEndpoint: build(transport.ClientRoute{Name: "Login", Method: "POST", Idempotent: false,
			Encode: encodeLogin, Decode: transport.DecodeJSONResponse[Token]()}),
		GetUserEndpoint: build(transport.ClientRoute{Name: "GetUser", Method: "GET", Idempotent: true,
			Encode: encodeGetUser, Decode: transport.DecodeJSONResponse[User]()}),
	}
}
