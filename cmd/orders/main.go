// Command orders runs the orders service: orders and the checkout saga
// across inventory and payments, found in Consul.
package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/platform"
	"github.com/glasshouse-dev/glasshouse/events"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { platform.Main(orders.ServiceName, run) }

// run wires the service inside-out: store, the outbox relay to NATS, the
// inventory and payments clients (discovered in Consul), the checkout
// saga and beside it its recovery loop, endpoints, HTTP.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := config.NewFlags(orders.ServiceName, getenv, stdout)
	// A checkout in flight at SIGTERM is given its whole saga time to end
	// before the store closes under it.
	common := platform.CommonFlagsDraining(flags, orders.ServiceName, 25*time.Second)
	storeFlags := platform.NewStoreFlags(flags, orders.ServiceName)
	tokens := platform.NewVerifierFlags(flags)
	recoveryEvery := flags.Duration("recovery-interval", "RECOVERY_INTERVAL", 10*time.Second, "how often interrupted checkouts are looked for")
	staleAfter := flags.Duration("saga-stale-after", "SAGA_STALE_AFTER", 30*time.Second, "how long a checkout may sit untouched before recovery takes it over")
	sagaTimeout := flags.Duration("saga-timeout", "SAGA_TIMEOUT", 20*time.Second, "how long one checkout may take, compensations included")
	// The saga calls inventory and payments over gRPC unless
	// -inventory-transport / -payments-transport say http.
	inventoryClient := platform.NewRemoteFlags(flags, inventory.ServiceName, transport.ClientConfig{}).OverGRPC(flags, inventory.GRPC)
	paymentsClient := platform.NewRemoteFlags(flags, payments.ServiceName, transport.ClientConfig{}).OverGRPC(flags, payments.GRPC)
	eventFlags := platform.NewEventFlags(flags)
	outbox := flags.Bool("events-outbox", "EVENTS_OUTBOX", true, "write every order event to the outbox (false writes none, so nothing reaches NATS: only to measure what the outbox costs a checkout; never in production)")
	fireAndForget := flags.Bool("events-fire-and-forget", "EVENTS_FIRE_AND_FORGET", false, "publish each event once and forget it if NATS does not take it, as publishing outside the outbox would (only for the chaos suite; never in production)")
	if err := flags.Parse(args); err != nil {
		return err
	}

	proc, err := common.Start(ctx, orders.ServiceName, version, getenv, stdout)
	if err != nil {
		return err
	}
	defer proc.Close(ctx, &err)
	tel := proc.Telemetry

	verifier, err := tokens.Verifier(ctx)
	if err != nil {
		return err
	}

	store, err := platform.OpenStore(ctx, proc, storeFlags, orders.OpenStore)
	if err != nil {
		return err
	}

	// Order events leave through the outbox: the relay publishes what
	// finished orders wrote, whenever NATS is there to take it.
	js, err := eventFlags.Connect(proc)
	if err != nil {
		return err
	}
	if !*outbox {
		store.WithoutEvents()
		tel.Logger.Warn("order events are NOT written (-events-outbox=false): no other service learns of any order")
	}
	if *fireAndForget {
		tel.Logger.Warn("events are published once and dropped when NATS does not take them (-events-fire-and-forget)")
	}
	relay := events.NewRelay(store.DB, js, events.RelayConfig{Stream: orders.StreamConfig(eventFlags.StreamReplicas()), FireAndForget: *fireAndForget},
		tel.Logger, tel.TracerProvider, tel.Registry)

	inv := inventory.NewClient(proc.Client(inventoryClient))
	pay := payments.NewClient(proc.Client(paymentsClient))
	opts := orders.Options{
		SagaTimeout:  *sagaTimeout,
		StaleAfter:   *staleAfter,
		Logger:       tel.Logger,
		Metrics:      orders.NewSagaMetrics(tel.Registry),
		Tracer:       tel.Tracer("glasshouse/orders"),
		EventWritten: relay.Notify,
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	if common.DrainTimeout() < *sagaTimeout {
		return fmt.Errorf("the drain timeout (%s) must be at least the saga timeout (%s), or a shutdown cuts checkouts short", common.DrainTimeout(), *sagaTimeout)
	}
	svc := orders.NewService(store, inv, pay, opts)
	recovery := orders.NewRecovery(store, inv, pay, opts)
	return proc.Serve(ctx, orders.API.Server(svc, proc.EndpointMiddleware, transport.WithAuth(verifier.Verify)), func(ctx context.Context) error {
		return recovery.Run(ctx, *recoveryEvery)
	}, relay.Run)
}
