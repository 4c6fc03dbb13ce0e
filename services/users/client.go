package users

import (
	"fmt"
	"time"

	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
)

// ServiceName is the users service's name in Consul, metrics and traces.
const ServiceName = "users"

// NewClient returns a users Service over every passing users instance in
// Consul, with a breaker per instance, round-robin balancing and retries
// of GetUser (see transport.Remote; Login is not retried, see
// makeClientEndpoints). Errors come back as the
// typed errors the service returned; an unreachable users service is
// errs.Unavailable.
//
// Checking a token needs no client: see Verifier.
func NewClient(remote *transport.Remote, tel observability.Telemetry) Service {
	return makeClientEndpoints(remote.Factory()).With(clientMiddleware(tel))
}

// NewHTTPClient returns a users Service that calls the one instance at
// baseURL, e.g. "http://127.0.0.1:8081", without discovery or retries.
// timeout bounds each call; zero means transport.DefaultCallTimeout.
func NewHTTPClient(baseURL string, tel observability.Telemetry, timeout time.Duration) (Service, error) {
	build, err := transport.NewDirectFactory(baseURL, tel, timeout)
	if err != nil {
		return nil, fmt.Errorf("users client: %w", err)
	}
	return makeClientEndpoints(build).With(clientMiddleware(tel)), nil
}

// clientMiddleware gives each call a client span named like the server's
// endpoint span; retry and breaker events are recorded on it.
func clientMiddleware(tel observability.Telemetry) Middleware {
	return func(name string) endpoint.Middleware { return tel.ClientEndpoint(ServiceName, name) }
}
