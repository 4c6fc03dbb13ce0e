// Command inventory runs the inventory service: the product catalogue,
// stock and reservations, over HTTP.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/transport"
	oklog "github.com/oklog/run"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		os.Exit(1)
	}
}

// run wires the service inside-out (store → service → endpoints → HTTP) and
// serves until ctx is cancelled, registered in Consul. Then it shuts down
// in order: deregister, drain, close the store, flush spans.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := config.NewFlags("inventory", getenv, stdout)
	listen := flags.String("listen", "LISTEN_ADDR", ":8082", "address to serve HTTP on")
	dataDir := flags.String("data-dir", "DATA_DIR", "data/inventory", "directory for the SQLite database")
	ttl := flags.Duration("reservation-ttl", "RESERVATION_TTL", inventory.DefaultReservationTTL, "how long a reservation holds stock")
	expiryEvery := flags.Duration("expiry-interval", "EXPIRY_INTERVAL", 30*time.Second, "how often overdue reservations are expired")
	drain := flags.Duration("drain-timeout", "DRAIN_TIMEOUT", 10*time.Second, "how long in-flight requests get to finish on shutdown")
	discovery := config.DiscoveryFlags(flags)
	if err := flags.Parse(args); err != nil {
		return err
	}

	// Listen first: the port (maybe chosen by the kernel) names the
	// instance in Consul and in telemetry.
	ln, err := transport.Listen(*listen, "-listen / LISTEN_ADDR")
	if err != nil {
		return err
	}
	defer ln.Close()
	registration := discovery.Registration(inventory.ServiceName, version, ln)

	tel, shutdownTelemetry, err := observability.Setup(ctx, observability.Config{
		ServiceName:    inventory.ServiceName,
		ServiceVersion: version,
		InstanceID:     registration.ID,
		Getenv:         getenv,
		LogOutput:      stdout,
	})
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, shutdownTelemetry(flushCtx))
	}()

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

	var svc inventory.Service = inventory.NewService(store, inventory.Options{ReservationTTL: *ttl})
	svc = inventory.Instrumenting(tel.Registry)(svc)
	endpoints := inventory.NewEndpoints(svc, tel.ServerEndpoint)

	health := observability.NewHealth()
	health.AddCheck("store", store.Ping)
	serverCfg := transport.ServerConfig{DrainTimeout: *drain}
	srv := transport.NewServer(ln, transport.Handler(tel, health, inventory.NewHTTPHandler(endpoints), serverCfg), tel, health, serverCfg)

	consulClient, err := transport.NewConsulClient(*discovery.ConsulAddr)
	if err != nil {
		return err
	}
	registrar := transport.NewRegistrar(consulClient, registration, tel.Logger, tel.Registry)
	// On shutdown, leave Consul before draining, so callers stop choosing
	// this instance while it still answers the requests in flight.
	srv.OnShutdown(registrar.Deregister)

	var g oklog.Group
	g.Add(srv.Run, srv.Stop)
	g.Add(registrar.Run, registrar.Stop)
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return inventory.RunExpiry(ctx, store, *expiryEvery, tel.Logger) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { <-ctx.Done(); return nil }, func(error) { cancel() })
	}
	return errors.Join(g.Run(), srv.ShutdownErr())
}
