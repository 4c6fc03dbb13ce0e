package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"github.com/glasshouse-dev/glasshouse/storage"
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx", for reading a PostgreSQL store directly
	"go.opentelemetry.io/otel/trace/noop"
)

// Invariants are the checkout's promises, read from the services' own
// stores (each service's SQLite file or PostgreSQL database, which its
// replicas share). They are read only, never changed: the runner checks
// what the services did.
type Invariants struct {
	// Quiet is how long after the load every saga had ended (no order
	// PENDING) and the promises held; or, if they never did, how long the
	// runner waited.
	Quiet    time.Duration
	Orders   map[orders.Status]int
	Charges  int // every charge ever made
	Refunded int
	// Held is the stock still reserved by unfinished checkouts.
	Held int
	// Broken lists every broken promise, by kind.
	Broken []Violation
	Err    string // the stores could not be read
}

// A Violation is one broken promise.
type Violation struct {
	Kind   string
	Detail string
}

// Kinds of violation.
const (
	// StockNotConserved: a product's available and committed units do
	// not add up to its initial stock, or units are still held.
	StockNotConserved = "stock"
	// DoubleCharge: an order has more than one charge.
	DoubleCharge = "double-charge"
	// StrayCharge: a succeeded charge whose order is not CONFIRMED, or a
	// refunded one whose order is (money kept for goods not delivered,
	// or goods delivered for money given back).
	StrayCharge = "stray-charge"
	// Unfinished: an order still PENDING once every saga should have
	// ended.
	Unfinished = "unfinished"
)

// Hold reports whether every promise holds.
func (inv Invariants) Hold() bool { return inv.Err == "" && len(inv.Broken) == 0 }

// Of returns the violations of kind.
func (inv Invariants) Of(kind string) []Violation {
	var out []Violation
	for _, v := range inv.Broken {
		if v.Kind == kind {
			out = append(out, v)
		}
	}
	return out
}

// Sources says where each service keeps its data: a SQLite file or a
// PostgreSQL URL, as its instances are told (stack.Stack.StoreSource).
type Sources func(service string) string

// readInvariants reads the stores and lists every broken promise.
func readInvariants(ctx context.Context, src Sources) (inv Invariants, err error) {
	tp := noop.NewTracerProvider()
	invStore, err := inventory.OpenStore(ctx, src("inventory"), tp)
	if err != nil {
		return inv, err
	}
	defer func() { err = errors.Join(err, invStore.Close()) }()
	payStore, err := payments.OpenStore(ctx, src("payments"), tp)
	if err != nil {
		return inv, err
	}
	defer func() { err = errors.Join(err, payStore.Close()) }()
	ordStore, err := orders.OpenStore(ctx, src("orders"), tp)
	if err != nil {
		return inv, err
	}
	defer func() { err = errors.Join(err, ordStore.Close()) }()

	// Orders first: a saga that ends between the reads leaves the ledger
	// and charges ahead of these counts, never behind.
	if inv.Orders, err = ordStore.CountByStatus(ctx); err != nil {
		return inv, err
	}
	if n := inv.Orders[orders.Pending]; n > 0 {
		inv.Broken = append(inv.Broken, Violation{Unfinished, fmt.Sprintf("%d orders PENDING", n)})
	}
	ledger, err := invStore.StockLedger(ctx)
	if err != nil {
		return inv, err
	}
	for _, p := range inventory.Catalogue {
		l := ledger[p.SKU]
		inv.Held += l.Held
		if l.Held != 0 || l.Available+l.Committed != p.Available {
			inv.Broken = append(inv.Broken, Violation{StockNotConserved, fmt.Sprintf(
				"%s: available %d + committed %d = %d, initial stock %d (held %d)",
				p.SKU, l.Available, l.Committed, l.Available+l.Committed, p.Available, l.Held)})
		}
	}

	charges, err := payStore.ListCharges(ctx)
	if err != nil {
		return inv, err
	}
	inv.Charges = len(charges)
	perOrder := map[string]int{}
	for _, c := range charges {
		perOrder[c.OrderID]++
		if c.Status == payments.Declined {
			continue
		}
		if c.Status == payments.Refunded {
			inv.Refunded++
		}
		o, err := ordStore.Order(ctx, c.OrderID)
		if err != nil {
			inv.Broken = append(inv.Broken, Violation{StrayCharge, fmt.Sprintf("%s charge %s: order %s unreadable: %v", c.Status, c.ID, c.OrderID, err)})
			continue
		}
		confirmed := o.Status == orders.Confirmed
		if (c.Status == payments.Succeeded) != confirmed {
			inv.Broken = append(inv.Broken, Violation{StrayCharge, fmt.Sprintf("%s charge %s belongs to order %s in status %s", c.Status, c.ID, c.OrderID, o.Status)})
		}
	}
	ids := make([]string, 0, len(perOrder))
	for id, n := range perOrder {
		if n > 1 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		inv.Broken = append(inv.Broken, Violation{DoubleCharge, fmt.Sprintf("order %s has %d charges", id, perOrder[id])})
	}
	return inv, nil
}

// awaitInvariants reads the invariants until they hold or within passes,
// and returns the last reading. Sagas interrupted by an experiment end
// within the recovery timings the stack runs orders with.
func awaitInvariants(ctx context.Context, src Sources, within time.Duration) Invariants {
	start := time.Now()
	var last Invariants
	err := poll(ctx, within, 250*time.Millisecond, func() error {
		inv, err := readInvariants(ctx, src)
		if err != nil {
			inv.Err = err.Error()
		}
		last = inv
		if !inv.Hold() {
			return errors.New("not yet")
		}
		return nil
	})
	_ = err // the last reading says what is broken
	last.Quiet = time.Since(start)
	return last
}

// readHostileStores counts what the stores hold of user: their orders,
// and the reservations and charges of those orders. The stores' packages
// offer no lookup by user, so this reads their tables directly, read-only.
func readHostileStores(ctx context.Context, src Sources, user string) HostileStores {
	var st HostileStores
	if user == "" {
		st.Err = "the hostile user is unknown"
		return st
	}
	ids, err := queryStrings(ctx, src("orders"), `SELECT id FROM orders WHERE user_id = $1`, user)
	if err != nil {
		st.Err = err.Error()
		return st
	}
	st.Orders = len(ids)
	if len(ids) == 0 {
		return st
	}
	marks := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		marks[i], args[i] = fmt.Sprintf("$%d", i+1), id
	}
	in := "(" + strings.Join(marks, ",") + ")"
	res, err := queryStrings(ctx, src("inventory"), `SELECT order_id FROM reservations WHERE order_id IN `+in, args...)
	st.Reservations = len(res)
	charges, cerr := queryStrings(ctx, src("payments"), `SELECT id FROM charges WHERE order_id IN `+in, args...)
	st.Charges = len(charges)
	if err = errors.Join(err, cerr); err != nil {
		st.Err = err.Error()
	}
	return st
}

// queryStrings runs a query returning one text column on the store at
// source (a SQLite file or a PostgreSQL URL), read-only.
func queryStrings(ctx context.Context, source, query string, args ...any) (out []string, err error) {
	driver, dsn := "sqlite", "file:"+source+"?mode=ro&_pragma=busy_timeout(5000)"
	if storage.IsPostgresURL(source) {
		// pgx sends an unknown URL parameter as a session setting.
		driver, dsn = "pgx", source+"&default_transaction_read_only=on"
		if !strings.Contains(source, "?") {
			dsn = source + "?default_transaction_read_only=on"
		}
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", storage.Redact(source), err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
