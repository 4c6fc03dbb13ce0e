package orders

import (
	"fmt"
	"net/url"
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
	base, err := url.Parse(baseURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("orders client: base URL %q must be absolute, like http://host:port", baseURL)
	}
	opts := transport.ClientOptions(transport.NewHTTPClient(tel, timeout))
	return makeClientEndpoints(transport.DirectFactory(base, opts...)).With(clientMiddleware(tel)), nil
}

func clientMiddleware(tel observability.Telemetry) Middleware {
	return func(name string) endpoint.Middleware { return tel.ClientEndpoint(ServiceName, name) }
}
