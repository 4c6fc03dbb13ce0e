package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// DeadLetterStream holds the messages every consumer gave up on, under
// deadletter.<consumer>: kept 30 days for an operator to read, fix and
// replay by hand. A consumer creates it when it first reaches NATS.
func DeadLetterStream(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        "DEADLETTER",
		Description: "messages a consumer could not process, with why (docs/events.md)",
		Subjects:    []string{"deadletter.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      30 * 24 * time.Hour,
		Replicas:    max(replicas, 1),
		Duplicates:  2 * time.Minute,
	}
}

// Headers a dead letter carries besides the original's own.
const (
	HeaderDeadLetterSubject    = "Glasshouse-Original-Subject"
	HeaderDeadLetterSequence   = "Glasshouse-Original-Sequence"
	HeaderDeadLetterDeliveries = "Glasshouse-Deliveries"
	HeaderDeadLetterError      = "Glasshouse-Error"
)

// Message is one delivery of a stream message to a Handler.
type Message struct {
	// ID is the message's Nats-Msg-Id: the event ID.
	ID      string
	Subject string
	Data    []byte
	// Sequence is the message's sequence in its stream.
	Sequence uint64
	// Delivery counts the deliveries of this message, 1 the first time.
	Delivery int
	// Published is when the stream stored it.
	Published time.Time
}

// Handler processes one message. It returns nil only once what the
// message changes is committed: the message is acknowledged after it
// returns, never before, so a crash in between redelivers it, and the
// handler must make a redelivery change nothing (by the event ID).
// Poison(err) says the message can never be processed, as it cannot be
// decoded or has a version the handler does not know; any other error
// is transient (the database down) and the message comes again.
type Handler func(ctx context.Context, m Message) error

// poisonError marks an error the message itself causes.
type poisonError struct{ err error }

func (p poisonError) Error() string { return p.err.Error() }
func (p poisonError) Unwrap() error { return p.err }

// Poison marks err as a property of the message, not of the moment: a
// poison message is dead-lettered at its MaxDeliveries-th delivery.
func Poison(err error) error { return poisonError{err} }

// IsPoison reports whether err was marked with Poison.
func IsPoison(err error) bool { return errors.As(err, new(poisonError)) }

// ConsumerConfig sets what a Consumer reads and how. The zero value of
// each optional field takes the default named beside it.
type ConsumerConfig struct {
	// Stream and Durable name the stream and the durable consumer on it,
	// which every replica of the service shares: each message goes to
	// one of them.
	Stream, Durable string
	// Subjects filter the stream.
	Subjects []string
	// DeadLetter is the subject poison messages go to
	// ("deadletter.<Durable>"), on DeadLetterStream.
	DeadLetter string
	// Replicas is the replica count of the dead-letter stream (1).
	Replicas int
	// MaxDeliveries is the delivery at which a poison message is
	// dead-lettered (5). Earlier deliveries are retried, so a replica
	// that does not know a new schema yet does not drop what another
	// replica, already upgraded, can read.
	MaxDeliveries int
	// AckWait is how long the server waits for an ack before it
	// redelivers (30s); HandleTimeout, what one message may take (10s),
	// is well under it.
	AckWait, HandleTimeout time.Duration
	// Batch is how many messages are pulled ahead (64).
	Batch int
	// Timeout bounds each call to NATS: an ack, a publish, an info (2s).
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a failed message is
	// redelivered and before a lost session is opened again (100ms
	// doubling to 5s).
	MinBackoff, MaxBackoff time.Duration
	// LagEvery is how often the consumer's lag is read from the server
	// (2s).
	LagEvery time.Duration
	// Replay deletes the durable consumer before the first session, so
	// the stream is read again from its start: a service whose store
	// is empty rebuilds its state this way.
	Replay bool
	// AckBeforeHandle acknowledges each message before handling it. It
	// exists only so the chaos suite can show what that loses (a crash
	// mid-handler drops the message); never set it in production.
	AckBeforeHandle bool
}

