// Command recommendations runs the recommendations service: "customers
// who bought X also bought Y", learnt from orders' events on NATS and
// served over HTTP and gRPC.
package main

import (
	"context"
	"io"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/platform"
	"github.com/glasshouse-dev/glasshouse/events"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { platform.Main(recommendations.ServiceName, run) }

// run wires the service (store → service → endpoints → HTTP and gRPC),
// with the consumer of orders' events beside it, and serves until ctx is
// cancelled.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := config.NewFlags(recommendations.ServiceName, getenv, stdout)
	common := platform.CommonFlags(flags, recommendations.ServiceName)
	storeFlags := platform.NewStoreFlags(flags, recommendations.ServiceName)
	eventFlags := platform.NewEventFlags(flags)
	ackFirst := flags.Bool("ack-before-handle", "ACK_BEFORE_HANDLE", false, "acknowledge each event before recording it, so a crash loses it (only for the chaos suite; never in production)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	proc, err := common.Start(ctx, recommendations.ServiceName, version, getenv, stdout)
	if err != nil {
		return err
	}
	defer proc.Close(ctx, &err)
	tel := proc.Telemetry
	store, err := platform.OpenStore(ctx, proc, storeFlags, recommendations.OpenStore)
	if err != nil {
		return err
	}
	if *ackFirst {
		tel.Logger.Warn("events are acknowledged BEFORE they are recorded (-ack-before-handle): a crash loses them")
	}

	// A store that has recorded nothing rebuilds the model from the
	// stream's start; one that has resumes where the consumer left off.
	processed, err := store.ProcessedEvents(ctx)
	if err != nil {
		return err
	}
	js, err := eventFlags.Connect(proc)
	if err != nil {
		return err
	}
	consumer := events.NewConsumer(js, events.ConsumerConfig{
		Stream: recommendations.Stream, Durable: recommendations.Durable,
		Subjects: []string{recommendations.SubjectConfirmed},
		Replicas: eventFlags.StreamReplicas(), Replay: processed == 0, AckBeforeHandle: *ackFirst,
	}, recommendations.Handler(store), tel.Logger, tel.TracerProvider, tel.Registry)

	endpoints := recommendations.API.Endpoints(recommendations.NewService(store)).With(proc.EndpointMiddleware)
	proc.GRPC = append(proc.GRPC, recommendations.GRPC.Service(endpoints))
	return proc.Serve(ctx, recommendations.API.Handler(endpoints), consumer.Run)
}
