package events

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Connect opens a connection to the NATS servers at url (comma-separated
// for a cluster) and its JetStream context, named name in the server's
// connection list.
//
// It never waits for the server: a service starts, and serves, while NATS
// is down. The connection retries the first connect and every reconnect
// forever, every 250ms (jittered), and holds nothing while disconnected
// (no reconnect buffer), so a publish in that time fails at once and its
// outbox row waits for the next attempt, rather than sitting in a buffer
// that a crash would lose and a reconnect would send unasked.
func Connect(url, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 0),
		nats.ReconnectBufSize(-1),
		nats.Timeout(2*time.Second),
		nats.PingInterval(10*time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS: disconnected; reconnecting", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS: reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("NATS: connected", "server", nc.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("NATS at %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream at %s: %w", url, err)
	}
	return nc, js, nil
}

// disconnected names the cause of a call that failed because nc is not
// connected: nats.go reports a publish refused while reconnecting as its
// reconnect buffer's limit exceeded (there is none), and one made before
// the first connect as headers the server does not support, both of
// which read like something other than an absent server.
func disconnected(nc *nats.Conn, err error) error {
	if nc != nil && !nc.IsConnected() {
		return fmt.Errorf("NATS is not connected (%s): %w", strings.ToLower(nc.Status().String()), err)
	}
	return err
}