func (c *ConsumerConfig) defaults() {
	if c.DeadLetter == "" {
		c.DeadLetter = "deadletter." + c.Durable
	}
	orDefault(&c.MaxDeliveries, 5)
	orDefault(&c.AckWait, 30*time.Second)
	orDefault(&c.HandleTimeout, 10*time.Second)
	orDefault(&c.Batch, 64)
	orDefault(&c.Timeout, 2*time.Second)
	orDefault(&c.MinBackoff, 100*time.Millisecond)
	orDefault(&c.MaxBackoff, 5*time.Second)
	orDefault(&c.LagEvery, 2*time.Second)
}

// Consumer feeds a stream's messages to a Handler through a durable pull
// consumer with explicit acks, one message at a time, in stream order
// (a failed message is redelivered after a backoff, while the next are
// handled). Every replica of a service runs one.
type Consumer struct {
	js      jetstream.JetStream
	cfg     ConsumerConfig
	handle  Handler
	log     *slog.Logger
	tracer  trace.Tracer
	metrics *consumerMetrics
}

// NewConsumer returns a consumer feeding handle; its metrics are
// registered on reg.
func NewConsumer(js jetstream.JetStream, cfg ConsumerConfig, handle Handler, log *slog.Logger, tp trace.TracerProvider, reg prometheus.Registerer) *Consumer {
	cfg.defaults()
	return &Consumer{js: js, cfg: cfg, handle: handle, log: log,
		tracer: tp.Tracer("glasshouse/events"), metrics: newConsumerMetrics(reg, cfg.Durable)}
}

// Run consumes until ctx ends. A session that fails (NATS down, the
// stream not created yet) is logged and opened again with backoff; Run
// never returns an error the service should stop for.
func (c *Consumer) Run(ctx context.Context) error {
	backoff := transport.NewBackoff(c.cfg.MinBackoff, c.cfg.MaxBackoff)
	replay := c.cfg.Replay
	for {
		started := time.Now()
		err := c.session(ctx, &replay)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > c.cfg.MaxBackoff {
			backoff.Reset() // the session worked for a while
		}
		wait := backoff.Next()
		c.log.WarnContext(ctx, "consumer: session ended; opening again", "consumer", c.cfg.Durable, "error", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// session opens the consumer and handles messages until its iterator
// fails or ctx ends.
func (c *Consumer) session(ctx context.Context, replay *bool) error {
	cons, err := c.open(ctx, replay)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(c.cfg.Batch))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", c.cfg.Durable, err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		it.Stop()
	}()
	go c.watchLag(ctx, cons, done)
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("consumer %s: %w", c.cfg.Durable, err)
		}
		// A message being handled at shutdown is finished, within its
		// own timeout, rather than cut off and redelivered.
		c.process(context.WithoutCancel(ctx), msg)
	}
}

// open makes sure the dead-letter stream and the durable consumer exist,
// deleting the consumer first when a replay was asked for.
func (c *Consumer) open(ctx context.Context, replay *bool) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if _, err := c.js.CreateOrUpdateStream(ctx, DeadLetterStream(c.cfg.Replicas)); err != nil {
		return nil, fmt.Errorf("stream DEADLETTER: %w", err)
	}
	if *replay {
		err := c.js.DeleteConsumer(ctx, c.cfg.Stream, c.cfg.Durable)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("consumer %s: delete for a replay: %w", c.cfg.Durable, err)
		}
		c.log.InfoContext(ctx, "consumer: replaying the stream from its start", "consumer", c.cfg.Durable, "stream", c.cfg.Stream)
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, jetstream.ConsumerConfig{
		Durable:        c.cfg.Durable,
		Description:    "durable consumer of " + c.cfg.Durable,
		FilterSubjects: c.cfg.Subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.cfg.AckWait,
		MaxAckPending:  c.cfg.Batch,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
	}
	*replay = false
	return cons, nil
}

