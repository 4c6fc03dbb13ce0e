package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/storage"
	"go.opentelemetry.io/otel/trace"
)

// migrations is the inventory schema, one step per version, for SQLite
// and PostgreSQL alike; append, never edit a step that has shipped.
//
// One edit was made, safely: step 1 said INTEGER for the two millisecond
// columns until PostgreSQL came, whose INTEGER is 32 bits. SQLite gives
// INTEGER and BIGINT the same integer affinity, so a SQLite file made by
// either text stores and compares those columns alike.
var migrations = []string{
	`CREATE TABLE products (
		sku         TEXT PRIMARY KEY,
		name        TEXT NOT NULL,
		description TEXT NOT NULL,
		price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
		currency    TEXT NOT NULL,
		available   INTEGER NOT NULL CHECK (available >= 0)
	);
	CREATE TABLE reservations (
		order_id   TEXT PRIMARY KEY,
		status     TEXT NOT NULL CHECK (status IN ('held', 'committed', 'released', 'expired')),
		expires_at BIGINT NOT NULL, -- unix milliseconds
		updated_at BIGINT NOT NULL
	);
	CREATE INDEX reservations_held_by_expiry ON reservations (expires_at) WHERE status = 'held';
	CREATE TABLE reservation_items (
		order_id TEXT NOT NULL REFERENCES reservations (order_id),
		sku      TEXT NOT NULL REFERENCES products (sku),
		quantity INTEGER NOT NULL CHECK (quantity > 0),
		PRIMARY KEY (order_id, sku)
	);`,
}

// Store keeps products and reservations in the service's own database,
// a SQLite file or PostgreSQL. Every change that touches more than one row
// runs in one transaction, so a crash at any instant leaves stock
// conserved.
//
// On PostgreSQL several replicas change stock at once, so a transaction
// locks what it reads before it writes: the order (Lock, as its
// reservation may not exist yet), its reservation row, the product rows
// whose stock it checks, and the lapsed holds it expires (FOR UPDATE,
// all at READ COMMITTED). We chose row locks over SERIALIZABLE with
// retries because checkout contends on a few hot products: under row
// locks the racers for the last units queue and each gets a definite
// answer, where serializable transactions would abort and retry over and
// over. Product rows are locked in SKU order (items are sorted), so two
// reservations cannot deadlock; a rarer deadlock with a release or an
// expiry, whose stock returns in another order, is aborted by PostgreSQL
// and run again by InTx. On SQLite every write transaction holds the one
// write lock, and the locks are no-ops.
type Store struct {
	*storage.DB // Ping, Close and InTx, as in every store
}

// OpenStore opens the store at source (a SQLite file path or a
// postgres:// URL), creating and migrating it as needed.
func OpenStore(ctx context.Context, source string, tp trace.TracerProvider) (*Store, error) {
	return storage.Open(ctx, source, tp, migrations, func(db *storage.DB) *Store { return &Store{db} })
}

// Seed loads products when the catalogue is empty, and reports whether it
// did. A store that already has products is left untouched.
func (s *Store) Seed(ctx context.Context, products []Product) (bool, error) {
	seeded := false
	err := s.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		seeded = false
		// Two replicas starting on an empty database seed one at a time;
		// the second finds the products there.
		if err := s.Lock(ctx, tx, "inventory seed"); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM products`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		for _, p := range products {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO products (sku, name, description, price_cents, currency, available) VALUES ($1, $2, $3, $4, $5, $6)`,
				p.SKU, p.Name, p.Description, p.PriceCents, p.Currency, p.Available); err != nil {
				return fmt.Errorf("seed %s: %w", p.SKU, err)
			}
		}
		seeded = true
		return nil
	})
	return seeded, err
}

const productColumns = `sku, name, description, price_cents, currency, available`

