package orders

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/events"
	"github.com/glasshouse-dev/glasshouse/storage"
	"go.opentelemetry.io/otel/trace"
)

// migrations is the orders schema, one step per version, for SQLite and
// PostgreSQL alike; append, never edit a step that has shipped.
//
// One edit was made, safely: step 1 said INTEGER for the cents and the
// millisecond columns until PostgreSQL came, whose INTEGER is 32 bits.
// SQLite gives INTEGER and BIGINT the same integer affinity, so a SQLite
// file made by either text stores and compares those columns alike.
// charge_unsettled stays an INTEGER holding 0 or 1 (not a BOOLEAN): its
// partial index compares it with 1, which PostgreSQL's BOOLEAN refuses.
var migrations = []string{
	`CREATE TABLE orders (
		id               TEXT PRIMARY KEY,
		user_id          TEXT NOT NULL,
		idempotency_key  TEXT NOT NULL,
		request_hash     TEXT NOT NULL,
		status           TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED', 'FAILED')),
		step             TEXT NOT NULL,
		total_cents      BIGINT NOT NULL,
		currency         TEXT NOT NULL,
		charge_id        TEXT NOT NULL DEFAULT '',
		failure_kind     INTEGER NOT NULL DEFAULT 0,
		failure_code     TEXT NOT NULL DEFAULT '',
		failure_reason   TEXT NOT NULL DEFAULT '',
		failure_upstream TEXT NOT NULL DEFAULT '',
		charge_unsettled INTEGER NOT NULL DEFAULT 0,
		created_at       BIGINT NOT NULL, -- unix milliseconds
		updated_at       BIGINT NOT NULL,
		UNIQUE (user_id, idempotency_key)
	);
	CREATE INDEX orders_by_user ON orders (user_id, created_at);
	CREATE INDEX orders_pending ON orders (updated_at) WHERE status = 'PENDING';
	CREATE INDEX orders_unsettled ON orders (updated_at) WHERE charge_unsettled = 1;
	CREATE TABLE order_items (
		order_id         TEXT NOT NULL REFERENCES orders (id),
		sku              TEXT NOT NULL,
		quantity         INTEGER NOT NULL CHECK (quantity > 0),
		unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
		PRIMARY KEY (order_id, sku)
	);`,
	// Pages of a user's orders are read in the order of this index, so a
	// page is one seek and a scan of its own rows, however deep it is:
	// no sort, no skipping over the pages before.
	`DROP INDEX orders_by_user;
	CREATE INDEX orders_by_user_page ON orders (user_id, created_at DESC, id);`,
	// The outbox of order events, written in the transaction that
	// finishes an order (finish) and published by the relay.
	events.Migration,
}

// Step is how far an order's saga has got; it is written before each
// remote call's effect is relied on, so recovery knows where to resume.
type Step string

const (
	StepCreated      Step = "created"      // order recorded; stock may be reserving
	StepReserved     Step = "reserved"     // stock held; the card may be charging
	StepCharged      Step = "charged"      // paid; the reservation may be committing
	StepCompensating Step = "compensating" // giving back what was done
	StepDone         Step = "done"         // terminal
)

// record is an order with its saga bookkeeping.
type record struct {
	Order
	IdempotencyKey  string
	RequestHash     string
	Step            Step
	ChargeID        string
	FailureKind     errs.Kind
	FailureUpstream string
	// ChargeUnsettled marks a failed order for which a charge request
	// may still be in flight; recovery checks payments until it is sure.
	ChargeUnsettled bool
	UpdatedAt       time.Time
}

// failure returns the error a replay of this failed order answers with.
func (r record) failure() error {
	return &errs.Error{Kind: r.FailureKind, Code: r.FailureCode, Detail: r.FailureReason, Upstream: r.FailureUpstream}
}

// Store keeps orders and their saga state in the service's own database,
// a SQLite file or PostgreSQL.
//
// On PostgreSQL several replicas write at once, and every write that
// depends on what the row held is one statement that tests it: a saga
// step, a finish and a recovery claim are each an UPDATE … WHERE status =
// 'PENDING' (and, for a claim, the updated_at it read). At READ COMMITTED
// a second UPDATE of the same row waits for the first to commit and then
// tests its WHERE again on the new row, so of two replicas racing for a
// change exactly one makes it and the other sees 0 rows affected. An
// Idempotency-Key is taken by INSERT … ON CONFLICT DO NOTHING on the
// (user_id, idempotency_key) unique key, which waits in the same way for
// a concurrent insert of the same key. Neither needs a lock held between
// a read and a write, nor a retry; on SQLite the one write lock orders
// them anyway.
type Store struct {
	*storage.DB // Ping, Close and InTx, as in every store
	tracer      trace.Tracer
	noEvents    bool // see WithoutEvents
}

