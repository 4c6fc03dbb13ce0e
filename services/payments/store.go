package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/storage"
	"go.opentelemetry.io/otel/trace"
)

// migrations is the payments schema, one step per version, for SQLite
// and PostgreSQL alike; append, never edit a step that has shipped.
//
// order_id is UNIQUE: one charge per order is a property of the data, not
// only of the code that checks before inserting.
//
// One edit was made, safely: steps 1 and 2 said INTEGER for amount_cents
// (an int64) and the millisecond columns until PostgreSQL came, whose
// INTEGER is 32 bits. SQLite gives INTEGER and BIGINT the same integer
// affinity, so a SQLite file made by either text stores and compares
// those columns alike.
var migrations = []string{
	`CREATE TABLE charges (
		id           TEXT PRIMARY KEY,
		order_id     TEXT NOT NULL UNIQUE,
		amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
		currency     TEXT NOT NULL CHECK (length(currency) = 3),
		status       TEXT NOT NULL CHECK (status IN ('succeeded', 'declined', 'refunded')),
		card_last4   TEXT NOT NULL CHECK (length(card_last4) = 4),
		created_at   BIGINT NOT NULL, -- unix milliseconds
		refunded_at  BIGINT           -- unix milliseconds; NULL until refunded
	);`,
	// Orders closed to charges by Void; CreateCharge refuses them.
	`CREATE TABLE voided_orders (
		order_id  TEXT PRIMARY KEY,
		voided_at BIGINT NOT NULL -- unix milliseconds
	);`,
}

// Store keeps charges in the service's own database, a SQLite file or
// PostgreSQL.
//
// On PostgreSQL several replicas write at once, so a transaction locks
// what its reads decide, at READ COMMITTED: CreateCharge and Void first
// lock the order's name (Lock), as its charge or void may not exist yet,
// so for one order they run one after the other and the second sees what
// the first did; Refund locks the charge's row (FOR UPDATE), so two
// refunds cannot both find it succeeded. We chose locks over SERIALIZABLE
// with retries because retries of one checkout hit the same order at
// once by design: under the lock they queue and each gets the first
// answer, where serializable transactions would abort each other. No
// transaction holds one of these locks while it waits for another, so
// they cannot deadlock. On SQLite every write transaction holds the one
// write lock, and the locks are no-ops.
type Store struct {
	*storage.DB // Ping, Close and InTx, as in every store
}

// OpenStore opens the store at source (a SQLite file path or a
// postgres:// URL), creating and migrating it as needed.
func OpenStore(ctx context.Context, source string, tp trace.TracerProvider) (*Store, error) {
	return storage.Open(ctx, source, tp, migrations, func(db *storage.DB) *Store { return &Store{db} })
}

const chargeColumns = `id, order_id, amount_cents, currency, status, card_last4, created_at, refunded_at`

func scanCharge(row interface{ Scan(...any) error }) (Charge, error) {
	var (
		c          Charge
		createdAt  int64
		refundedAt sql.NullInt64
	)
	if err := row.Scan(&c.ID, &c.OrderID, &c.AmountCents, &c.Currency, &c.Status, &c.CardLast4, &createdAt, &refundedAt); err != nil {
		return Charge{}, err
	}
	c.CreatedAt = time.UnixMilli(createdAt).UTC()
	if refundedAt.Valid {
		t := time.UnixMilli(refundedAt.Int64).UTC()
		c.RefundedAt = &t
	}
	return c, nil
}

// CreateCharge records c unless its order already has a charge, and
// returns the order's charge and whether it is c. The check and the insert
// are one transaction under the order's lock (SQLite's write lock, or the
// order's Lock on PostgreSQL): concurrent calls for one order, on any
// replica, serialize, and exactly one of them inserts.
func (s *Store) CreateCharge(ctx context.Context, c Charge) (stored Charge, created bool, err error) {
	err = s.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		stored, created = Charge{}, false
		if err := s.lockOrder(ctx, tx, c.OrderID); err != nil {
			return err
		}
		existing, found, err := queryCharge(ctx, tx, selectChargeByOrder, c.OrderID)
		if err != nil {
			return err
		}
		if found {
			stored = existing
			return nil
		}
		if voided, err := isVoided(ctx, tx, c.OrderID); err != nil {
			return err
		} else if voided {
			return errs.E(errs.Conflict, CodeChargeVoided, "order %s was cancelled before it was charged; nothing was charged", c.OrderID)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO charges (`+chargeColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)`,
			c.ID, c.OrderID, c.AmountCents, c.Currency, string(c.Status), c.CardLast4, c.CreatedAt.UnixMilli()); err != nil {
			return fmt.Errorf("insert charge for order %s: %w", c.OrderID, err)
		}
		stored, created = c, true
		return nil
	})
	if err != nil {
		return Charge{}, false, err
	}
	return stored, created, nil
}

