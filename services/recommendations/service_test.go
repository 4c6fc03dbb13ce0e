package recommendations_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/events"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// confirmed is an order.confirmed event as orders writes it: its own
// type, so a change there that this service cannot read fails here.
func confirmed(t *testing.T, orderID, userID string, skus ...string) events.Message {
	t.Helper()
	ev := orders.OrderEvent{
		SchemaVersion: orders.EventSchemaVersion, EventID: orderID + ".confirmed", Type: "order.confirmed",
		OccurredAt: time.Now(), OrderID: orderID, UserID: userID, Status: orders.Confirmed,
		TotalCents: 100, Currency: "EUR",
	}
	for _, sku := range skus {
		ev.Items = append(ev.Items, orders.Line{SKU: sku, Quantity: 1, UnitPriceCents: 50})
	}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return events.Message{ID: ev.EventID, Subject: orders.SubjectConfirmed, Data: data, Sequence: 1, Delivery: 1}
}

// The names this service writes out rather than imports are orders'.
func TestTheEventContractIsOrders(t *testing.T) {
	if recommendations.Stream != orders.StreamName || recommendations.SubjectConfirmed != orders.SubjectConfirmed ||
		recommendations.SchemaVersion != orders.EventSchemaVersion {
		t.Errorf("recommendations reads %s / %s v%d; orders publishes %s / %s v%d",
			recommendations.Stream, recommendations.SubjectConfirmed, recommendations.SchemaVersion,
			orders.StreamName, orders.SubjectConfirmed, orders.EventSchemaVersion)
	}
}

func TestHandlerLearnsConfirmedOrders(t *testing.T) {
	store := openStore(t, testenv.SQLite)
	handle := recommendations.Handler(store)
	ctx := context.Background()
	for _, m := range []events.Message{confirmed(t, "o1", "ann", "MUG-01", "TEE-02"), confirmed(t, "o2", "bob", "TEE-02", "MUG-01")} {
		if err := handle(ctx, m); err != nil {
			t.Fatalf("handle %s: %v", m.ID, err)
		}
	}
	got, err := recommendations.NewService(store).GetRecommendations(ctx, "MUG-01", 5)
	if err != nil {
		t.Fatal(err)
	}
	want := recommendations.Recommendations{SKU: "MUG-01", Recommendations: []rec{{SKU: "TEE-02", Customers: 2}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetRecommendations = %+v, want %+v", got, want)
	}
}

// What the handler can never process is poison, so the consumer
// dead-letters it instead of retrying it forever; and it changes nothing.
func TestHandlerRefusesWhatItCannotRead(t *testing.T) {
	store := openStore(t, testenv.SQLite)
	handle := recommendations.Handler(store)
	good := confirmed(t, "o1", "ann", "MUG-01")
	newer := good
	newer.Data = []byte(`{"schema_version": 2, "event_id": "o1.confirmed", "order_id": "o1", "user_id": "ann", "items": [{"sku": "MUG-01"}]}`)
	for name, m := range map[string]events.Message{
		"not JSON":        {Subject: good.Subject, Data: []byte(`{"schema_version": 1,`)},
		"another version": newer,
		"no user":         {Subject: good.Subject, Data: []byte(`{"schema_version": 1, "event_id": "o1.confirmed", "order_id": "o1", "items": [{"sku": "MUG-01"}]}`)},
		"no items":        {Subject: good.Subject, Data: []byte(`{"schema_version": 1, "event_id": "o1.confirmed", "order_id": "o1", "user_id": "ann", "items": []}`)},
		"a bad SKU":       {Subject: good.Subject, Data: []byte(`{"schema_version": 1, "event_id": "o1.confirmed", "order_id": "o1", "user_id": "ann", "items": [{"sku": "../x"}]}`)},
	} {
		if err := handle(context.Background(), m); !events.IsPoison(err) {
			t.Errorf("%s: handler returned %v, want a poison error", name, err)
		}
	}
	if n, err := store.ProcessedEvents(context.Background()); err != nil || n != 0 {
		t.Errorf("ProcessedEvents = %d, %v after only poison; want 0", n, err)
	}
}

func TestLimits(t *testing.T) {
	for in, want := range map[string]int{"": recommendations.DefaultLimit, "1": 1, "50": 50} {
		if got, err := recommendations.ParseLimit(in); err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "51", "-1", "five", "1.5"} {
		_, err := recommendations.ParseLimit(in)
		testenv.WantCode(t, err, "invalid_limit")
	}
	svc := recommendations.NewService(openStore(t, testenv.SQLite))
	_, err := svc.GetRecommendations(context.Background(), "MUG-01", 0)
	testenv.WantCode(t, err, "invalid_limit")
	_, err = svc.GetRecommendations(context.Background(), "bad sku!", 5)
	testenv.WantCode(t, err, "invalid_sku")
}