// WithoutEvents makes the store write no events: an order finishes with
// its UPDATE alone, and nothing reaches the outbox or NATS. It exists
// only so a benchmark can measure what the outbox costs a checkout;
// never use it in production, where nobody would learn of the orders.
func (s *Store) WithoutEvents() { s.noEvents = true }

// OpenStore opens the store at source (a SQLite file path or a
// postgres:// URL), creating and migrating it as needed.
func OpenStore(ctx context.Context, source string, tp trace.TracerProvider) (*Store, error) {
	return storage.Open(ctx, source, tp, migrations, func(db *storage.DB) *Store {
		return &Store{DB: db, tracer: tp.Tracer("glasshouse/orders")}
	})
}

// create inserts a new PENDING order, unless the user already used its
// idempotency key: then it returns that order and false.
//
// The insert comes first and yields to the unique key, rather than a read
// deciding whether to insert: two replicas that both read "no such key"
// would both insert, and one would fail. Here the second waits for the
// first's transaction, inserts nothing, and reads the order that won.
func (s *Store) create(ctx context.Context, r record) (record, bool, error) {
	var (
		existing record
		created  bool
	)
	err := s.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		existing, created = record{}, false
		res, err := tx.ExecContext(ctx, `
			INSERT INTO orders (id, user_id, idempotency_key, request_hash, status, step, total_cents, currency, created_at, updated_at)
			VALUES ($1, $2, $3, $4, 'PENDING', $5, $6, $7, $8, $9)
			ON CONFLICT (user_id, idempotency_key) DO NOTHING`,
			r.ID, r.UserID, r.IdempotencyKey, r.RequestHash, string(StepCreated), r.TotalCents, r.Currency,
			r.CreatedAt.UnixMilli(), r.UpdatedAt.UnixMilli())
		if err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("insert order: %w", err)
		} else if n == 0 { // the key is taken
			found, ok, err := scanOne(ctx, tx, `WHERE user_id = $1 AND idempotency_key = $2`, r.UserID, r.IdempotencyKey)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("order for idempotency key %q of %s neither inserted nor found", r.IdempotencyKey, r.UserID)
			}
			existing = found
			return nil
		}
		for _, l := range r.Items {
			if _, err := tx.ExecContext(ctx, `INSERT INTO order_items (order_id, sku, quantity, unit_price_cents) VALUES ($1, $2, $3, $4)`,
				r.ID, l.SKU, l.Quantity, l.UnitPriceCents); err != nil {
				return fmt.Errorf("insert order item: %w", err)
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return record{}, false, err
	}
	if !created {
		return existing, false, nil
	}
	return r, true, nil
}

// byKey returns the user's order placed with key, if any.
func (s *Store) byKey(ctx context.Context, userID, key string) (record, bool, error) {
	return scanOne(ctx, s.SQL, `WHERE user_id = $1 AND idempotency_key = $2`, userID, key)
}

// get returns an order by ID.
func (s *Store) get(ctx context.Context, orderID string) (record, error) {
	r, ok, err := scanOne(ctx, s.SQL, `WHERE id = $1`, orderID)
	if err != nil {
		return record{}, err
	}
	if !ok {
		return record{}, errs.E(errs.NotFound, CodeOrderNotFound, "no order %s", orderID)
	}
	return r, nil
}

// listByUser returns up to limit of the user's orders, newest first (ties
// by ID), starting after the order named by after (from the first when
// after is nil). The orders_by_user_page index serves both the filter and
// the order, so a page costs the same however deep it is. The condition
// is written as a range on created_at (created_at <= $2) and a test within
// it, rather than as "created_at < ? OR (created_at = ? AND id > ?)",
// because SQLite seeks an index only on the former.
func (s *Store) listByUser(ctx context.Context, userID string, after *cursor, limit int) ([]record, error) {
	if after == nil {
		return scanMany(ctx, s.SQL, `WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT $2`, userID, limit)
	}
	ms := after.createdAt.UnixMilli()
	return scanMany(ctx, s.SQL, `WHERE user_id = $1 AND created_at <= $2 AND (created_at < $2 OR id > $3)
		ORDER BY created_at DESC, id LIMIT $4`, userID, ms, after.orderID, limit)
}

