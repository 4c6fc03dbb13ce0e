// Command gateway runs the public entry of glasshouse: JWT checks,
// per-client rate limits and routing to the services found in Consul.
package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/platform"
	"github.com/glasshouse-dev/glasshouse/services/gateway"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { platform.Main(gateway.ServiceName, run) }

// defaultOrderTimeout is longer than orders' saga timeout (20s), so the
// gateway does not give up on a checkout that orders is still completing.
const defaultOrderTimeout = 25 * time.Second

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := config.NewFlags(gateway.ServiceName, getenv, stdout)
	common := platform.CommonFlags(flags, gateway.ServiceName)
	tokens := platform.NewVerifierFlags(flags)
	rateLimit := flags.Float("rate-limit", "RATE_LIMIT", 100, "requests per second allowed per client IP (0: no limit)")
	rateBurst := flags.Int("rate-burst", "RATE_BURST", 200, "requests a client may send at once before the rate applies")
	// Each sign-up or login costs users a bcrypt hash (tens of ms of CPU):
	// 5/s per client is plenty for a person and keeps one client from
	// saturating users; 1/s per email slows password guessing from many
	// addresses as much as from one.
	authRate := flags.Float("auth-rate-limit", "AUTH_RATE_LIMIT", 5, "sign-ups and logins per second allowed per client IP, on top of -rate-limit (0: no limit)")
	authBurst := flags.Int("auth-rate-burst", "AUTH_RATE_BURST", 10, "sign-ups and logins a client may send at once")
	emailRate := flags.Float("login-email-rate-limit", "LOGIN_EMAIL_RATE_LIMIT", 1, "logins per second allowed per email, whatever the client (0: no limit)")
	emailBurst := flags.Int("login-email-rate-burst", "LOGIN_EMAIL_RATE_BURST", 5, "logins for one email allowed at once")
	maxClients := flags.Int("rate-limit-clients", "RATE_LIMIT_CLIENTS", gateway.DefaultMaxKeys, "most clients (and emails) each rate limiter remembers, least recently seen forgotten first (about 230 bytes each)")
	trustedProxies := flags.String("trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated CIDRs of proxies whose X-Forwarded-For is believed (empty: none, the peer is the client)")
	validateIDs := flags.Bool("validate-identifiers", "VALIDATE_IDENTIFIERS", true, "refuse malformed SKUs and order IDs with 400 before any upstream call (false only for the chaos suite; never in production)")
	faultToken := flags.String("fault-injection-token", "FAULT_INJECTION_TOKEN", "", "with -fault-injection, the secret a request's "+transport.FaultTokenHeader+" header must carry to keep its fault baggage (prefer the env: flags show in ps)")
	fallback := flags.Bool("recommendations-fallback", "RECOMMENDATIONS_FALLBACK", true, "answer the catalogue, marked \"fallback\": true, when recommendations does not answer (false only for the chaos suite; never in production)")
	orderTimeout := flags.Duration("order-timeout", "ORDER_TIMEOUT", defaultOrderTimeout, "how long one checkout attempt may take (the same as -orders-attempt-timeout)")
	usersClient := platform.NewRemoteFlags(flags, users.ServiceName, transport.ClientConfig{})
	inventoryClient := platform.NewRemoteFlags(flags, inventory.ServiceName, transport.ClientConfig{})
	// A checkout runs a saga behind it: each attempt may take several
	// seconds, and retrying with the same Idempotency-Key is safe.
	ordersClient := platform.NewRemoteFlags(flags, orders.ServiceName, transport.ClientConfig{
		CallTimeout: defaultOrderTimeout, Deadline: defaultOrderTimeout + 2*time.Second,
	})
	// Recommendations are a nicety: one attempt within 100ms, then the
	// gateway answers its fallback. Over gRPC unless
	// -recommendations-transport says http.
	recommendationsClient := platform.NewRemoteFlags(flags, recommendations.ServiceName, transport.ClientConfig{
		CallTimeout: 100 * time.Millisecond, Deadline: 100 * time.Millisecond, MaxAttempts: 1,
	}).OverGRPC(flags, recommendations.GRPC)
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *orderTimeout != defaultOrderTimeout { // the older name of -orders-attempt-timeout
		ordersClient.Adjust(func(c *transport.ClientConfig) {
			c.CallTimeout, c.Deadline = *orderTimeout, max(c.Deadline, *orderTimeout+2*time.Second)
		})
	}
	proxies, err := gateway.ParseTrustedProxies(*trustedProxies)
	if err != nil {
		return fmt.Errorf("-trusted-proxies / TRUSTED_PROXIES: %w", err)
	}
	limitsConfig := gateway.LimitsConfig{
		Client:     gateway.Limit{PerSecond: *rateLimit, Burst: *rateBurst},
		Auth:       gateway.Limit{PerSecond: *authRate, Burst: *authBurst},
		LoginEmail: gateway.Limit{PerSecond: *emailRate, Burst: *emailBurst},
		MaxKeys:    *maxClients,
		Clients:    gateway.NewClientKeys(proxies),
	}
	if err := limitsConfig.Validate(); err != nil {
		return err
	}
	// -fault-injection is one of the common flags; the gateway needs its
	// value to decide whether any request may carry faults past the edge.
	faultsEnabled, _ := strconv.ParseBool(flags.Lookup("fault-injection").Value.String())

	proc, err := common.Start(ctx, gateway.ServiceName, version, getenv, stdout)
	if err != nil {
		return err
	}
	defer proc.Close(ctx, &err)
	tel := proc.Telemetry
	if !faultsEnabled {
		*faultToken = ""
	} else if *faultToken == "" {
		tel.Logger.Warn("fault injection is enabled but FAULT_INJECTION_TOKEN is empty: the gateway drops every request's fault baggage")
	}
	if !*fallback {
		tel.Logger.Warn("the recommendations fallback is DISABLED (-recommendations-fallback=false): its failures reach the clients")
	}
	if !*validateIDs {
		tel.Logger.Warn("identifier validation is DISABLED (-validate-identifiers=false): malformed SKUs and order IDs reach the services")
	}

	verifier, err := tokens.Verifier(ctx)
	if err != nil {
		return err
	}

	svc := gateway.NewService(gateway.Backends{
		Users:           users.NewClient(proc.Client(usersClient)),
		Inventory:       inventory.NewClient(proc.Client(inventoryClient)),
		Orders:          orders.NewClient(proc.Client(ordersClient)),
		Recommendations: recommendations.NewClient(proc.Client(recommendationsClient)),
	}, gateway.Options{SkipIdentifierValidation: !*validateIDs, NoRecommendationFallback: !*fallback})
	limits := gateway.NewLimits(limitsConfig, tel.Registry)
	proc.PublicEndpoint = true
	return proc.Serve(ctx, gateway.NewHandler(svc, proc.EndpointMiddleware, verifier.Verify, limits, *faultToken))
}
