package events

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/storage"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var discard = slog.New(slog.DiscardHandler)

func testStream(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: name, Subjects: []string{strings.ToLower(name) + ".>"},
		Storage: jetstream.FileStorage, Duplicates: time.Minute,
	}
}

// openOutbox opens source (an empty database, or one opened before) with
// the outbox table.
func openOutbox(t testing.TB, source string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), source, noop.NewTracerProvider(), []string{Migration}, func(db *storage.DB) *storage.DB { return db })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// writeEvents writes n events on subject in one transaction, under the
// tracer's spans, and returns their IDs in order.
func writeEvents(t testing.TB, db *storage.DB, tracer trace.Tracer, subject string, n int) []string {
	t.Helper()
	var ids []string
	at := time.Now()
	err := db.InTx(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
		ids = ids[:0]
		for i := range n {
			id := fmt.Sprintf("evt-%s-%04d", strings.ReplaceAll(subject, ".", "-"), i)
			ids = append(ids, id)
			// One millisecond apart, so their order is their age.
			if err := Write(context.Background(), tx, tracer, Event{
				ID: id, Subject: subject, ConversationID: "conv-" + strconv.Itoa(i),
				Payload: []byte(`{"n":` + strconv.Itoa(i) + `}`), At: at.Add(time.Duration(i) * time.Millisecond),
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func connect(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, js, err := Connect(url, t.Name(), discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return js
}

// streamMessages reads every message of the stream, in stream order.
func streamMessages(t testing.TB, js jetstream.JetStream, stream string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := int(info.State.Msgs)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for len(out) < want {
		batch, err := c.Fetch(want-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("after %d of %d messages: %v", len(out), want, err)
		}
	}
	return out
}

func TestRelayPublishesEachCommittedRowOnceInOrderWithItsTraceContext(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		srv := testenv.StartNATS(t)
		db := openOutbox(t, b.NewDatabase(t))
		rec := tracetest.NewSpanRecorder()
		tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
		ids := writeEvents(t, db, tracer, "orders.confirmed", 5)
		// An event whose transaction rolled back never existed.
		err := db.InTx(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
			if err := Write(context.Background(), tx, tracer, Event{ID: "evt-rolled-back", Subject: "orders.confirmed", Payload: []byte(`{}`), At: time.Now()}); err != nil {
				return err
			}
			return fmt.Errorf("the change failed")
		})
		if err == nil {
			t.Fatal("the transaction did not fail")
		}

		js := connect(t, srv.URL)
		reg := prometheus.NewRegistry()
		relay := NewRelay(db, js, RelayConfig{Stream: testStream("ORDERS")}, discard, noop.NewTracerProvider(), reg)
		if n, err := relay.Pass(context.Background()); err != nil || n != 5 {
			t.Fatalf("Pass = %d, %v; want the 5 committed rows", n, err)
		}
		msgs := streamMessages(t, js, "ORDERS")
		if len(msgs) != 5 {
			t.Fatalf("the stream holds %d messages; want 5", len(msgs))
		}
		producers := map[string]trace.SpanContext{}
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindProducer && s.Name() == "create orders.confirmed" {
				for _, a := range s.Attributes() {
					if a.Key == attrMessageID {
						producers[a.Value.AsString()] = s.SpanContext()
					}
				}
			}
		}
		for i, m := range msgs {
			id := m.Headers().Get(jetstream.MsgIDHeader)
			if id != ids[i] || m.Subject() != "orders.confirmed" || string(m.Data()) != `{"n":`+strconv.Itoa(i)+`}` {
				t.Errorf("message %d: %s on %s, %s; want %s on orders.confirmed", i, id, m.Subject(), m.Data(), ids[i])
			}
			sc, ok := producers[id]
			if !ok {
				t.Errorf("no PRODUCER span recorded for %s", id)
				continue
			}
			want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
			if got := m.Headers().Get("traceparent"); got != want {
				t.Errorf("%s: traceparent %q; want the producer span's %q", id, got, want)
			}
		}
		if n, err := Backlog(context.Background(), db); err != nil || n != 0 {
			t.Errorf("backlog = %d, %v; want every row marked published", n, err)
		}
		if got := testutil.ToFloat64(relay.metrics.published.WithLabelValues("orders.confirmed")); got != 5 {
			t.Errorf("glasshouse_outbox_published_total = %v; want 5", got)
		}
		// A second pass finds nothing to do.
		if n, err := relay.Pass(context.Background()); err != nil || n != 0 {
			t.Errorf("second Pass = %d, %v; want nothing left", n, err)
		}
	})
}

func TestRelayKeepsRowsWhileNATSIsDownAndBacksOff(t *testing.T) {
	db := openOutbox(t, testenv.SQLite.NewDatabase(t))
	ids := writeEvents(t, db, noop.NewTracerProvider().Tracer(""), "orders.confirmed", 3)

	// Nothing listens at this address: the connection keeps retrying.
	down := connect(t, "nats://127.0.0.1:"+strconv.Itoa(testenv.FreePorts(t, 1)[0]))
	reg := prometheus.NewRegistry()
	cfg := RelayConfig{Stream: testStream("ORDERS"), PublishTimeout: 300 * time.Millisecond, MinBackoff: 200 * time.Millisecond}
	relay := NewRelay(db, down, cfg, discard, noop.NewTracerProvider(), reg)
	if n, err := relay.Pass(context.Background()); err == nil || n != 0 {
		t.Fatalf("Pass with NATS down = %d, %v; want an error and nothing published", n, err)
	} else if !strings.Contains(err.Error(), "NATS is not connected") {
		t.Errorf("Pass with NATS down: %q; want it to say NATS is not connected", err)
	}
	rows, err := Rows(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows; want the 3 written", len(rows))
	}
	for _, r := range rows {
		if !r.PublishedAt.IsZero() {
			t.Errorf("%s marked published with NATS down", r.ID)
		}
	}

	// With the stream there, the first publish fails, and its row is
	// given back with one attempt and the reason.
	srv := testenv.StartNATS(t)
	up := connect(t, srv.URL)
	if _, err := up.CreateStream(context.Background(), testStream("ORDERS")); err != nil {
		t.Fatal(err)
	}
	relay.streamReady.Store(true)
	if _, err := relay.Pass(context.Background()); err == nil {
		t.Fatal("publish with NATS down succeeded")
	} else if !strings.Contains(err.Error(), "NATS is not connected") {
		t.Errorf("publish with NATS down: %q; want it to say NATS is not connected", err)
	}
	rows, _ = Rows(context.Background(), db)
	if rows[0].Attempts != 1 || rows[0].LastError == "" || rows[1].Attempts != 0 {
		t.Errorf("after a failed publish: %+v; want the first row at 1 attempt with its error, the rest untouched", rows)
	}
	if got := testutil.ToFloat64(relay.metrics.failures.WithLabelValues("orders.confirmed")); got != 1 {
		t.Errorf("glasshouse_outbox_publish_failures_total = %v; want 1", got)
	}

	// A relay that reaches NATS publishes them all once their backoff is
	// over, in order.
	live := NewRelay(db, up, cfg, discard, noop.NewTracerProvider(), prometheus.NewRegistry())
	published := 0
	testenv.Eventually(t, 5*time.Second, "the rows are published after their backoff", func() error {
		n, err := live.Pass(context.Background())
		published += n
		if err != nil || published < 3 {
			return fmt.Errorf("%d published (%v)", published, err)
		}
		return nil
	})
	msgs := streamMessages(t, up, "ORDERS")
	if len(msgs) != 3 {
		t.Fatalf("the stream holds %d messages; want 3", len(msgs))
	}
	for i, m := range msgs {
		if got := m.Headers().Get(jetstream.MsgIDHeader); got != ids[i] {
			t.Errorf("message %d is %s; want %s", i, got, ids[i])
		}
	}
}

// The chaos switch: a fire-and-forget relay loses what NATS did not
// take, as publishing outside the outbox would.
func TestFireAndForgetDropsWhatNATSDidNotTake(t *testing.T) {
	db := openOutbox(t, testenv.SQLite.NewDatabase(t))
	writeEvents(t, db, noop.NewTracerProvider().Tracer(""), "orders.confirmed", 3)
	down := connect(t, "nats://127.0.0.1:"+strconv.Itoa(testenv.FreePorts(t, 1)[0]))
	cfg := RelayConfig{Stream: testStream("ORDERS"), PublishTimeout: 200 * time.Millisecond, FireAndForget: true}
	relay := NewRelay(db, down, cfg, discard, noop.NewTracerProvider(), prometheus.NewRegistry())
	if _, err := relay.Pass(context.Background()); err != nil {
		t.Fatalf("fire-and-forget Pass with NATS down: %v", err)
	}
	rows, err := Rows(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.PublishedAt.IsZero() {
			t.Errorf("%s kept for a retry; fire-and-forget must drop it", r.ID)
		}
	}
	if got := testutil.ToFloat64(relay.metrics.failures.WithLabelValues("orders.confirmed")); got != 3 {
		t.Errorf("glasshouse_outbox_publish_failures_total = %v; want 3", got)
	}
}

func TestTwoRelaysPublishEveryRowExactlyOnce(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		srv := testenv.StartNATS(t)
		source := b.NewDatabase(t)
		db := openOutbox(t, source)
		const n = 300
		writeEvents(t, db, noop.NewTracerProvider().Tracer(""), "orders.confirmed", n)

		// Two replicas: each its own database handle and NATS connection.
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var relays []*Relay
		for range 2 {
			r := NewRelay(openOutbox(t, source), connect(t, srv.URL), RelayConfig{Stream: testStream("ORDERS"), Batch: 10, Poll: 20 * time.Millisecond},
				discard, noop.NewTracerProvider(), prometheus.NewRegistry())
			relays = append(relays, r)
			wg.Go(func() { r.Run(ctx) })
		}
		t.Cleanup(func() { cancel(); wg.Wait() })
		testenv.Eventually(t, 30*time.Second, "every row is published", func() error {
			if left, err := Backlog(context.Background(), db); err != nil || left != 0 {
				return fmt.Errorf("%d rows left (%v)", left, err)
			}
			return nil
		})
		cancel()
		wg.Wait()
		var published, dups float64
		for _, r := range relays {
			published += testutil.ToFloat64(r.metrics.published.WithLabelValues("orders.confirmed"))
			dups += testutil.ToFloat64(r.metrics.duplicates.WithLabelValues("orders.confirmed"))
		}
		if published != n || dups != 0 {
			t.Errorf("the relays published %v rows, %v of them duplicates; want %d, none (a lease keeps a row to one relay)", published, dups, n)
		}
		msgs := streamMessages(t, connect(t, srv.URL), "ORDERS")
		seen := map[string]int{}
		for _, m := range msgs {
			seen[m.Headers().Get(jetstream.MsgIDHeader)]++
		}
		if len(msgs) != n || len(seen) != n {
			t.Errorf("the stream holds %d messages of %d events; want %d, once each", len(msgs), len(seen), n)
		}
	})
}

