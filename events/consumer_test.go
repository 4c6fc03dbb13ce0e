package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// seen records what a handler was given, safely across goroutines.
type seen struct {
	mu         sync.Mutex
	deliveries map[string]int
	handled    []string
}

func (s *seen) deliver(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deliveries == nil {
		s.deliveries = map[string]int{}
	}
	s.deliveries[id]++
	return s.deliveries[id]
}

func (s *seen) commit(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handled = append(s.handled, id)
}

func (s *seen) done() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.handled)
}

func (s *seen) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deliveries[id]
}

// publishIDs publishes one message per ID on orders.confirmed, its ID as
// both its Nats-Msg-Id and its body.
func publishIDs(t *testing.T, js jetstream.JetStream, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: "orders.confirmed", Data: []byte(id), Header: nats.Header{nats.MsgIdHdr: {id}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// runConsumer runs c until the test ends, and waits for it to return.
func runConsumer(t *testing.T, c *Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("consumer: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("the consumer did not stop within 10s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitNoLag waits until c's lag gauges, as the server reports them, say
// nothing is left to deliver or to acknowledge.
func waitNoLag(t *testing.T, c *Consumer) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, "the consumer reports no lag", func() error {
		if p, a := testutil.ToFloat64(c.metrics.pending), testutil.ToFloat64(c.metrics.ackPending); p != 0 || a != 0 {
			return fmt.Errorf("pending %v, ack pending %v", p, a)
		}
		return nil
	})
}

func fastConsumer(durable string) ConsumerConfig {
	return ConsumerConfig{Stream: "ORDERS", Durable: durable, Subjects: []string{"orders.confirmed"},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, LagEvery: 50 * time.Millisecond, MaxDeliveries: 3}
}

func TestConsumerHandlesEveryMessageInOrderRetriesAFailureAndLinksEachSpanToItsProducer(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := connect(t, srv.URL)
	db := openOutbox(t, t.TempDir()+"/outbox.db")
	producers := tracetest.NewSpanRecorder()
	ids := writeEvents(t, db, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(producers)).Tracer("test"), "orders.confirmed", 5)
	writeEvents(t, db, noop.NewTracerProvider().Tracer(""), "orders.failed", 2) // filtered out
	relay := NewRelay(db, js, RelayConfig{Stream: testStream("ORDERS")}, discard, noop.NewTracerProvider(), prometheus.NewRegistry())
	if n, err := relay.Pass(context.Background()); err != nil || n != 7 {
		t.Fatalf("relay pass: %d published, %v", n, err)
	}

	var s seen
	consumers := tracetest.NewSpanRecorder()
	reg := prometheus.NewRegistry()
	c := NewConsumer(js, fastConsumer("test"), func(ctx context.Context, m Message) error {
		if m.Subject != "orders.confirmed" {
			return fmt.Errorf("got %s, outside the filter", m.Subject)
		}
		// The third event fails once, as if the database were down.
		if s.deliver(m.ID) == 1 && m.ID == ids[2] {
			return errors.New("database unavailable")
		}
		SetConversationID(ctx, "conv-of-"+m.ID)
		s.commit(m.ID)
		return nil
	}, discard, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(consumers)), reg)
	stop := runConsumer(t, c)

	testenv.Eventually(t, 10*time.Second, "every confirmed event is handled", func() error {
		if got := s.done(); len(got) < len(ids) {
			return fmt.Errorf("handled %v", got)
		}
		return nil
	})
	waitNoLag(t, c)
	stop()

	got := s.done()
	slices.Sort(got)
	if !slices.Equal(got, ids) {
		t.Errorf("handled %v, want each of %v once", got, ids)
	}
	if n := s.count(ids[2]); n != 2 {
		t.Errorf("the failed event was delivered %d times, want 2", n)
	}
	if n := testutil.ToFloat64(c.metrics.redeliveries.WithLabelValues("orders.confirmed")); n != 1 {
		t.Errorf("redeliveries = %v, want 1", n)
	}
	if n := testutil.ToFloat64(c.metrics.failures.WithLabelValues("orders.confirmed")); n != 1 {
		t.Errorf("failures = %v, want 1", n)
	}
	if n := testutil.ToFloat64(c.metrics.handled.WithLabelValues("orders.confirmed")); n != 5 {
		t.Errorf("handled = %v, want 5", n)
	}

	// Each consumer span starts a trace of its own, linked to the
	// producer span of the request that wrote the event.
	producerOf := map[string]trace.SpanContext{}
	for _, sp := range producers.Ended() {
		for _, a := range sp.Attributes() {
			if a.Key == attrMessageID {
				producerOf[a.Value.AsString()] = sp.SpanContext()
			}
		}
	}
	linked := 0
	for _, sp := range consumers.Ended() {
		if sp.Name() != "process orders.confirmed" || sp.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("consumer span %q of kind %v", sp.Name(), sp.SpanKind())
			continue
		}
		attrs := map[string]string{}
		for _, a := range sp.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		id := attrs[attrMessageID]
		want, ok := producerOf[id]
		if !ok {
			t.Errorf("consumer span for %q, which no producer wrote", id)
			continue
		}
		if sp.Parent().IsValid() || sp.SpanContext().TraceID() == want.TraceID() {
			t.Errorf("%s: the consumer span is a child in the producer's trace, want a root linked to it", id)
		}
		if len(sp.Links()) != 1 || sp.Links()[0].SpanContext.SpanID() != want.SpanID() || sp.Links()[0].SpanContext.TraceID() != want.TraceID() {
			t.Errorf("%s: links %v, want the producer span %s", id, sp.Links(), want.SpanID())
		} else {
			linked++
		}
		if attrs[attrSystem] != "nats" || attrs[attrDestination] != "orders.confirmed" || attrs[attrConsumerGroup] != "test" || attrs[attrOperationType] != "process" {
			t.Errorf("%s: attributes %v", id, attrs)
		}
		if sp.Status().Code == 0 && attrs[attrConversationID] != "conv-of-"+id {
			t.Errorf("%s: conversation ID %q", id, attrs[attrConversationID])
		}
	}
	if linked != 6 { // five events, one of them delivered twice
		t.Errorf("%d consumer spans linked to their producer, want 6", linked)
	}
}