// advance records that the saga reached step.
func (s *Store) advance(ctx context.Context, orderID string, step Step, chargeID string, now time.Time) error {
	_, err := s.SQL.ExecContext(ctx, `
		UPDATE orders SET step = $1, charge_id = CASE WHEN $2 = '' THEN charge_id ELSE $2 END, updated_at = $3
		WHERE id = $4 AND status = 'PENDING'`, string(step), chargeID, now.UnixMilli(), orderID)
	if err != nil {
		return fmt.Errorf("advance order %s to %s: %w", orderID, step, err)
	}
	return nil
}

// compensating records that the saga is giving back what it did because
// of cause, which becomes the order's failure once compensation is done.
func (s *Store) compensating(ctx context.Context, orderID string, cause error, now time.Time) error {
	_, err := s.SQL.ExecContext(ctx, `
		UPDATE orders SET step = $1, failure_kind = $2, failure_code = $3, failure_reason = $4, failure_upstream = $5, updated_at = $6
		WHERE id = $7 AND status = 'PENDING'`,
		string(StepCompensating), int(errs.KindOf(cause)), errs.CodeOf(cause), detailOf(cause), errs.UpstreamOf(cause), now.UnixMilli(), orderID)
	if err != nil {
		return fmt.Errorf("mark order %s compensating: %w", orderID, err)
	}
	return nil
}

// finish moves a PENDING order to its terminal status and writes the
// event that reports it to the outbox, in one transaction: the order is
// finished with its event or not at all. It reports false when the order
// was no longer PENDING: someone else (recovery, in a race with a saga it
// thought dead) finished it first, and that outcome stands, with the one
// event its finisher wrote.
func (s *Store) finish(ctx context.Context, r record, status Status, cause error, unsettled bool, now time.Time) (bool, error) {
	ev, err := orderEvent(r, status, errs.CodeOf(cause), now)
	if err != nil {
		return false, err
	}
	var won bool
	err = s.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		won = false
		res, err := tx.ExecContext(ctx, `
			UPDATE orders SET status = $1, step = $2, failure_kind = $3, failure_code = $4, failure_reason = $5,
				failure_upstream = $6, charge_unsettled = $7, updated_at = $8
			WHERE id = $9 AND status = 'PENDING'`,
			string(status), string(StepDone), int(kindOrZero(cause)), errs.CodeOf(cause), detailOf(cause), errs.UpstreamOf(cause),
			boolInt(unsettled), now.UnixMilli(), r.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		won = true
		if s.noEvents {
			return nil
		}
		return events.Write(ctx, tx, s.tracer, ev)
	})
	if err != nil {
		return false, fmt.Errorf("finish order %s as %s: %w", r.ID, status, err)
	}
	return won, nil
}

// stale returns PENDING orders untouched since before: sagas whose
// process died, or that stalled on an unavailable dependency.
func (s *Store) stale(ctx context.Context, before time.Time) ([]record, error) {
	return scanMany(ctx, s.SQL, `WHERE status = 'PENDING' AND updated_at < $1 ORDER BY updated_at`, before.UnixMilli())
}

