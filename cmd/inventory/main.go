// Command inventory runs the inventory service: the product catalogue,
// stock and reservations, over HTTP and gRPC.
package main

import (
	"context"
	"io"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/platform"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { platform.Main(inventory.ServiceName, run) }

// run wires the service inside-out (store → service → endpoints → HTTP and
// gRPC) and
// serves until ctx is cancelled, registered in Consul. Then it shuts down
// in order: deregister, drain, close the store, flush spans.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := config.NewFlags(inventory.ServiceName, getenv, stdout)
	common := platform.CommonFlags(flags, inventory.ServiceName)
	storeFlags := platform.NewStoreFlags(flags, inventory.ServiceName)
	ttl := flags.Duration("reservation-ttl", "RESERVATION_TTL", inventory.DefaultReservationTTL, "how long a reservation holds stock")
	expiryEvery := flags.Duration("expiry-interval", "EXPIRY_INTERVAL", 30*time.Second, "how often overdue reservations are expired")
	if err := flags.Parse(args); err != nil {
		return err
	}
	proc, err := common.Start(ctx, inventory.ServiceName, version, getenv, stdout)
	if err != nil {
		return err
	}
	defer proc.Close(ctx, &err)
	store, err := platform.OpenStore(ctx, proc, storeFlags, inventory.OpenStore)
	if err != nil {
		return err
	}
	if seeded, err := store.Seed(ctx, inventory.Catalogue); err != nil {
		return err
	} else if seeded {
		proc.Telemetry.Logger.Info("seeded the demo catalogue", "products", len(inventory.Catalogue))
	}

	svc := inventory.NewService(store, inventory.Options{ReservationTTL: *ttl})
	svc = inventory.Instrumenting(proc.Telemetry.Registry)(svc)
	// One set of endpoints, served over HTTP and gRPC.
	endpoints := inventory.API.Endpoints(svc).With(proc.EndpointMiddleware)
	proc.GRPC = append(proc.GRPC, inventory.GRPC.Service(endpoints))
	return proc.Serve(ctx, inventory.API.Handler(endpoints), func(ctx context.Context) error {
		return inventory.RunExpiry(ctx, store, *expiryEvery, proc.Telemetry.Logger)
	})
}
