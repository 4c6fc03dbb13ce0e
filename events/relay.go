package events

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glasshouse-dev/glasshouse/storage"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// RelayConfig sets how a Relay publishes. The zero value of each field
// takes the default named beside it.
type RelayConfig struct {
	// Stream is the stream the relay makes sure exists (CreateOrUpdate)
	// before it publishes.
	Stream jetstream.StreamConfig
	// Lease is how long a claimed row is this relay's alone (10s). A row
	// whose relay died is published by another once it lapses.
	Lease time.Duration
	// Batch is how many rows one pass claims (100).
	Batch int
	// Poll is how often the relay looks for rows when nobody woke it
	// (500ms). Notify wakes it, and it passes Linger (20ms) later, so
	// that the rows committed meanwhile go in the same pass: under load
	// a pass's claim and mark cost one write each for several rows, not
	// for every checkout.
	Poll, Linger time.Duration
	// PublishTimeout bounds the wait for one PubAck (2s).
	PublishTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a row that failed
	// to publish is tried again (100ms doubling to 5s).
	MinBackoff, MaxBackoff time.Duration
	// FireAndForget publishes each row once and marks it published
	// whether the stream acknowledged it or not: what publishing after
	// the commit, outside the outbox, amounts to (NATS down then, the
	// event is lost). It exists only so the chaos suite can show what the
	// outbox prevents; never set it in production.
	FireAndForget bool
}

func (c *RelayConfig) defaults() {
	orDefault(&c.Lease, 10*time.Second)
	orDefault(&c.Batch, 100)
	orDefault(&c.Poll, 500*time.Millisecond)
	orDefault(&c.Linger, 20*time.Millisecond)
	orDefault(&c.PublishTimeout, 2*time.Second)
	orDefault(&c.MinBackoff, 100*time.Millisecond)
	orDefault(&c.MaxBackoff, 5*time.Second)
}

// orDefault sets *v to def when it is zero or negative: a config field
// left unset.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Relay publishes a database's outbox rows to JetStream. Every replica of
// a service runs one; leases keep them from publishing the same row at
// once (see the package comment).
type Relay struct {
	db      *storage.DB
	js      jetstream.JetStream
	cfg     RelayConfig
	log     *slog.Logger
	tracer  trace.Tracer
	metrics *relayMetrics
	wake    chan struct{}
	// streamReady is set once the stream was created or updated on
	// this connection's server.
	streamReady atomic.Bool
	now         func() time.Time
}

// NewRelay returns a relay over db's outbox, publishing through js. Its
// metrics are registered on reg.
func NewRelay(db *storage.DB, js jetstream.JetStream, cfg RelayConfig, log *slog.Logger, tp trace.TracerProvider, reg prometheus.Registerer) *Relay {
	cfg.defaults()
	return &Relay{
		db: db, js: js, cfg: cfg, log: log,
		tracer:  tp.Tracer("glasshouse/events"),
		metrics: newRelayMetrics(reg),
		wake:    make(chan struct{}, 1),
		now:     time.Now,
	}
}

// Notify tells the relay a row is waiting, so it publishes now rather
// than at its next poll. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends. A pass that fails (NATS down, the
// database unreachable) is logged and retried with backoff; it never
// returns an error the service should stop for.
func (r *Relay) Run(ctx context.Context) error {
	backoff := transport.NewBackoff(r.cfg.MinBackoff, r.cfg.MaxBackoff)
	for {
		n, err := r.Pass(ctx)
		wait := r.cfg.Poll
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			wait = backoff.Next()
			r.log.WarnContext(ctx, "outbox relay: pass failed; retrying", "error", err, "retry_in", wait.String())
		case n == r.cfg.Batch:
			backoff.Reset()
			wait = 0 // more is waiting
		default:
			backoff.Reset()
		}
		if err := r.observeBacklog(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "outbox relay: cannot measure the backlog", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(r.cfg.Linger):
			}
		case <-time.After(wait):
		}
	}
}