func TestARowWhoseRelayDiedIsPublishedAgainAndStoredOnce(t *testing.T) {
	srv := testenv.StartNATS(t)
	db := openOutbox(t, testenv.SQLite.NewDatabase(t))
	writeEvents(t, db, noop.NewTracerProvider().Tracer(""), "orders.confirmed", 4)
	js := connect(t, srv.URL)
	// A lease long enough that the claim, four publishes and the other
	// relay's first pass fit in it on a slow machine.
	cfg := RelayConfig{Stream: testStream("ORDERS"), Lease: 2 * time.Second}

	// The first relay claims and publishes, and dies before marking.
	dead := NewRelay(db, js, cfg, discard, noop.NewTracerProvider(), prometheus.NewRegistry())
	if err := dead.ensureStream(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, _, err := dead.claim(context.Background())
	if err != nil || len(rows) != 4 {
		t.Fatalf("claim = %d rows, %v", len(rows), err)
	}
	for _, r := range rows {
		if _, err := dead.publish(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}

	// Another takes the rows once their lease lapses, and not before.
	other := NewRelay(db, js, cfg, discard, noop.NewTracerProvider(), prometheus.NewRegistry())
	if n, err := other.Pass(context.Background()); err != nil || n != 0 {
		t.Fatalf("Pass within the lease = %d, %v; want no row taken", n, err)
	}
	testenv.Eventually(t, 10*time.Second, "the lapsed rows are published again", func() error {
		if _, err := other.Pass(context.Background()); err != nil {
			return err
		}
		if left, err := Backlog(context.Background(), db); err != nil || left != 0 {
			return fmt.Errorf("%d rows left (%v)", left, err)
		}
		return nil
	})
	if got := testutil.ToFloat64(other.metrics.duplicates.WithLabelValues("orders.confirmed")); got != 4 {
		t.Errorf("glasshouse_outbox_duplicates_total = %v; want the 4 republished rows acknowledged as duplicates", got)
	}
	if msgs := streamMessages(t, js, "ORDERS"); len(msgs) != 4 {
		t.Errorf("the stream holds %d messages; want 4: the duplicate window drops the second copies", len(msgs))
	}
}
