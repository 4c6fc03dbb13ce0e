package payments_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestStoreSurvivesReopen(t *testing.T) { testenv.OnEachBackend(t, testStoreSurvivesReopen) }

func testStoreSurvivesReopen(t *testing.T, b testenv.Backend) {
	ctx := context.Background()
	path := b.NewDatabase(t)
	if b.Name == testenv.SQLite.Name {
		path = filepath.Join(t.TempDir(), "data", "payments.db") // a directory Open must create
	}

	store, err := payments.OpenStore(ctx, path, noop.NewTracerProvider())
	if err != nil {
		t.Fatal(err)
	}
	svc := payments.NewService(store, payments.Options{})
	paid, err := svc.Charge(ctx, charge("paid", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}
	refunded, err := svc.Charge(ctx, charge("refunded", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}
	if refunded, err = svc.Refund(ctx, refunded.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Charge(ctx, charge("declined", payments.TestCardDeclined)); err == nil {
		t.Fatal("declined card was charged")
	}
	before := listCharges(t, store)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening runs the migrations again (a no-op at the same version)
	// and must keep every charge exactly, timestamps included.
	store, err = payments.OpenStore(ctx, path, noop.NewTracerProvider())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer store.Close()
	after := listCharges(t, store)
	if len(after) != 3 || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("after reopen:\n%+v\nwant\n%+v", after, before)
	}
	svc = payments.NewService(store, payments.Options{})
	if got, err := svc.GetCharge(ctx, refunded.ID); err != nil || fmt.Sprint(got) != fmt.Sprint(refunded) {
		t.Errorf("GetCharge(refunded) = %+v, %v; want %+v", got, err, refunded)
	}
	// Idempotency outlives the process: the order is not charged again.
	if again, err := svc.Charge(ctx, charge("paid", payments.TestCardApproved)); err != nil || again.ID != paid.ID {
		t.Errorf("charge after reopen = %+v, %v; want the first charge %s", again, err, paid.ID)
	}
	if n := len(listCharges(t, store)); n != 3 {
		t.Errorf("%d charges after the replay, want 3", n)
	}
	if err := store.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestCreateChargeKeepsTheFirstChargeOfAnOrder(t *testing.T) {
	testenv.OnEachBackend(t, testCreateChargeKeepsTheFirstChargeOfAnOrder)
}

func testCreateChargeKeepsTheFirstChargeOfAnOrder(t *testing.T, b testenv.Backend) {
	store := openStore(t, b)
	ctx := context.Background()
	at := time.UnixMilli(1_700_000_000_000).UTC()
	first := payments.Charge{ID: "ch_1", OrderID: "o1", AmountCents: 100, Currency: "EUR", Status: payments.Succeeded, CardLast4: "4242", CreatedAt: at}
	second := payments.Charge{ID: "ch_2", OrderID: "o1", AmountCents: 500, Currency: "USD", Status: payments.Declined, CardLast4: "0002", CreatedAt: at.Add(time.Second)}

	stored, created, err := store.CreateCharge(ctx, first)
	if err != nil || !created || fmt.Sprint(stored) != fmt.Sprint(first) {
		t.Fatalf("first CreateCharge = %+v, %v, %v; want %+v created", stored, created, err, first)
	}
	stored, created, err = store.CreateCharge(ctx, second)
	if err != nil || created || fmt.Sprint(stored) != fmt.Sprint(first) {
		t.Fatalf("second CreateCharge = %+v, %v, %v; want the first charge, not created", stored, created, err)
	}
	if all := listCharges(t, store); len(all) != 1 {
		t.Errorf("stored %+v, want only the first charge", all)
	}
}

// twoReplicas is two replicas of the service in one process on one
// PostgreSQL database, each with its own store and connection pool, as two
// processes would be: the TestTwoStores tests, fast proofs of the store.
// TestTwoProcessesChargeAnOrderOnceOnPostgreSQL runs the binary twice.
func twoReplicas(t *testing.T) ([2]payments.Service, [2]*payments.Store) {
	t.Helper()
	ctx := context.Background()
	url := testenv.Postgres.NewDatabase(t)
	var (
		replicas [2]payments.Service
		stores   [2]*payments.Store
	)
	for i := range replicas {
		store, err := payments.OpenStore(ctx, url, noop.NewTracerProvider()) // the second finds the schema migrated
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		stores[i], replicas[i] = store, payments.NewService(store, payments.Options{})
	}
	return replicas, stores
}

// TestTwoStoresChargeAnOrderOnceOnPostgreSQL is a checkout whose retries
// reach both replicas at once: 20 Charge calls for one order must all
// answer with the same charge, and only one row may exist.
func TestTwoStoresChargeAnOrderOnceOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	replicas, stores := twoReplicas(t)

	const callers = 20
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		ids        = map[string]int{}
		perReplica [2]int
		unexpected []error
		start      = make(chan struct{})
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			replica := i % 2
			c, err := replicas[replica].Charge(ctx, charge("contended", payments.TestCardApproved))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unexpected = append(unexpected, err)
				return
			}
			ids[c.ID]++
			perReplica[replica]++
		})
	}
	close(start)
	wg.Wait()
	all := listCharges(t, stores[1])
	t.Logf("%d charges of one order over 2 replicas: %d answered (%d on replica 0, %d on replica 1), %d distinct charge IDs, %d rows stored, %d errors",
		callers, perReplica[0]+perReplica[1], perReplica[0], perReplica[1], len(ids), len(all), len(unexpected))
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if len(ids) != 1 {
		t.Errorf("callers saw charges %v, want one charge ID for all %d", ids, callers)
	}
	if len(all) != 1 || ids[all[0].ID] != callers {
		t.Errorf("stored %+v, want the one charge every caller saw", all)
	}
}