func scanProduct(row interface{ Scan(...any) error }) (Product, error) {
	var p Product
	err := row.Scan(&p.SKU, &p.Name, &p.Description, &p.PriceCents, &p.Currency, &p.Available)
	return p, err
}

// ListProducts returns every product ordered by SKU.
func (s *Store) ListProducts(ctx context.Context) ([]Product, error) {
	products, err := storage.QueryAll(ctx, s.DB, scanProduct, `SELECT `+productColumns+` FROM products ORDER BY sku`)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	return products, nil
}

// GetProduct returns the product with sku.
func (s *Store) GetProduct(ctx context.Context, sku string) (Product, error) {
	p, err := scanProduct(s.SQL.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products WHERE sku = $1`, sku))
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, errs.E(errs.NotFound, CodeUnknownProduct, "no product with sku %q", sku)
	}
	if err != nil {
		return Product{}, fmt.Errorf("get product %s: %w", sku, err)
	}
	return p, nil
}

// Reserve holds items (normalized: unique SKUs, sorted) for orderID until
// expiresAt, or fails leaving everything as it was.
func (s *Store) Reserve(ctx context.Context, orderID string, items []Item, now, expiresAt time.Time) (Reservation, error) {
	var res Reservation
	err := s.changeReservation(ctx, orderID, now, func(ctx context.Context, tx *sql.Tx, existing Reservation, found bool) error {
		if found {
			res = existing
			return replayReserve(existing, items)
		}
		for _, it := range items {
			var available int
			err := tx.QueryRowContext(ctx, `SELECT available FROM products WHERE sku = $1`+s.Dialect().ForUpdate(), it.SKU).Scan(&available)
			if errors.Is(err, sql.ErrNoRows) {
				return errs.E(errs.NotFound, CodeUnknownProduct, "no product with sku %q", it.SKU)
			}
			if err != nil {
				return fmt.Errorf("read stock of %s: %w", it.SKU, err)
			}
			if available < it.Quantity {
				return errs.E(errs.Conflict, CodeOutOfStock, "sku %s: %d requested, %d available", it.SKU, it.Quantity, available)
			}
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO reservations (order_id, status, expires_at, updated_at) VALUES ($1, 'held', $2, $3)`,
			orderID, expiresAt.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("insert reservation: %w", err)
		}
		for _, it := range items {
			if _, err := tx.ExecContext(ctx, `UPDATE products SET available = available - $1 WHERE sku = $2`, it.Quantity, it.SKU); err != nil {
				return fmt.Errorf("take stock of %s: %w", it.SKU, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO reservation_items (order_id, sku, quantity) VALUES ($1, $2, $3)`,
				orderID, it.SKU, it.Quantity); err != nil {
				return fmt.Errorf("insert reservation item: %w", err)
			}
		}
		res = Reservation{OrderID: orderID, Status: Held, Items: items, ExpiresAt: time.UnixMilli(expiresAt.UnixMilli()).UTC()}
		return nil
	})
	if err != nil {
		return Reservation{}, err
	}
	return res, nil
}

// replayReserve decides what a repeated Reserve for an existing order gets:
// the same reservation if it is live and for the same items, else a
// Conflict that says why.
func replayReserve(existing Reservation, items []Item) error {
	if err := lapsed(existing); err != nil {
		return err
	}
	if !slices.Equal(existing.Items, items) {
		return errs.E(errs.Conflict, CodeReservationMismatch, "order %s already reserved %v, not %v", existing.OrderID, existing.Items, items)
	}
	return nil
}

// lapsed is the Conflict for a reservation that no longer holds stock
// (released or expired), which can be neither replayed nor committed; nil
// for one that is held or committed.
func lapsed(r Reservation) error {
	switch r.Status {
	case Released:
		return errs.E(errs.Conflict, CodeReservationReleased, "reservation for order %s was released", r.OrderID)
	case Expired:
		return errs.E(errs.Conflict, CodeReservationExpired, "reservation for order %s expired at %s", r.OrderID, r.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// Commit marks orderID's held reservation as sold.
func (s *Store) Commit(ctx context.Context, orderID string, now time.Time) (Reservation, error) {
	var (
		res    Reservation
		answer error // returned after the transaction commits
	)
	// The expiry changeReservation applies first is committed even when
	// Commit then refuses, so the units are back in stock either way.
	err := s.changeReservation(ctx, orderID, now, func(ctx context.Context, tx *sql.Tx, r Reservation, found bool) error {
		answer = nil
		if !found {
			return errs.E(errs.NotFound, CodeReservationNotFound, "no reservation for order %s", orderID)
		}
		res = r
		if r.Status == Committed {
			return nil
		}
		if answer = lapsed(r); answer != nil {
			return nil
		}
		if err := setStatus(ctx, tx, orderID, Committed, now); err != nil {
			return err
		}
		res.Status = Committed
		return nil
	})
	if err != nil {
		return Reservation{}, err
	}
	if answer != nil {
		return Reservation{}, answer
	}
	return res, nil
}

// Release returns orderID's held units to stock. An order with no
// reservation gets an empty released one, a tombstone that makes a late
// Reserve for it fail.
func (s *Store) Release(ctx context.Context, orderID string, now time.Time) (Reservation, error) {
	var res Reservation
	err := s.changeReservation(ctx, orderID, now, func(ctx context.Context, tx *sql.Tx, r Reservation, found bool) error {
		if !found {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO reservations (order_id, status, expires_at, updated_at) VALUES ($1, 'released', $2, $3)`,
				orderID, now.UnixMilli(), now.UnixMilli()); err != nil {
				return fmt.Errorf("insert released reservation: %w", err)
			}
			res = Reservation{OrderID: orderID, Status: Released, Items: []Item{}, ExpiresAt: time.UnixMilli(now.UnixMilli()).UTC()}
			return nil
		}
		res = r
		switch r.Status {
		case Released, Expired:
			return nil
		case Committed:
			return errs.E(errs.Conflict, CodeReservationCommitted, "reservation for order %s is committed and cannot be released", orderID)
		}
		if err := returnStock(ctx, tx, orderID); err != nil {
			return err
		}
		if err := setStatus(ctx, tx, orderID, Released, now); err != nil {
			return err
		}
		res.Status = Released
		return nil
	})
	if err != nil {
		return Reservation{}, err
	}
	return res, nil
}

