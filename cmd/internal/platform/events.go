package platform

import (
	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/events"
	"github.com/nats-io/nats.go/jetstream"
)

// EventFlags are the flags of a service that publishes or consumes
// events over NATS JetStream.
type EventFlags struct {
	url      *string
	replicas *int
}

// NewEventFlags defines them on f.
func NewEventFlags(f *config.Flags) EventFlags {
	return EventFlags{
		url: f.String("nats", "NATS_URL", "nats://127.0.0.1:4222", "NATS servers for events (comma-separated for a cluster)"),
		replicas: f.Int("stream-replicas", "EVENTS_STREAM_REPLICAS", 1,
			"replicas of the streams this service creates: 1 on one server, 3 in a JetStream cluster"),
	}
}

// StreamReplicas is the number of replicas a stream this service creates
// asks for.
func (f EventFlags) StreamReplicas() int { return *f.replicas }

// Connect connects to NATS without waiting for it (events.Connect): the
// service serves while NATS is down. The connection closes when the
// process closes, before its stores (every publish waited for its ack,
// so nothing is left to flush).
func (f EventFlags) Connect(p *Process) (jetstream.JetStream, error) {
	nc, js, err := events.Connect(*f.url, p.service+"/"+p.registration.ID, p.Telemetry.Logger)
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() error { nc.Close(); return nil })
	return js, nil
}
