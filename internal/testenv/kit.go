package testenv

import (
	"testing"

	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// Direct builds client calls to the one instance at baseURL (a test
// server's URL), as transport.NewDirectFactory does with the default
// timeout; a bad URL fails the test.
func Direct(t testing.TB, baseURL string, tel observability.Telemetry) transport.ClientFactory {
	t.Helper()
	build, err := transport.NewDirectFactory(baseURL, tel, 0)
	if err != nil {
		t.Fatal(err)
	}
	return build
}
