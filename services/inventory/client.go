package inventory

import (
	"fmt"
	"net/url"
	"time"

	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
)

// ServiceName is the inventory service's name in Consul, metrics and traces.
const ServiceName = "inventory"

// NewHTTPClient returns an inventory Service that calls the one instance
// at baseURL, e.g. "http://127.0.0.1:8082". Errors come back as the same
// typed errors the service returned (errs.Error with the same code).
// timeout bounds each call; zero means transport.DefaultCallTimeout.
func NewHTTPClient(baseURL string, tel observability.Telemetry, timeout time.Duration) (Service, error) {
	base, err := url.Parse(baseURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("inventory client: base URL %q must be absolute, like http://host:port", baseURL)
	}
	e := makeClientEndpoints(base, transport.ClientOptions(transport.NewHTTPClient(tel, timeout))...)
	return e.With(func(name string) endpoint.Middleware { return tel.ClientEndpoint(ServiceName, name) }), nil
}