// changeReservation runs change in one transaction with orderID's
// reservation (found is false if the order has none), after expiring every
// hold whose time is up: no operation ever acts on a lapsed hold.
func (s *Store) changeReservation(ctx context.Context, orderID string, now time.Time, change func(ctx context.Context, tx *sql.Tx, r Reservation, found bool) error) error {
	return s.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.Lock(ctx, tx, "order "+orderID); err != nil {
			return err
		}
		if _, err := s.expireHeld(ctx, tx, now); err != nil {
			return err
		}
		r, found, err := s.getReservation(ctx, tx, orderID)
		if err != nil {
			return err
		}
		return change(ctx, tx, r, found)
	})
}

// ExpireReservations expires every held reservation whose time is up and
// returns how many it expired.
func (s *Store) ExpireReservations(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		n, err = s.expireHeld(ctx, tx, now)
		return err
	})
	return n, err
}

// StockLedger sums, per SKU, the units available, held and committed. It
// is how tests and operators check that stock is conserved.
func (s *Store) StockLedger(ctx context.Context) (map[string]Ledger, error) {
	rows, err := s.SQL.QueryContext(ctx, `
		SELECT p.sku, p.available,
			COALESCE(SUM(CASE WHEN r.status = 'held' THEN i.quantity END), 0),
			COALESCE(SUM(CASE WHEN r.status = 'committed' THEN i.quantity END), 0)
		FROM products p
		LEFT JOIN reservation_items i ON i.sku = p.sku
		LEFT JOIN reservations r ON r.order_id = i.order_id
		GROUP BY p.sku`)
	if err != nil {
		return nil, fmt.Errorf("stock ledger: %w", err)
	}
	defer rows.Close()
	ledger := map[string]Ledger{}
	for rows.Next() {
		var sku string
		var l Ledger
		if err := rows.Scan(&sku, &l.Available, &l.Held, &l.Committed); err != nil {
			return nil, fmt.Errorf("stock ledger: %w", err)
		}
		ledger[sku] = l
	}
	return ledger, rows.Err()
}

