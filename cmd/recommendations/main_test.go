package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// publisher stands in for orders' relay: the ORDERS stream on a real
// nats-server, and order.confirmed events on it, each under its event ID.
type publisher struct {
	t  *testing.T
	js jetstream.JetStream
	n  int
}

func newPublisher(t *testing.T, url string) *publisher {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, orders.StreamConfig(1)); err != nil {
		t.Fatal(err)
	}
	return &publisher{t: t, js: js}
}

func (p *publisher) confirm(user string, skus ...string) {
	p.n++
	ev := orders.OrderEvent{SchemaVersion: orders.EventSchemaVersion, EventID: fmt.Sprintf("ord_%d.confirmed", p.n),
		Type: "order.confirmed", OccurredAt: time.Now().UTC(), OrderID: fmt.Sprintf("ord_%d", p.n), UserID: user,
		Status: orders.Confirmed, TotalCents: 100, Currency: "EUR"}
	for _, sku := range skus {
		ev.Items = append(ev.Items, orders.Line{SKU: sku, Quantity: 1, UnitPriceCents: 100})
	}
	data, err := json.Marshal(ev)
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.js.Publish(ctx, orders.SubjectConfirmed, data, jetstream.WithMsgID(ev.EventID)); err != nil {
		p.t.Fatal(err)
	}
}

// TestRunLearnsFromTheStreamAndRebuildsFromIt starts the real service
// through run against a real Consul and nats-server, and calls it as the
// gateway does: found in Consul, over gRPC. It learns what the stream
// holds; restarted on its store it resumes; started on an empty store it
// replays the stream from the start and answers the same.
func TestRunLearnsFromTheStreamAndRebuildsFromIt(t *testing.T) {
	consul := testenv.StartConsul(t)
	natsServer := testenv.StartNATS(t)
	pub := newPublisher(t, natsServer.URL)
	pub.confirm("ann", "MUG-01", "TEE-02")
	pub.confirm("bob", "MUG-01")
	pub.confirm("bob", "CAP-03")

	dataDir := t.TempDir()
	start := func(dir string) *testenv.InProcess {
		return testenv.RunService(t, run, map[string]string{
			"DATA_DIR": dir, "LISTEN_ADDR": "127.0.0.1:0", "CONSUL_HTTP_ADDR": consul.Addr, "CHECK_INTERVAL": "1s",
			"NATS_URL": natsServer.URL,
		}, nil)
	}
	client := newClient(t, consul)
	want := func(t *testing.T, what string, recs []recommendations.Recommendation) {
		t.Helper()
		testenv.Eventually(t, 20*time.Second, what, func() error {
			got, err := client.GetRecommendations(context.Background(), "MUG-01", 5)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got.Recommendations, recs) {
				return fmt.Errorf("MUG-01: %v, want %v", got.Recommendations, recs)
			}
			return nil
		})
	}

	svc := start(dataDir)
	consul.WaitPassing(recommendations.ServiceName, 1, 20*time.Second)
	consul.WaitPassing(recommendations.ServiceName+services.GRPCSuffix, 1, 20*time.Second)
	learnt := []recommendations.Recommendation{{SKU: "CAP-03", Customers: 1}, {SKU: "TEE-02", Customers: 1}}
	want(t, "the three events learnt", learnt)
	svc.Stop()

	// Restarted on its store, it resumes: an event published while it was
	// down arrives, and the earlier ones are not counted again.
	pub.confirm("cat", "TEE-02", "MUG-01")
	svc = start(dataDir)
	resumed := []recommendations.Recommendation{{SKU: "TEE-02", Customers: 2}, {SKU: "CAP-03", Customers: 1}}
	want(t, "the fourth event learnt, the first three not again", resumed)
	svc.Stop()

	// On an empty store, the stream from its start rebuilds the same model.
	start(t.TempDir())
	want(t, "the model rebuilt by replay", resumed)
}

// newClient returns recommendations as the gateway sees it: found in
// Consul, over gRPC.
func newClient(t *testing.T, consul *testenv.Consul) recommendations.Service {
	t.Helper()
	tel := testenv.Telemetry(t, "gateway")
	client, err := transport.NewConsulClient(consul.Addr)
	if err != nil {
		t.Fatal(err)
	}
	remote := transport.NewRemote(client, transport.ClientConfig{
		Service: recommendations.ServiceName, ConsulName: recommendations.ServiceName + services.GRPCSuffix,
	}, tel)
	t.Cleanup(remote.Close)
	return recommendations.NewClient(recommendations.GRPC.Factory(remote.GRPC()))
}
