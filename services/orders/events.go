package orders

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/events"
	"github.com/nats-io/nats.go/jetstream"
)

// The events orders publishes, one per order when it reaches its terminal
// status, on the stream ORDERS (docs/events.md is their reference).
const (
	// StreamName is the stream holding every order event.
	StreamName = "ORDERS"
	// SubjectConfirmed, SubjectFailed and SubjectRejected are the
	// subjects of the three events, under orders.>.
	SubjectConfirmed = "orders.confirmed"
	SubjectFailed    = "orders.failed"
	SubjectRejected  = "orders.rejected"
	// EventSchemaVersion is the version of OrderEvent's JSON. A change a
	// consumer may not ignore (a field removed or changing meaning)
	// takes the next version; an added field does not.
	EventSchemaVersion = 1
	// DuplicateWindow is how long the stream remembers a Nats-Msg-Id: a
	// row published twice within it is stored once. It must outlast the
	// relay's retry horizon (its lease, 10s, and its backoff, at most 5s).
	DuplicateWindow = 2 * time.Minute
)

// OrderEvent is the JSON body of every order event (schema version 1).
type OrderEvent struct {
	SchemaVersion int       `json:"schema_version"`
	EventID       string    `json:"event_id"`
	Type          string    `json:"type"` // order.confirmed, order.failed or order.rejected
	OccurredAt    time.Time `json:"occurred_at"`
	OrderID       string    `json:"order_id"`
	UserID        string    `json:"user_id"`
	Status        Status    `json:"status"`
	TotalCents    int64     `json:"total_cents"`
	Currency      string    `json:"currency"`
	Items         []Line    `json:"items"`
	// FailureCode says why a failed or rejected order ended so.
	FailureCode string `json:"failure_code,omitempty"`
}

// StreamConfig is the ORDERS stream: every order event, on disk, kept 30
// days (what a consumer starting empty replays), replicated on replicas
// servers (1 locally, 3 in a JetStream cluster).
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "order events from the orders outbox (docs/events.md)",
		Subjects:    []string{"orders.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      30 * 24 * time.Hour,
		Replicas:    max(replicas, 1),
		Duplicates:  DuplicateWindow,
	}
}

// orderEvent is the event that reports r reaching status at now. Its ID
// is derived from the order, so one order can never have two events of
// a kind, whoever writes them.
func orderEvent(r record, status Status, failureCode string, now time.Time) (events.Event, error) {
	var subject string
	switch status {
	case Confirmed:
		subject = SubjectConfirmed
	case Failed:
		subject = SubjectFailed
	case Rejected:
		subject = SubjectRejected
	default:
		return events.Event{}, fmt.Errorf("no event for status %s", status)
	}
	kind := strings.TrimPrefix(subject, "orders.")
	ev := OrderEvent{
		SchemaVersion: EventSchemaVersion,
		EventID:       r.ID + "." + kind,
		Type:          "order." + kind,
		OccurredAt:    now.UTC(),
		OrderID:       r.ID,
		UserID:        r.UserID,
		Status:        status,
		TotalCents:    r.TotalCents,
		Currency:      r.Currency,
		Items:         r.Items,
		FailureCode:   failureCode,
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return events.Event{}, err
	}
	return events.Event{ID: ev.EventID, Subject: subject, ConversationID: r.ID, Payload: payload, At: now}, nil
}