// process handles one delivery under a CONSUMER span linked to the
// producer's, then acks it, dead-letters it or asks for it again.
func (c *Consumer) process(ctx context.Context, msg jetstream.Msg) {
	m := Message{ID: msg.Headers().Get(nats.MsgIdHdr), Subject: msg.Subject(), Data: msg.Data(), Delivery: 1}
	if md, err := msg.Metadata(); err == nil {
		m.Sequence, m.Delivery, m.Published = md.Sequence.Stream, int(md.NumDelivered), md.Timestamp
	}
	ctx, span := c.startConsumer(ctx, m, msg.Headers())
	defer span.End()
	if m.Delivery > 1 {
		c.metrics.redeliveries.WithLabelValues(m.Subject).Inc()
	}
	if c.cfg.AckBeforeHandle {
		if err := c.ack(ctx, msg); err != nil {
			return
		}
	}

	hctx, cancel := context.WithTimeout(ctx, c.cfg.HandleTimeout)
	err := c.handle(hctx, m)
	cancel()
	switch {
	case err == nil:
		c.metrics.handled.WithLabelValues(m.Subject).Inc()
		if !c.cfg.AckBeforeHandle {
			// A lost ack redelivers a message the handler already
			// committed; its idempotency makes that a no-op.
			_ = c.ack(ctx, msg)
		}
	case c.cfg.AckBeforeHandle:
		c.metrics.failures.WithLabelValues(m.Subject).Inc()
		span.SetStatus(codes.Error, err.Error())
		c.log.ErrorContext(ctx, "consumer: message lost: acknowledged before it was handled", "consumer", c.cfg.Durable, "message_id", m.ID, "error", err)
	case IsPoison(err) && m.Delivery >= c.cfg.MaxDeliveries:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		c.deadLetter(ctx, msg, m, err)
	default:
		c.metrics.failures.WithLabelValues(m.Subject).Inc()
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		delay := c.redeliveryDelay(m.Delivery)
		c.log.WarnContext(ctx, "consumer: message failed; it will be redelivered", "consumer", c.cfg.Durable,
			"message_id", m.ID, "delivery", m.Delivery, "poison", IsPoison(err), "error", err, "retry_in", delay.String())
		_ = msg.NakWithDelay(delay)
	}
}

// ack acknowledges msg and waits for the server to confirm it.
func (c *Consumer) ack(ctx context.Context, msg jetstream.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		c.log.WarnContext(ctx, "consumer: ack not confirmed; the message may come again", "consumer", c.cfg.Durable, "error", err)
		return err
	}
	return nil
}

// deadLetter publishes m to the dead-letter subject with why, then
// terminates it on the stream so it is never delivered again. A crash
// between the two dead-letters it again on redelivery, and the
// dead-letter stream's duplicate window drops the copy.
func (c *Consumer) deadLetter(ctx context.Context, msg jetstream.Msg, m Message, cause error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	dl := nats.NewMsg(c.cfg.DeadLetter)
	dl.Data = m.Data
	for k, v := range msg.Headers() {
		dl.Header[k] = v
	}
	seq := strconv.FormatUint(m.Sequence, 10)
	dl.Header.Set(nats.MsgIdHdr, c.cfg.Durable+"."+c.cfg.Stream+"."+seq)
	dl.Header.Set(HeaderDeadLetterSubject, m.Subject)
	dl.Header.Set(HeaderDeadLetterSequence, seq)
	dl.Header.Set(HeaderDeadLetterDeliveries, strconv.Itoa(m.Delivery))
	dl.Header.Set(HeaderDeadLetterError, truncate(cause.Error(), 512))
	if _, err := c.js.PublishMsg(ctx, dl); err != nil {
		c.log.WarnContext(ctx, "consumer: dead letter not stored; the message will be redelivered", "consumer", c.cfg.Durable, "message_id", m.ID, "error", err)
		_ = msg.NakWithDelay(c.redeliveryDelay(m.Delivery))
		return
	}
	if err := msg.TermWithReason("dead-lettered: " + truncate(cause.Error(), 200)); err != nil {
		c.log.WarnContext(ctx, "consumer: dead-lettered message not terminated; it may come again", "consumer", c.cfg.Durable, "error", err)
	}
	c.metrics.deadLetters.WithLabelValues(m.Subject).Inc()
	c.log.ErrorContext(ctx, "consumer: message dead-lettered", "consumer", c.cfg.Durable, "message_id", m.ID,
		"subject", m.Subject, "sequence", m.Sequence, "deliveries", m.Delivery, "dead_letter_subject", c.cfg.DeadLetter, "error", cause)
}

