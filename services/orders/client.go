package orders

import (
	"fmt"
	"time"

	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
)

// NewClient returns an orders Service over every passing orders instance
// in Consul, with breakers and retries (see transport.Remote). Calls must
// carry the user's token in their context (transport.WithBearerToken).
func NewClient(remote *transport.Remote, tel observability.Telemetry) Service {
	return makeClientEndpoints(remote.Factory()).With(clientMiddleware(tel))
}

// NewHTTPClient returns an orders Service that calls the one instance at
// baseURL, without discovery or retries.
func NewHTTPClient(baseURL string, tel observability.Telemetry, timeout time.Duration) (Service, error) {
	build, err := transport.NewDirectFactory(baseURL, tel, timeout)
	if err != nil {
		return nil, fmt.Errorf("orders client: %w", err)
	}
	return makeClientEndpoints(build).With(clientMiddleware(tel)), nil
}

func clientMiddleware(tel observability.Telemetry) Middleware {
	return func(name string) endpoint.Middleware { return tel.ClientEndpoint(ServiceName, name) }
}