// row is an outbox row a pass claimed.
type row struct {
	id, subject, payload, trace string
	attempts                    int
}

// Pass claims one batch of rows whose turn has come and publishes them in
// order, each once the last one's PubAck arrived, and then marks the
// published ones in one statement. It stops at the first
// failure, whose row (and the rest of the batch) is given back with a
// backoff. It returns how many rows it published.
func (r *Relay) Pass(ctx context.Context) (int, error) {
	// A pass ends within the lease it takes: past it, another relay may
	// claim the same rows, and a hung database must not hang the relay.
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Lease)
	defer cancel()
	if err := r.ensureStream(ctx); err != nil && !r.cfg.FireAndForget {
		return 0, err
	}
	rows, token, err := r.claim(ctx)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	// Rows are marked together once the pass ends, in one UPDATE: a
	// relay that dies before it leaves them to be published again when
	// their lease lapses, and the stream's duplicate window drops those
	// copies, as for a relay that died between a PubAck and its mark.
	var published, lost []row
	for i, rw := range rows {
		dup, err := r.publish(ctx, rw)
		if err != nil {
			r.metrics.failures.WithLabelValues(rw.subject).Inc()
			if r.cfg.FireAndForget {
				lost = append(lost, rw) // marked all the same
				continue
			}
			err = disconnected(r.js.Conn(), err)
			return r.finishPass(published, nil, token, errors.Join(
				fmt.Errorf("publish %s to %s: %w", rw.id, rw.subject, err), r.release(rows[i:], token, err)))
		}
		if dup {
			r.metrics.duplicates.WithLabelValues(rw.subject).Inc()
		}
		published = append(published, rw)
	}
	return r.finishPass(published, lost, token, nil)
}

// finishPass marks the rows a pass handed to the stream (and, fire and
// forget, those it dropped) and returns how many it published, with
// failed, the error that ended the pass early.
func (r *Relay) finishPass(published, lost []row, token string, failed error) (int, error) {
	if err := r.mark(append(published, lost...), token); err != nil {
		return 0, errors.Join(failed, err)
	}
	for _, rw := range published {
		r.metrics.published.WithLabelValues(rw.subject).Inc()
	}
	return len(published), failed
}

func (r *Relay) ensureStream(ctx context.Context) error {
	if r.streamReady.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	if _, err := r.js.CreateOrUpdateStream(ctx, r.cfg.Stream); err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Stream.Name, disconnected(r.js.Conn(), err))
	}
	r.streamReady.Store(true)
	return nil
}

// claim leases up to a batch of the oldest rows that are due: never
// published, and not leased, or leased by a relay whose lease lapsed. The
// UPDATE tests the lease again on each row it changes, so on PostgreSQL
// two relays claiming at once never share a row: the second waits for the
// first's UPDATE and then finds the row leased.
func (r *Relay) claim(ctx context.Context) ([]row, string, error) {
	now := r.now().UnixMilli()
	token := uuid.NewString()
	sqlRows, err := r.db.SQL.QueryContext(ctx, `
		UPDATE outbox SET lease_token = $1, lease_until = $2
		WHERE published_at = 0 AND lease_until <= $3 AND id IN (
			SELECT id FROM outbox WHERE published_at = 0 AND lease_until <= $3 ORDER BY created_at, id LIMIT $4)
		RETURNING id, subject, payload, trace, attempts, created_at`,
		token, now+r.cfg.Lease.Milliseconds(), now, r.cfg.Batch)
	if err != nil {
		return nil, "", fmt.Errorf("claim outbox rows: %w", err)
	}
	defer sqlRows.Close()
	type claimed struct {
		row
		createdAt int64
	}
	var out []claimed
	for sqlRows.Next() {
		var c claimed
		if err := sqlRows.Scan(&c.id, &c.subject, &c.payload, &c.trace, &c.attempts, &c.createdAt); err != nil {
			return nil, "", fmt.Errorf("claim outbox rows: %w", err)
		}
		out = append(out, c)
	}
	if err := sqlRows.Err(); err != nil {
		return nil, "", fmt.Errorf("claim outbox rows: %w", err)
	}
	// RETURNING promises no order: publish oldest first.
	slices.SortFunc(out, func(a, b claimed) int {
		return cmp.Or(cmp.Compare(a.createdAt, b.createdAt), strings.Compare(a.id, b.id))
	})
	rows := make([]row, len(out))
	for i, c := range out {
		rows[i] = c.row
	}
	return rows, token, nil
}