// claim takes a stale order for recovery: it succeeds only if nobody
// touched the order since it was read, so two replicas never resume the
// same saga at once.
//
// The lease is the updated_at it writes: the order is not stale again for
// StaleAfter, longer than a resumed saga may take. A row lock cannot be
// the lease, since resuming calls inventory and payments and no
// transaction (nor a pooled connection) may stay open across those calls;
// so the claim is one conditional UPDATE, a compare-and-set on the
// updated_at that stale read. On PostgreSQL a second replica's UPDATE of
// the row waits for the first's to commit, then tests its WHERE on the
// new updated_at, and affects no row.
//
// We measured the alternative, picking the next stale order with a
// subquery FOR UPDATE SKIP LOCKED and stamping it in the same UPDATE. On
// this machine two claim-only passes at once over 1,000 stalled orders
// took 0.79s with it and 1.0s with this compare-and-set, half of whose
// 2,000 UPDATEs found the order already taken by the other replica. SKIP
// LOCKED also splits the work more evenly, but it needs a PostgreSQL-only
// clause and a pass shaped as "claim the next one until none is left".
// Stalled sagas are few (the aftermath of a crash or an outage), and a
// lost claim costs one indexed UPDATE beside a resume's remote calls, so
// one statement for both databases wins.
func (s *Store) claim(ctx context.Context, r record, now time.Time) (bool, error) {
	res, err := s.SQL.ExecContext(ctx, `UPDATE orders SET updated_at = $1 WHERE id = $2 AND status = 'PENDING' AND updated_at = $3`,
		now.UnixMilli(), r.ID, r.UpdatedAt.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("claim order %s: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// unsettled returns finished orders whose charge may still land.
func (s *Store) unsettled(ctx context.Context) ([]record, error) {
	return scanMany(ctx, s.SQL, `WHERE charge_unsettled = 1 ORDER BY updated_at`)
}

// settle records that an order's charge question is answered.
func (s *Store) settle(ctx context.Context, orderID string) error {
	_, err := s.SQL.ExecContext(ctx, `UPDATE orders SET charge_unsettled = 0 WHERE id = $1`, orderID)
	return err
}

// Order returns an order by ID, whoever placed it: for operators and
// tests checking invariants, never for answering a user.
func (s *Store) Order(ctx context.Context, orderID string) (Order, error) {
	r, err := s.get(ctx, orderID)
	return r.Order, err
}

// CountByStatus counts orders per status, for tests and metrics.
func (s *Store) CountByStatus(ctx context.Context) (map[Status]int, error) {
	rows, err := s.SQL.QueryContext(ctx, `SELECT status, count(*) FROM orders GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[Status]int{}
	for rows.Next() {
		var st Status
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const orderColumns = `id, user_id, idempotency_key, request_hash, status, step, total_cents, currency, charge_id,
	failure_kind, failure_code, failure_reason, failure_upstream, charge_unsettled, created_at, updated_at`

func scanOne(ctx context.Context, q querier, where string, args ...any) (record, bool, error) {
	rs, err := scanMany(ctx, q, where, args...)
	if err != nil || len(rs) == 0 {
		return record{}, false, err
	}
	return rs[0], true, nil
}

func scanMany(ctx context.Context, q querier, where string, args ...any) ([]record, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	var out []record
	for rows.Next() {
		var (
			r                record
			created, updated int64
			failureKind      int
			unsettled        int
		)
		if err := rows.Scan(&r.ID, &r.UserID, &r.IdempotencyKey, &r.RequestHash, &r.Status, &r.Step, &r.TotalCents, &r.Currency,
			&r.ChargeID, &failureKind, &r.FailureCode, &r.FailureReason, &r.FailureUpstream, &unsettled, &created, &updated); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read orders: %w", err)
		}
		r.FailureKind = errs.Kind(failureKind)
		r.ChargeUnsettled = unsettled != 0
		r.CreatedAt = time.UnixMilli(created).UTC()
		r.UpdatedAt = time.UnixMilli(updated).UTC()
		out = append(out, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	if err := readItems(ctx, q, out); err != nil {
		return nil, err
	}
	return out, nil
}

// itemsBatch is how many orders' items one query reads: far below
// SQLite's limit on bound parameters, and above the largest page.
const itemsBatch = 500

// readItems fills in the items of rs with one query per batch of orders,
// not one per order: a page of 100 orders costs two queries, not 101.
func readItems(ctx context.Context, q querier, rs []record) error {
	byID := make(map[string]*record, len(rs))
	for i := range rs {
		rs[i].Items = []Line{}
		byID[rs[i].ID] = &rs[i]
	}
	for start := 0; start < len(rs); start += itemsBatch {
		batch := rs[start:min(start+itemsBatch, len(rs))]
		args := make([]any, len(batch))
		for i, r := range batch {
			args[i] = r.ID
		}
		placeholders := make([]string, len(batch))
		for i := range placeholders {
			placeholders[i] = "$" + strconv.Itoa(i+1)
		}
		rows, err := q.QueryContext(ctx, `SELECT order_id, sku, quantity, unit_price_cents FROM order_items
			WHERE order_id IN (`+strings.Join(placeholders, ", ")+`) ORDER BY order_id, sku`, args...)
		if err != nil {
			return fmt.Errorf("read order items: %w", err)
		}
		for rows.Next() {
			var (
				orderID string
				l       Line
			)
			if err := rows.Scan(&orderID, &l.SKU, &l.Quantity, &l.UnitPriceCents); err != nil {
				rows.Close()
				return fmt.Errorf("read order items: %w", err)
			}
			if r := byID[orderID]; r != nil {
				r.Items = append(r.Items, l)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("read order items: %w", err)
		}
	}
	return nil
}

// detailOf is what a customer may read about err: internal causes stay in
// the logs, as they do for any problem+json answer.
func detailOf(err error) string {
	var e *errs.Error
	switch {
	case err == nil:
		return ""
	case errs.KindOf(err) == errs.Internal:
		return "internal error"
	case errors.As(err, &e):
		return e.Detail
	}
	return err.Error()
}

// boolInt is b as charge_unsettled stores it.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func kindOrZero(err error) errs.Kind {
	if err == nil {
		return 0
	}
	return errs.KindOf(err)
}