// Refund marks a succeeded charge refunded at now. A refunded charge is
// returned unchanged; a declined one cannot be refunded. The charge's row
// is locked as it is read, so of two concurrent refunds the second finds
// it refunded and returns it as the first left it.
func (s *Store) Refund(ctx context.Context, chargeID string, now time.Time) (Charge, error) {
	var c Charge
	err := s.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if c, err = chargeByID(ctx, tx, selectChargeByID+s.Dialect().ForUpdate(), chargeID); err != nil {
			return err
		}
		switch c.Status {
		case Refunded:
			return nil
		case Declined:
			return errs.E(errs.Conflict, CodeChargeNotRefundable, "charge %s was declined; there is nothing to refund", chargeID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE charges SET status = 'refunded', refunded_at = $1 WHERE id = $2`,
			now.UnixMilli(), chargeID); err != nil {
			return fmt.Errorf("refund charge %s: %w", chargeID, err)
		}
		refundedAt := time.UnixMilli(now.UnixMilli()).UTC()
		c.Status, c.RefundedAt = Refunded, &refundedAt
		return nil
	})
	if err != nil {
		return Charge{}, err
	}
	return c, nil
}

// GetCharge returns the charge with id.
func (s *Store) GetCharge(ctx context.Context, id string) (Charge, error) {
	return chargeByID(ctx, s.SQL, selectChargeByID, id)
}

// Void returns the charge made for orderID, or, when there is none, marks
// the order voided so no charge can be made for it later. It takes the
// order's lock, as CreateCharge does, so a Void and a Charge racing for
// one order end one way or the other: charged (and Void returns the
// charge) or voided (and the charge is refused), never both.
func (s *Store) Void(ctx context.Context, orderID string, now time.Time) (Charge, error) {
	var c Charge
	err := s.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		c = Charge{}
		if err := s.lockOrder(ctx, tx, orderID); err != nil {
			return err
		}
		existing, found, err := queryCharge(ctx, tx, selectChargeByOrder, orderID)
		if err != nil || found {
			c = existing
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO voided_orders (order_id, voided_at) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING`,
			orderID, now.UnixMilli()); err != nil {
			return fmt.Errorf("void order %s: %w", orderID, err)
		}
		c = Charge{OrderID: orderID, Status: Voided, CreatedAt: now}
		return nil
	})
	return c, err
}

// lockOrder holds orderID's lock until tx ends: on PostgreSQL the only
// way to lock a charge or a void that may not exist yet.
func (s *Store) lockOrder(ctx context.Context, tx *sql.Tx, orderID string) error {
	return s.Lock(ctx, tx, "order "+orderID)
}

func isVoided(ctx context.Context, tx *sql.Tx, orderID string) (bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM voided_orders WHERE order_id = $1`, orderID).Scan(&n); err != nil {
		return false, fmt.Errorf("read voided order %s: %w", orderID, err)
	}
	return n > 0, nil
}

// FindCharge returns the charge made for orderID.
func (s *Store) FindCharge(ctx context.Context, orderID string) (Charge, error) {
	c, found, err := queryCharge(ctx, s.SQL, selectChargeByOrder, orderID)
	if err != nil {
		return Charge{}, err
	}
	if !found {
		return Charge{}, errs.E(errs.NotFound, CodeChargeNotFound, "no charge for order %s", orderID)
	}
	return c, nil
}

// ListCharges returns every charge in the order they were made, to the
// millisecond (charges made within one are in ID order: PostgreSQL has
// no rowid to tell them apart). It is how tests and operators check that
// no order was charged twice and that every charge belongs to an order.
func (s *Store) ListCharges(ctx context.Context) ([]Charge, error) {
	charges, err := storage.QueryAll(ctx, s.DB, scanCharge, `SELECT `+chargeColumns+` FROM charges ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list charges: %w", err)
	}
	return charges, nil
}

const (
	selectChargeByID    = `SELECT ` + chargeColumns + ` FROM charges WHERE id = $1`
	selectChargeByOrder = `SELECT ` + chargeColumns + ` FROM charges WHERE order_id = $1`
)

// querier is what *sql.DB and *sql.Tx have in common, so one read serves
// inside and outside a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queryCharge runs one of the selects above; found is false when no
// charge matches.
func queryCharge(ctx context.Context, q querier, query, arg string) (c Charge, found bool, err error) {
	c, err = scanCharge(q.QueryRowContext(ctx, query, arg))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Charge{}, false, nil
	case err != nil:
		return Charge{}, false, fmt.Errorf("read charge %s: %w", arg, err)
	}
	return c, true, nil
}

// chargeByID returns the charge with id, or NotFound; query is
// selectChargeByID, with or without a row lock.
func chargeByID(ctx context.Context, q querier, query, id string) (Charge, error) {
	c, found, err := queryCharge(ctx, q, query, id)
	if err != nil {
		return Charge{}, err
	}
	if !found {
		return Charge{}, errs.E(errs.NotFound, CodeChargeNotFound, "no charge with id %q", id)
	}
	return c, nil
}
