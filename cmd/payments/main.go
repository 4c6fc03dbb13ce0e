// Command payments runs the payments service: charges and refunds, keyed
// by order ID, with fault knobs for demos and chaos tests, over HTTP.
package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/platform"
	"github.com/glasshouse-dev/glasshouse/services/payments"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { platform.Main(payments.ServiceName, run) }

// run wires the service inside-out (store → service → faults → metrics →
// endpoints → HTTP and gRPC) and serves until ctx is cancelled, registered in
// Consul. Then it shuts down in order: deregister, drain, close the store,
// flush spans.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := config.NewFlags(payments.ServiceName, getenv, stdout)
	common := platform.CommonFlags(flags, payments.ServiceName)
	storeFlags := platform.NewStoreFlags(flags, payments.ServiceName)
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
	store, err := platform.OpenStore(ctx, proc, storeFlags, payments.OpenStore)
	if err != nil {
		return err
	}

	faults := payments.NewFaults(*faultErrorRate, *faultLatency)
	tel.Registry.MustRegister(faults)
	if initialFaults != (payments.FaultSettings{}) {
		tel.Logger.Warn("fault injection is on", "error_rate", initialFaults.ErrorRate, "latency", initialFaults.Latency.String())
	}

	// Faults sit inside the metrics, so an injected failure is counted
	// like a real one: that is what a chaos drill must show.
	svc := payments.NewService(store, payments.Options{})
	svc = payments.InjectFaults(faults, rand.Float64)(svc)
	svc = payments.Instrumenting(tel.Registry)(svc)

	// The fault knobs answer on the admin listener, never on the API's.
	// Their endpoints are traced, measured and logged (so a drill leaves
	// a record of who turned what when) but take no baggage faults
	// (proc.EndpointMiddleware would add them): a drill asking to fail
	// all of payments must not fail the knob that ends it.
	proc.AdminRoutes = payments.AdminAPI.Server(faults, tel.ServerEndpoint)
	// One set of endpoints, served over HTTP and gRPC.
	endpoints := payments.API.Endpoints(svc).With(proc.EndpointMiddleware)
	proc.GRPC = append(proc.GRPC, payments.GRPC.Service(endpoints))
	return proc.Serve(ctx, payments.API.Handler(endpoints))
}