// publish sends one row with its event ID as Nats-Msg-Id and its trace
// context as headers, and waits for the stream's PubAck. It reports
// whether the stream already had the message (a duplicate it dropped).
func (r *Relay) publish(ctx context.Context, rw row) (bool, error) {
	msg := &nats.Msg{Subject: rw.subject, Data: []byte(rw.payload), Header: nats.Header{}}
	var carrier propagation.MapCarrier
	if rw.trace != "" {
		if err := json.Unmarshal([]byte(rw.trace), &carrier); err != nil {
			r.log.WarnContext(ctx, "outbox relay: unreadable trace context; publishing without it", "event", rw.id, "error", err)
		}
	}
	producer := propagator().Extract(context.Background(), carrier)
	// The relay's own span is a child of the producer's, in the
	// request's trace: it shows when the event left, and how often.
	ctx, span := startProducer(trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(producer)), r.tracer,
		"send", "publish", rw.subject, rw.id, attribute.Int("glasshouse.outbox.attempt", rw.attempts+1))
	defer span.End()
	// The headers carry the producer's context, not the relay's: the
	// consumer links to the change that made the event.
	for k, v := range carrier {
		msg.Header.Set(k, v)
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	ack, err := r.js.PublishMsg(pctx, msg, jetstream.WithMsgID(rw.id))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			// The stream may be gone (a fresh server): create it again.
			r.streamReady.Store(false)
		}
		return false, err
	}
	span.SetAttributes(attribute.Int64("messaging.nats.stream_sequence", int64(ack.Sequence)), attribute.Bool("messaging.nats.duplicate", ack.Duplicate))
	return ack.Duplicate, nil
}

// mark records that the stream has the rows, in one statement. It holds
// only while the lease is this pass's; a row re-leased by another relay
// is that one's. It runs on its own short context, as release does: the
// pass's may be what ended.
func (r *Relay) mark(rows []row, token string) error {
	if len(rows) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.PublishTimeout)
	defer cancel()
	args := []any{r.now().UnixMilli(), token}
	marks := make([]string, len(rows))
	for i, rw := range rows {
		args = append(args, rw.id)
		marks[i] = fmt.Sprintf("$%d", i+3)
	}
	if _, err := r.db.SQL.ExecContext(ctx, `UPDATE outbox SET published_at = $1, lease_token = '', last_error = ''
		WHERE lease_token = $2 AND id IN (`+strings.Join(marks, ", ")+`)`, args...); err != nil {
		return fmt.Errorf("mark %d rows published: %w", len(rows), err)
	}
	return nil
}

// release gives rows back after a failed publish, the failed one first
// with its attempt counted and the reason. All are due again at once,
// after a backoff that grows with the failed row's attempts, so the next
// pass takes them oldest first again. It runs on its own short context:
// the pass's may be what ended.
func (r *Relay) release(rows []row, token string, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.PublishTimeout)
	defer cancel()
	due := r.now().Add(jitter(retryDelay(r.cfg.MinBackoff, r.cfg.MaxBackoff, rows[0].attempts+1)))
	for i, rw := range rows {
		attempts, reason := rw.attempts, ""
		if i == 0 {
			attempts, reason = attempts+1, truncate(cause.Error(), 500)
		}
		if _, err := r.db.SQL.ExecContext(ctx, `
			UPDATE outbox SET attempts = $1, last_error = CASE WHEN $2 = '' THEN last_error ELSE $2 END, lease_token = '', lease_until = $3
			WHERE id = $4 AND lease_token = $5`, attempts, reason, due.UnixMilli(), rw.id, token); err != nil {
			return fmt.Errorf("release %s: %w", rw.id, err)
		}
	}
	return nil
}