// redeliveryDelay doubles from MinBackoff with each delivery, up to
// MaxBackoff, jittered.
func (c *Consumer) redeliveryDelay(delivery int) time.Duration {
	return jitter(retryDelay(c.cfg.MinBackoff, c.cfg.MaxBackoff, delivery))
}

// startConsumer starts the "process <subject>" CONSUMER span. It is the
// root of a trace of its own, linked to the producer's span whose W3C
// context the message carries: the message may be handled long after
// the request that wrote it ended, and a trace spanning both would
// measure the wait as if it were work.
func (c *Consumer) startConsumer(ctx context.Context, m Message, h nats.Header) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String(attrSystem, systemNATS),
			attribute.String(attrOperationType, "process"),
			attribute.String(attrOperationName, "process"),
			attribute.String(attrDestination, m.Subject),
			attribute.String(attrMessageID, m.ID),
			attribute.String(attrConsumerGroup, c.cfg.Durable),
			attribute.Int(attrDeliveryCount, m.Delivery),
			attribute.Int64("messaging.nats.stream_sequence", int64(m.Sequence)),
		),
	}
	producer := trace.SpanContextFromContext(propagator().Extract(context.Background(), headerCarrier(h)))
	if producer.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: producer,
			Attributes: []attribute.KeyValue{attribute.String("messaging.link", "producer")}}))
	}
	return c.tracer.Start(ctx, "process "+m.Subject, opts...)
}

// headerCarrier reads and writes NATS headers as a propagation carrier.
// nats.Header keeps keys as given (the relay writes "traceparent"),
// where propagation.HeaderCarrier would look for "Traceparent".
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string { return nats.Header(h).Get(key) }
func (h headerCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

var _ propagation.TextMapCarrier = headerCarrier{}

// SetConversationID records on the span in ctx the business object the
// message is about (an order's ID), once a handler has decoded it.
func SetConversationID(ctx context.Context, id string) {
	trace.SpanFromContext(ctx).SetAttributes(attribute.String(attrConversationID, id))
}

// watchLag reads the consumer's lag from the server every LagEvery
// until done closes: the messages not delivered yet, and those delivered
// and not acknowledged.
func (c *Consumer) watchLag(ctx context.Context, cons jetstream.Consumer, done <-chan struct{}) {
	tick := time.NewTicker(c.cfg.LagEvery)
	defer tick.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		info, err := cons.Info(ictx)
		cancel()
		if err == nil {
			c.metrics.pending.Set(float64(info.NumPending))
			c.metrics.ackPending.Set(float64(info.NumAckPending))
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

type consumerMetrics struct {
	pending, ackPending                          prometheus.Gauge
	handled, failures, redeliveries, deadLetters *prometheus.CounterVec
}

func newConsumerMetrics(reg prometheus.Registerer, durable string) *consumerMetrics {
	labels := prometheus.Labels{"consumer": durable}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, []string{"subject"})
	}
	m := &consumerMetrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "glasshouse_consumer_pending_messages", ConstLabels: labels,
			Help: "Messages of the stream the durable consumer has not delivered yet, as the server last reported (its lag)."}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "glasshouse_consumer_ack_pending_messages", ConstLabels: labels,
			Help: "Messages delivered to the durable consumer and not acknowledged yet, as the server last reported."}),
		handled:      counter("glasshouse_consumer_handled_total", "Messages handled and committed, by subject."),
		failures:     counter("glasshouse_consumer_failures_total", "Deliveries whose handling failed and that will be redelivered, by subject."),
		redeliveries: counter("glasshouse_consumer_redeliveries_total", "Deliveries of a message delivered before (a failure, a lost ack, a crash), by subject."),
		deadLetters:  counter("glasshouse_consumer_dead_letters_total", "Messages given up on and moved to the dead-letter stream, by subject."),
	}
	reg.MustRegister(m.pending, m.ackPending, m.handled, m.failures, m.redeliveries, m.deadLetters)
	return m
}
