// Package events carries domain events from the service that owns a
// change to the services that react to it, over NATS JetStream, without
// ever losing one or making a request wait for the broker.
//
// # The outbox
//
// A service never publishes from a request. It writes the event as a row
// of its own database's outbox table, in the same transaction as the
// state change the event reports (Write), so the two commit or vanish
// together: no confirmed order without its order.confirmed, no event for
// an order that rolled back. A Relay beside the service then publishes
// each row to JetStream with the event ID as Nats-Msg-Id, waits for the
// stream's PubAck, and only then marks the row published. While NATS is
// down the rows wait, and requests do not notice.
//
// # Several replicas, no loss, no double
//
// Every replica runs a relay over the same table. A relay claims a batch
// of rows with one conditional UPDATE that writes its own lease token and
// an expiry (Lease, 10s by default); a row whose lease has expired (its
// relay died between claim and mark) is claimed again by any relay. So a
// row is published at least once. It is stored in the stream at most
// once as long as the two publishes fall within the stream's duplicate
// window (StreamConfig.Duplicates, 2 minutes here): the relay republishes
// a row after its lease lapses or after its retry backoff (at most
// MaxBackoff, 5s), both far inside it. Only a row whose relay died after
// publishing, with no relay alive for over two minutes after, can be
// stored twice; consumers are idempotent by event ID (see Consumer) and
// absorb that.
//
// # Trace context
//
// Write starts a PRODUCER span ("create orders.confirmed", OpenTelemetry's
// messaging conventions) in the request's trace and stores its W3C trace
// context with the row. The relay sends it as NATS headers (traceparent,
// tracestate), so the consumer's span links to the producer's, though the
// message may be read minutes or a restart later.
package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Migration creates the outbox table. A store appends it to its own
// migrations, as one step, for SQLite and PostgreSQL alike.
//
// published_at is 0 until the stream acknowledged the row; the partial
// index holds only the rows still to publish, so the relay's scan costs
// the backlog, not the history. lease_token names the relay pass that
// holds the row until lease_until (unix milliseconds).
const Migration = `CREATE TABLE outbox (
		id           TEXT PRIMARY KEY,
		subject      TEXT NOT NULL,
		payload      TEXT NOT NULL,
		trace        TEXT NOT NULL DEFAULT '',
		created_at   BIGINT NOT NULL,
		attempts     INTEGER NOT NULL DEFAULT 0,
		lease_token  TEXT NOT NULL DEFAULT '',
		lease_until  BIGINT NOT NULL DEFAULT 0,
		last_error   TEXT NOT NULL DEFAULT '',
		published_at BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at = 0;`

// Messaging attributes of OpenTelemetry's semantic conventions (1.30).
// NATS has no registered messaging.system value; "nats" is what the
// NATS community's instrumentations write.
const (
	attrSystem         = "messaging.system"
	attrOperationType  = "messaging.operation.type"
	attrOperationName  = "messaging.operation.name"
	attrDestination    = "messaging.destination.name"
	attrMessageID      = "messaging.message.id"
	attrConversationID = "messaging.message.conversation_id"
	attrConsumerGroup  = "messaging.consumer.group.name"
	attrDeliveryCount  = "messaging.nats.delivery_count"
	systemNATS         = "nats"
)

// Event is one message for the outbox: Payload is published to Subject
// with ID as its Nats-Msg-Id. ConversationID ties the events of one
// business object together (an order's ID).
type Event struct {
	ID             string
	Subject        string
	ConversationID string
	Payload        []byte
	At             time.Time
}

// Write records ev in tx's outbox, in the transaction of the change it
// reports, under a PRODUCER span whose trace context it stores with the
// row.
func Write(ctx context.Context, tx *sql.Tx, tracer trace.Tracer, ev Event) error {
	ctx, span := startProducer(ctx, tracer, "create", "create", ev.Subject, ev.ID,
		attribute.String(attrConversationID, ev.ConversationID))
	defer span.End()
	carrier := propagation.MapCarrier{}
	propagator().Inject(ctx, carrier)
	traceCtx, err := json.Marshal(carrier)
	if err != nil {
		return fmt.Errorf("outbox: trace context of %s: %w", ev.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, subject, payload, trace, created_at) VALUES ($1, $2, $3, $4, $5)`,
		ev.ID, ev.Subject, string(ev.Payload), string(traceCtx), ev.At.UnixMilli()); err != nil {
		span.RecordError(err)
		return fmt.Errorf("outbox: write %s: %w", ev.ID, err)
	}
	return nil
}

// startProducer starts a PRODUCER span named "<operation> <subject>"
// with the messaging attributes every such span carries, and extra.
func startProducer(ctx context.Context, tracer trace.Tracer, operation, operationName, subject, messageID string, extra ...attribute.KeyValue) (context.Context, trace.Span) {
	attrs := append([]attribute.KeyValue{
		attribute.String(attrSystem, systemNATS),
		attribute.String(attrOperationType, operation),
		attribute.String(attrOperationName, operationName),
		attribute.String(attrDestination, subject),
		attribute.String(attrMessageID, messageID),
	}, extra...)
	return tracer.Start(ctx, operation+" "+subject, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
}

// propagator is the W3C trace context alone: baggage carries per-request
// fault injection, which must not ride along to a consumer minutes later.
func propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }
