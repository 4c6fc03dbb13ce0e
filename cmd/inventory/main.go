// Command inventory runs the inventory service: the product catalogue,
// stock and reservations, over HTTP.
package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/platform"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { platform.Main("inventory", run) }

// run wires the service inside-out (store → service → endpoints → HTTP) and
// serves until ctx is cancelled, registered in Consul. Then it shuts down
// in order: deregister, drain, close the store, flush spans.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := config.NewFlags("inventory", getenv, stdout)
	common := platform.CommonFlags(flags, ":8082")
	dataDir := flags.String("data-dir", "DATA_DIR", "data/inventory", "directory for the SQLite database (replicas on one host share it)")
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
	tel := proc.Telemetry

	store, err := inventory.OpenStore(ctx, filepath.Join(*dataDir, "inventory.db"), tel.TracerProvider)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	if seeded, err := store.Seed(ctx, inventory.Catalogue); err != nil {
		return err
	} else if seeded {
		tel.Logger.Info("seeded the demo catalogue", "products", len(inventory.Catalogue))
	}
	proc.Health.AddCheck("store", store.Ping)

	var svc inventory.Service = inventory.NewService(store, inventory.Options{ReservationTTL: *ttl})
	svc = inventory.Instrumenting(tel.Registry)(svc)
	endpoints := inventory.NewEndpoints(svc, proc.Endpoint)

	return proc.Serve(ctx, inventory.NewHTTPHandler(endpoints), func(ctx context.Context) error {
		return inventory.RunExpiry(ctx, store, *expiryEvery, tel.Logger)
	})
}