// retryDelay is the pause before the next try of something that failed
// n times (n >= 1): lo doubling with each failure, up to hi, unjittered.
// The relay and the consumer keep the count with the row or the message
// (attempts, deliveries) rather than in a transport.Backoff of their own.
func retryDelay(lo, hi time.Duration, n int) time.Duration {
	return min(lo<<min(max(n-1, 0), 30), hi)
}

// observeBacklog sets the depth and oldest-row age gauges.
func (r *Relay) observeBacklog(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	var (
		n      int64
		oldest *int64
	)
	if err := r.db.SQL.QueryRowContext(ctx, `SELECT count(*), min(created_at) FROM outbox WHERE published_at = 0`).Scan(&n, &oldest); err != nil {
		return err
	}
	r.metrics.depth.Set(float64(n))
	age := 0.0
	if oldest != nil {
		age = max(0, r.now().Sub(time.UnixMilli(*oldest)).Seconds())
	}
	r.metrics.oldestAge.Set(age)
	return nil
}

// Backlog counts the rows not yet published, for tests and operators.
func Backlog(ctx context.Context, db *storage.DB) (int, error) {
	var n int
	err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE published_at = 0`).Scan(&n)
	return n, err
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

type relayMetrics struct {
	depth      prometheus.Gauge
	oldestAge  prometheus.Gauge
	published  *prometheus.CounterVec
	failures   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
}

func newRelayMetrics(reg prometheus.Registerer) *relayMetrics {
	m := &relayMetrics{
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glasshouse_outbox_depth",
			Help: "Outbox rows not yet acknowledged by the stream, as this relay last counted them.",
		}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glasshouse_outbox_oldest_age_seconds",
			Help: "Age of the oldest outbox row not yet acknowledged by the stream (0 when none waits).",
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_outbox_published_total",
			Help: "Outbox rows published and acknowledged by the stream, by subject.",
		}, []string{"subject"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_outbox_publish_failures_total",
			Help: "Publishes of outbox rows that got no PubAck (NATS down, the stream missing, a timeout), by subject.",
		}, []string{"subject"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_outbox_duplicates_total",
			Help: "Publishes the stream acknowledged as duplicates of a message it had (a row published again after a lapsed lease), by subject.",
		}, []string{"subject"}),
	}
	reg.MustRegister(m.depth, m.oldestAge, m.published, m.failures, m.duplicates)
	return m
}

// Row is an outbox row as operators and tests read it.
type Row struct {
	ID, Subject string
	Payload     []byte
	// Trace is the producer's W3C trace context (traceparent, tracestate).
	Trace       map[string]string
	CreatedAt   time.Time
	Attempts    int
	LastError   string
	PublishedAt time.Time // zero until the stream acknowledged it
}

// Rows reads every outbox row of db, oldest first.
func Rows(ctx context.Context, db *storage.DB) ([]Row, error) {
	rs, err := db.SQL.QueryContext(ctx, `SELECT id, subject, payload, trace, created_at, attempts, last_error, published_at FROM outbox ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rs.Close()
	var out []Row
	for rs.Next() {
		var (
			r                  Row
			payload, traceCtx  string
			created, published int64
		)
		if err := rs.Scan(&r.ID, &r.Subject, &payload, &traceCtx, &created, &r.Attempts, &r.LastError, &published); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		r.Payload, r.CreatedAt = []byte(payload), time.UnixMilli(created).UTC()
		if published != 0 {
			r.PublishedAt = time.UnixMilli(published).UTC()
		}
		if traceCtx != "" {
			if err := json.Unmarshal([]byte(traceCtx), &r.Trace); err != nil {
				return nil, fmt.Errorf("read outbox: trace context of %s: %w", r.ID, err)
			}
		}
		out = append(out, r)
	}
	return out, rs.Err()
}
