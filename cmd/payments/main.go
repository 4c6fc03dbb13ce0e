// Command payments runs the payments service: charges and refunds, keyed
// by order ID, with fault knobs for demos and chaos tests, over HTTP.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/platform"
	"github.com/glasshouse-dev/glasshouse/services/payments"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { platform.Main("payments", run) }

// run wires the service inside-out (store → service → faults → metrics →
// endpoints → HTTP) and serves until ctx is cancelled, registered in
// Consul. Then it shuts down in order: deregister, drain, close the store,
// flush spans.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := config.NewFlags("payments", getenv, stdout)
	common := platform.CommonFlags(flags, ":8084")
	dataDir := flags.String("data-dir", "DATA_DIR", "data/payments", "directory for the SQLite database (replicas on one host share it)")
	faultErrorRate := flags.Float("fault-error-rate", "FAULT_ERROR_RATE", 0, "probability (0 to 1) that a charge or refund fails on purpose; change it at run time with PUT /admin/faults on the admin listener")
	faultLatency := flags.Duration("fault-latency", "FAULT_LATENCY", 0, "delay added to every charge and refund (at most 30s); change it at run time with PUT /admin/faults on the admin listener")
	if err := flags.Parse(args); err != nil {
		return err
	}
	initialFaults := payments.FaultSettings{ErrorRate: *faultErrorRate, Latency: payments.Duration(*faultLatency)}
	if err := initialFaults.Validate(); err != nil {
		return fmt.Errorf("-fault-error-rate / -fault-latency: %w", err)
	}

	proc, err := common.Start(ctx, payments.ServiceName, version, getenv, stdout)
	if err != nil {
		return err
	}
	defer proc.Close(ctx, &err)
	tel := proc.Telemetry

	store, err := payments.OpenStore(ctx, filepath.Join(*dataDir, "payments.db"), tel.TracerProvider)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	proc.Health.AddCheck("store", store.Ping)

	faults := payments.NewFaults(*faultErrorRate, *faultLatency)
	tel.Registry.MustRegister(faults)
	if initialFaults != (payments.FaultSettings{}) {
		tel.Logger.Warn("fault injection is on", "error_rate", initialFaults.ErrorRate, "latency", initialFaults.Latency.String())
	}

	// Faults sit inside the metrics, so an injected failure is counted
	// like a real one: that is what a chaos drill must show.
	var svc payments.Service = payments.NewService(store, payments.Options{})
	svc = payments.InjectFaults(faults, rand.Float64)(svc)
	svc = payments.Instrumenting(tel.Registry)(svc)
	endpoints := payments.NewEndpoints(svc, proc.Endpoint)
	admin := payments.NewAdminEndpoints(faults, tel.ServerEndpoint)

	// The fault knobs answer on the admin listener, never on the API's.
	proc.AdminRoutes = payments.NewAdminHTTPHandler(admin)
	return proc.Serve(ctx, payments.NewHTTPHandler(endpoints))
}