// TestTwoStoresVoidOrChargeButNeverBothOnPostgreSQL is the saga's
// compensation racing a charge still in flight, on the other replica:
// for each order either the charge is made and Void hands it back, or
// the order is voided and the charge refused (charge_voided) — never a
// charge for an order that Void reported voided.
func TestTwoStoresVoidOrChargeButNeverBothOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	replicas, stores := twoReplicas(t)

	const orders = 20
	type outcome struct {
		charge    payments.Charge
		chargeErr error
		void      payments.Charge
		voidErr   error
	}
	var (
		wg       sync.WaitGroup
		outcomes [orders]outcome
		start    = make(chan struct{})
	)
	for i := range orders {
		order := fmt.Sprintf("order-%d", i)
		wg.Go(func() {
			<-start
			outcomes[i].charge, outcomes[i].chargeErr = replicas[i%2].Charge(ctx, charge(order, payments.TestCardApproved))
		})
		wg.Go(func() {
			<-start
			outcomes[i].void, outcomes[i].voidErr = replicas[(i+1)%2].Void(ctx, order)
		})
	}
	close(start)
	wg.Wait()

	stored := map[string]payments.Charge{}
	for _, c := range listCharges(t, stores[0]) {
		stored[c.OrderID] = c
	}
	var charged, voided int
	for i, o := range outcomes {
		order := fmt.Sprintf("order-%d", i)
		if o.voidErr != nil {
			t.Errorf("%s: Void: %v", order, o.voidErr)
			continue
		}
		switch {
		case o.chargeErr == nil && o.void.ID == o.charge.ID && o.void.Status == payments.Succeeded && stored[order].ID == o.charge.ID:
			charged++
		case errs.CodeOf(o.chargeErr) == payments.CodeChargeVoided && o.void.Status == payments.Voided && o.void.ID == "" && stored[order].ID == "":
			voided++
		default:
			t.Errorf("%s: Charge = %+v, %v; Void = %+v; stored %+v; want charged and handed back by Void, or voided and refused",
				order, o.charge, o.chargeErr, o.void, stored[order])
		}
	}
	t.Logf("%d orders, each charged on one replica while voided on the other: %d charged first (Void handed the charge back), %d voided first (the charge refused), %d charges stored",
		orders, charged, voided, len(stored))
	if charged+voided != orders || len(stored) != charged {
		t.Errorf("%d charged + %d voided of %d orders, %d charges stored; want every order one way or the other, and a charge only for the charged", charged, voided, orders, len(stored))
	}
}

// TestTwoStoresRefundOnceWhileChargesReplayOnPostgreSQL is a refund
// retried on both replicas while the checkout's Charge is replayed on
// both: every refund answers with the same refund (one refunded_at),
// every replay with the order's one charge, succeeded or refunded.
func TestTwoStoresRefundOnceWhileChargesReplayOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	replicas, stores := twoReplicas(t)
	first, err := replicas[0].Charge(ctx, charge("refunded", payments.TestCardApproved))
	if err != nil {
		t.Fatal(err)
	}

	const callers = 20 // half refund, half replay the charge
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		refunds     = map[string]int{} // by the refund as printed
		replays     = map[payments.ChargeStatus]int{}
		replayedIDs = map[string]int{}
		unexpected  []error
		start       = make(chan struct{})
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			replica := replicas[i%2]
			if i%4 < 2 {
				c, err := replica.Refund(ctx, first.ID)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					unexpected = append(unexpected, err)
					return
				}
				refunds[fmt.Sprint(c)]++
				return
			}
			c, err := replica.Charge(ctx, charge("refunded", payments.TestCardApproved))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unexpected = append(unexpected, err)
				return
			}
			replays[c.Status]++
			replayedIDs[c.ID]++
		})
	}
	close(start)
	wg.Wait()
	all := listCharges(t, stores[1])
	t.Logf("%d calls over 2 replicas on one charge: %d distinct refunds answered, replays saw %v, %d rows stored, %d errors",
		callers, len(refunds), replays, len(all), len(unexpected))
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if len(refunds) != 1 {
		t.Errorf("refunds answered %v, want one refund for all", refunds)
	}
	if len(replayedIDs) != 1 || replayedIDs[first.ID] == 0 || replays[payments.Succeeded]+replays[payments.Refunded] != callers/2 {
		t.Errorf("replays saw charges %v with statuses %v, want %s, succeeded or refunded", replayedIDs, replays, first.ID)
	}
	if len(all) != 1 || all[0].Status != payments.Refunded {
		t.Fatalf("stored %+v, want the one charge, refunded", all)
	}
	for refund := range refunds {
		if refund != fmt.Sprint(all[0]) {
			t.Errorf("refund answered %s, stored %+v; want the same", refund, all[0])
		}
	}
}