func TestConsumerDeadLettersAPoisonMessageAtItsLastDeliveryAndGoesOn(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := connect(t, srv.URL)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, testStream("ORDERS")); err != nil {
		t.Fatal(err)
	}
	publishIDs(t, js, "evt-poison", "evt-good")

	var s seen
	c := NewConsumer(js, fastConsumer("test"), func(ctx context.Context, m Message) error {
		s.deliver(m.ID)
		if m.ID == "evt-poison" {
			return Poison(fmt.Errorf("schema version 99 is unknown"))
		}
		s.commit(m.ID)
		return nil
	}, discard, noop.NewTracerProvider(), prometheus.NewRegistry())
	runConsumer(t, c)

	testenv.Eventually(t, 10*time.Second, "the poison message is dead-lettered", func() error {
		if n := testutil.ToFloat64(c.metrics.deadLetters.WithLabelValues("orders.confirmed")); n != 1 {
			return fmt.Errorf("dead letters %v", n)
		}
		return nil
	})
	if got := s.done(); !slices.Equal(got, []string{"evt-good"}) {
		t.Errorf("handled %v, want the good message, not blocked by the poison one", got)
	}
	if n := s.count("evt-poison"); n != 3 {
		t.Errorf("the poison message was delivered %d times, want MaxDeliveries = 3", n)
	}
	letters := streamMessages(t, js, "DEADLETTER")
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want 1", len(letters))
	}
	dl := letters[0]
	h := dl.Headers()
	if dl.Subject() != "deadletter.test" || string(dl.Data()) != "evt-poison" || h.Get(HeaderDeadLetterSubject) != "orders.confirmed" ||
		h.Get(HeaderDeadLetterDeliveries) != "3" || h.Get(HeaderDeadLetterSequence) != "1" || h.Get(HeaderDeadLetterError) != "schema version 99 is unknown" {
		t.Errorf("dead letter %s %q with headers %v", dl.Subject(), dl.Data(), h)
	}
	// Terminated: the consumer has nothing left to deliver or to wait for.
	testenv.Eventually(t, 5*time.Second, "the consumer has no lag", func() error {
		info, err := js.Consumer(ctx, "ORDERS", "test")
		if err != nil {
			return err
		}
		i, err := info.Info(ctx)
		if err != nil {
			return err
		}
		if i.NumPending != 0 || i.NumAckPending != 0 {
			return fmt.Errorf("pending %d, ack pending %d", i.NumPending, i.NumAckPending)
		}
		return nil
	})
}

func TestConsumerResumesWhereItStoppedAndReplaysFromTheStartWhenAsked(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := connect(t, srv.URL)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, testStream("ORDERS")); err != nil {
		t.Fatal(err)
	}
	consume := func(cfg ConsumerConfig, want int) []string {
		t.Helper()
		var s seen
		c := NewConsumer(js, cfg, func(ctx context.Context, m Message) error { s.commit(m.ID); return nil },
			discard, noop.NewTracerProvider(), prometheus.NewRegistry())
		stop := runConsumer(t, c)
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("%d messages handled", want), func() error {
			if n := len(s.done()); n < want {
				return fmt.Errorf("%d handled", n)
			}
			return nil
		})
		waitNoLag(t, c)
		stop()
		return s.done()
	}

	publishIDs(t, js, "a", "b", "c")
	if got := consume(fastConsumer("test"), 3); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("first run handled %v", got)
	}
	publishIDs(t, js, "d")
	if got := consume(fastConsumer("test"), 1); !slices.Equal(got, []string{"d"}) {
		t.Errorf("a restarted consumer handled %v, want only the new message", got)
	}
	replay := fastConsumer("test")
	replay.Replay = true
	if got := consume(replay, 4); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("a replay handled %v, want the whole stream in order", got)
	}
}

func TestConsumerKeepsTryingWhileTheStreamIsMissingAndStartsWhenItAppears(t *testing.T) {
	srv := testenv.StartNATS(t)
	js := connect(t, srv.URL)
	var s seen
	c := NewConsumer(js, fastConsumer("test"), func(ctx context.Context, m Message) error { s.commit(m.ID); return nil },
		discard, noop.NewTracerProvider(), prometheus.NewRegistry())
	runConsumer(t, c)
	// The consumer starts before orders ever created its stream.
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, testStream("ORDERS")); err != nil {
		t.Fatal(err)
	}
	publishIDs(t, js, "late")
	testenv.Eventually(t, 10*time.Second, "the message is handled", func() error {
		if got := s.done(); !slices.Equal(got, []string{"late"}) {
			return fmt.Errorf("handled %v", got)
		}
		return nil
	})
	if _, err := js.Stream(ctx, "DEADLETTER"); err != nil {
		t.Errorf("the dead-letter stream: %v", err)
	}
}
