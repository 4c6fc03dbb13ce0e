// Command gateway runs the public entry of glasshouse: JWT checks,
// per-client rate limits and routing to the services found in Consul.
package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/platform"
	"github.com/glasshouse-dev/glasshouse/services/gateway"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { platform.Main("gateway", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := config.NewFlags("gateway", getenv, stdout)
	common := platform.CommonFlags(flags, ":8080")
	publicKey := flags.String("jwt-public-key", "JWT_PUBLIC_KEY_FILE", "data/keys/users-jwt.pub", "users' public key (PEM), to check bearer tokens")
	keyWait := flags.Duration("jwt-key-wait", "JWT_KEY_WAIT", 30*time.Second, "how long to wait for the public key file at start")
	rateLimit := flags.Float("rate-limit", "RATE_LIMIT", 100, "requests per second allowed per client IP (0: no limit)")
	rateBurst := flags.Int("rate-burst", "RATE_BURST", 200, "requests a client may send at once before the rate applies")
	// Longer than orders' saga timeout (20s), so the gateway does not give
	// up on a checkout that orders is still completing.
	orderTimeout := flags.Duration("order-timeout", "ORDER_TIMEOUT", 25*time.Second, "how long one checkout attempt may take")
	if err := flags.Parse(args); err != nil {
		return err
	}

	proc, err := common.Start(ctx, gateway.ServiceName, version, getenv, stdout)
	if err != nil {
		return err
	}
	defer proc.Close(ctx, &err)
	tel := proc.Telemetry

	if err := platform.WaitForFile(ctx, *publicKey, *keyWait); err != nil {
		return fmt.Errorf("users' public key (-jwt-public-key / JWT_PUBLIC_KEY_FILE): %w", err)
	}
	key, err := users.LoadPublicKey(*publicKey)
	if err != nil {
		return err
	}
	verifier := users.NewVerifier(key, nil)

	backends := gateway.Backends{
		Users:     users.NewClient(proc.Remote(users.ServiceName, transport.ClientConfig{}), tel),
		Inventory: inventory.NewClient(proc.Remote(inventory.ServiceName, transport.ClientConfig{}), tel),
		// A checkout runs a saga behind it: each attempt may take several
		// seconds, and retrying with the same Idempotency-Key is safe.
		Orders: orders.NewClient(proc.Remote(orders.ServiceName, transport.ClientConfig{
			CallTimeout: *orderTimeout, Deadline: *orderTimeout + 2*time.Second,
		}), tel),
	}
	endpoints := gateway.NewEndpoints(backends, proc.Endpoint)
	limiter := gateway.NewRateLimiter(*rateLimit, *rateBurst, tel.Registry)
	proc.PublicEndpoint = true
	return proc.Serve(ctx, gateway.NewHTTPHandler(endpoints, verifier.Verify, limiter))
}
