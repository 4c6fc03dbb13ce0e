package payments_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestTwoProcessesChargeAnOrderOnceOnPostgreSQL is the race of
// TestTwoStoresChargeAnOrderOnceOnPostgreSQL between two payments
// processes, the service binary started twice on one PostgreSQL
// database: a checkout whose retries reach both replicas at once, 20
// Charge calls over HTTP for one order, alternating between the replicas.
// One charge row may exist, and every caller must be answered with it.
func TestTwoProcessesChargeAnOrderOnceOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	url := testenv.Postgres.NewDatabase(t)
	consul := testenv.StartConsul(t)
	replicas := testenv.StartReplicas(t, "payments", 2,
		"DATABASE_URL="+url, "CONSUL_HTTP_ADDR="+consul.Addr, "OTEL_SDK_DISABLED=true")
	consul.WaitPassing(payments.ServiceName, 2, 15*time.Second)
	tel := testenv.Telemetry(t, "orders")
	var clients [2]payments.Service
	for i, r := range replicas {
		// The 20 calls queue on the order's lock: the race is about
		// what each is answered, not how fast the queue drains.
		clients[i] = payments.NewClient(testenv.DirectWithin(t, r.URL, tel, 30*time.Second))
	}

	const callers = 20
	var (
		mu         sync.Mutex
		answers    = map[string]int{} // the charge as answered → callers
		ids        = map[string]int{}
		perReplica [2]int
		unexpected []error
	)
	began := time.Now()
	testenv.AtOnce(callers, func(i int) {
		replica := i % 2
		c, err := clients[replica].Charge(ctx, charge("contended", payments.TestCardApproved))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			unexpected = append(unexpected, err)
			return
		}
		answers[fmt.Sprint(c)]++
		ids[c.ID]++
		perReplica[replica]++
	})
	store := testenv.OpenStoreAt(t, url, payments.OpenStore, noop.NewTracerProvider())
	all := listCharges(t, store)
	t.Logf("%d charges of one order over 2 payments processes (%s): %d answered (%d on replica 0, %d on replica 1), %d distinct charge IDs, %d rows stored, %d errors",
		callers, time.Since(began).Round(time.Millisecond), perReplica[0]+perReplica[1], perReplica[0], perReplica[1], len(ids), len(all), len(unexpected))
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if len(answers) != 1 || len(ids) != 1 {
		t.Errorf("callers were answered with %v; want one charge for all %d", answers, callers)
	}
	if len(all) != 1 || ids[all[0].ID] != callers || all[0].Status != payments.Succeeded {
		t.Fatalf("stored %+v, want the one succeeded charge every caller saw", all)
	}
	// Either replica finds the order's one charge, whichever made it.
	for i, c := range clients {
		if got, err := c.FindCharge(ctx, "contended"); err != nil || got.ID != all[0].ID {
			t.Errorf("replica %d finds %+v, %v; want %s", i, got, err, all[0].ID)
		}
	}
}