// Ledger is one product's stock split by state.
type Ledger struct {
	Available, Held, Committed int
}

// Total is every unit ever stocked: it never changes through reservations.
func (l Ledger) Total() int { return l.Available + l.Held + l.Committed }

// getReservation reads orderID's reservation, locking its row.
func (s *Store) getReservation(ctx context.Context, tx *sql.Tx, orderID string) (Reservation, bool, error) {
	var (
		r         Reservation
		expiresAt int64
	)
	err := tx.QueryRowContext(ctx, `SELECT order_id, status, expires_at FROM reservations WHERE order_id = $1`+s.Dialect().ForUpdate(), orderID).
		Scan(&r.OrderID, &r.Status, &expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Reservation{}, false, nil
	}
	if err != nil {
		return Reservation{}, false, fmt.Errorf("read reservation %s: %w", orderID, err)
	}
	r.ExpiresAt = time.UnixMilli(expiresAt).UTC()
	rows, err := tx.QueryContext(ctx, `SELECT sku, quantity FROM reservation_items WHERE order_id = $1 ORDER BY sku`, orderID)
	if err != nil {
		return Reservation{}, false, fmt.Errorf("read reservation items %s: %w", orderID, err)
	}
	defer rows.Close()
	r.Items = []Item{}
	for rows.Next() {
		var it Item
		if err := rows.Scan(&it.SKU, &it.Quantity); err != nil {
			return Reservation{}, false, err
		}
		r.Items = append(r.Items, it)
	}
	return r, true, rows.Err()
}

func setStatus(ctx context.Context, tx *sql.Tx, orderID string, status ReservationStatus, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE reservations SET status = $1, updated_at = $2 WHERE order_id = $3`, string(status), now.UnixMilli(), orderID)
	if err != nil {
		return fmt.Errorf("set reservation %s %s: %w", orderID, status, err)
	}
	return nil
}

func returnStock(ctx context.Context, tx *sql.Tx, orderID string) error {
	_, err := tx.ExecContext(ctx, `
		UPDATE products SET available = available + (
			SELECT quantity FROM reservation_items i WHERE i.order_id = $1 AND i.sku = products.sku)
		WHERE sku IN (SELECT sku FROM reservation_items WHERE order_id = $1)`, orderID)
	if err != nil {
		return fmt.Errorf("return stock of %s: %w", orderID, err)
	}
	return nil
}

// expireHeld expires held reservations whose time is up, returning their
// units to stock. It locks the holds it expires, in order: a concurrent
// transaction that expired one first makes PostgreSQL read it again,
// find it no longer held, and skip it, so no hold returns its units
// twice.
func (s *Store) expireHeld(ctx context.Context, tx *sql.Tx, now time.Time) (int, error) {
	rows, err := tx.QueryContext(ctx,
		`SELECT order_id FROM reservations WHERE status = 'held' AND expires_at <= $1 ORDER BY order_id`+s.Dialect().ForUpdate(),
		now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("find expired reservations: %w", err)
	}
	var due []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		due = append(due, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, err
	}
	for _, id := range due {
		if err := returnStock(ctx, tx, id); err != nil {
			return 0, err
		}
		if err := setStatus(ctx, tx, id, Expired, now); err != nil {
			return 0, err
		}
	}
	return len(due), nil
}
