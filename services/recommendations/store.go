package recommendations

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/glasshouse-dev/glasshouse/storage"
	"go.opentelemetry.io/otel/trace"
)

// migrations is the recommendations schema, one step per version, for
// SQLite and PostgreSQL alike; append, never edit a step that has
// shipped.
//
// The model counts distinct customers, not orders: a customer who buys X
// twice and Y once counts once for the pair. That makes it independent
// of the order events arrive in, so a replay from an empty store reaches
// the same counts, whichever replica handled what.
var migrations = []string{
	// Every event applied, by ID: a redelivery finds its row and changes
	// nothing. stream_seq says where in ORDERS it came from.
	`CREATE TABLE processed_events (
		event_id     TEXT PRIMARY KEY,
		order_id     TEXT NOT NULL,
		stream_seq   BIGINT NOT NULL,
		processed_at BIGINT NOT NULL -- unix milliseconds
	);
	-- What each customer has bought, once per product.
	CREATE TABLE purchases (
		user_id TEXT NOT NULL,
		sku     TEXT NOT NULL,
		PRIMARY KEY (user_id, sku)
	);
	-- For each ordered pair of products, how many customers bought both;
	-- both (x, y) and (y, x) are kept, so a lookup reads one index range.
	CREATE TABLE co_purchases (
		sku       TEXT NOT NULL,
		other     TEXT NOT NULL,
		customers BIGINT NOT NULL CHECK (customers > 0),
		PRIMARY KEY (sku, other)
	);`,
}

// Store keeps the co-purchase model in the service's own database, a
// SQLite file or PostgreSQL.
//
// On PostgreSQL replicas record events at once: Record locks the
// customer's name (storage.DB.Lock), so two orders of one customer are
// applied one after the other and the second sees what the first bought.
// On SQLite every write transaction holds the one write lock.
type Store struct {
	*storage.DB // Ping, Close and InTx, as in every store
}

// OpenStore opens the store at source (a SQLite file path or a
// postgres:// URL), creating and migrating it as needed.
func OpenStore(ctx context.Context, source string, tp trace.TracerProvider) (*Store, error) {
	return storage.Open(ctx, source, tp, migrations, func(db *storage.DB) *Store { return &Store{db} })
}

// Record applies p once: the customer bought its products, and each
// product they had not bought before pairs with each they had. It reports
// whether p was applied now; an event recorded before changes nothing.
func (s *Store) Record(ctx context.Context, p Purchase) (applied bool, err error) {
	err = s.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		applied = false
		if err := s.Lock(ctx, tx, "customer:"+p.UserID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO processed_events (event_id, order_id, stream_seq, processed_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING`,
			p.EventID, p.OrderID, int64(p.Sequence), time.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("record event %s: %w", p.EventID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // seen before, or the driver could not say
		}
		bought, err := s.bought(ctx, tx, p.UserID)
		if err != nil {
			return err
		}
		var pairs [][2]string
		for _, sku := range p.SKUs {
			if slices.Contains(bought, sku) {
				continue
			}
			for _, other := range bought {
				pairs = append(pairs, [2]string{sku, other}, [2]string{other, sku})
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO purchases (user_id, sku) VALUES ($1, $2)`, p.UserID, sku); err != nil {
				return fmt.Errorf("record purchase of %s: %w", sku, err)
			}
			bought = append(bought, sku)
		}
		// Rows are counted in one order in every transaction, so two
		// customers' transactions that share pairs wait for each other
		// instead of deadlocking.
		slices.SortFunc(pairs, func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
		for _, pr := range pairs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO co_purchases (sku, other, customers) VALUES ($1, $2, 1)
				ON CONFLICT (sku, other) DO UPDATE SET customers = co_purchases.customers + 1`, pr[0], pr[1]); err != nil {
				return fmt.Errorf("count pair %s, %s: %w", pr[0], pr[1], err)
			}
		}
		applied = true
		return nil
	})
	return applied, err
}

func (s *Store) bought(ctx context.Context, tx *sql.Tx, userID string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT sku FROM purchases WHERE user_id = $1`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var skus []string
	for rows.Next() {
		var sku string
		if err := rows.Scan(&sku); err != nil {
			return nil, err
		}
		skus = append(skus, sku)
	}
	return skus, rows.Err()
}

// Recommend returns at most limit products bought with sku, most
// customers first, then by SKU.
func (s *Store) Recommend(ctx context.Context, sku string, limit int) ([]Recommendation, error) {
	return storage.QueryAll(ctx, s.DB, func(row interface{ Scan(...any) error }) (Recommendation, error) {
		var r Recommendation
		err := row.Scan(&r.SKU, &r.Customers)
		return r, err
	}, `SELECT other, customers FROM co_purchases WHERE sku = $1 ORDER BY customers DESC, other LIMIT $2`, sku, limit)
}

// ProcessedEvents counts the events applied: zero in an empty store,
// which then replays the stream from its start.
func (s *Store) ProcessedEvents(ctx context.Context) (int, error) {
	var n int
	err := s.SQL.QueryRowContext(ctx, `SELECT count(*) FROM processed_events`).Scan(&n)
	return n, err
}

// ProcessedOrders counts the events applied per order: what the chaos
// suite compares with orders' confirmed orders (each must be 1).
func (s *Store) ProcessedOrders(ctx context.Context) (map[string]int, error) {
	rows, err := s.SQL.QueryContext(ctx, `SELECT order_id, count(*) FROM processed_events GROUP BY order_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			id string
			n  int
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}
