package recommendations_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
	"go.opentelemetry.io/otel/trace/noop"
)

func openStore(t *testing.T, b testenv.Backend) *recommendations.Store {
	return testenv.OpenStoreOn(t, b, recommendations.OpenStore, noop.NewTracerProvider())
}

func purchase(n int, user string, skus ...string) recommendations.Purchase {
	id := fmt.Sprintf("order-%d", n)
	return recommendations.Purchase{EventID: id + ".confirmed", OrderID: id, UserID: user, SKUs: skus, Sequence: uint64(n)}
}

func record(t *testing.T, s *recommendations.Store, ps ...recommendations.Purchase) {
	t.Helper()
	for _, p := range ps {
		if _, err := s.Record(context.Background(), p); err != nil {
			t.Fatalf("record %s: %v", p.EventID, err)
		}
	}
}

func recommend(t *testing.T, s *recommendations.Store, sku string) []recommendations.Recommendation {
	t.Helper()
	recs, err := s.Recommend(context.Background(), sku, recommendations.MaxLimit)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

type rec = recommendations.Recommendation

func TestStoreCountsDistinctCustomersPerPair(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		s := openStore(t, b)
		record(t, s,
			purchase(1, "ann", "A", "B"),
			purchase(2, "bob", "A"),
			purchase(3, "bob", "C"),      // a later order pairs with the earlier one
			purchase(4, "ann", "A", "A"), // bought again: no new customer for any pair
			purchase(5, "cat", "B", "A"),
		)
		for sku, want := range map[string][]rec{
			"A": {{SKU: "B", Customers: 2}, {SKU: "C", Customers: 1}}, // most customers first
			"B": {{SKU: "A", Customers: 2}},
			"C": {{SKU: "A", Customers: 1}},
			"D": {}, // nobody bought it: none, and no error
		} {
			if got := recommend(t, s, sku); !reflect.DeepEqual(got, want) {
				t.Errorf("Recommend(%s) = %v, want %v", sku, got, want)
			}
		}
		if got, err := s.Recommend(context.Background(), "A", 1); err != nil || len(got) != 1 || got[0].SKU != "B" {
			t.Errorf("Recommend(A, limit 1) = %v, %v; want only B", got, err)
		}
		if n, err := s.ProcessedEvents(context.Background()); err != nil || n != 5 {
			t.Errorf("ProcessedEvents = %d, %v; want 5", n, err)
		}
	})
}

func TestStoreAppliesAnEventOnce(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		s := openStore(t, b)
		ctx := context.Background()
		first := purchase(1, "ann", "A", "B")
		if applied, err := s.Record(ctx, first); err != nil || !applied {
			t.Fatalf("first delivery: applied %v, %v", applied, err)
		}
		// A redelivery, even one that claims other products, changes nothing.
		again := first
		again.SKUs = []string{"C"}
		if applied, err := s.Record(ctx, again); err != nil || applied {
			t.Fatalf("redelivery: applied %v, %v; want not applied", applied, err)
		}
		record(t, s, purchase(2, "ann", "C"))
		if got, want := recommend(t, s, "C"), []rec{{SKU: "A", Customers: 1}, {SKU: "B", Customers: 1}}; !reflect.DeepEqual(got, want) {
			t.Errorf("Recommend(C) = %v, want %v", got, want)
		}
		if n, _ := s.ProcessedEvents(ctx); n != 2 {
			t.Errorf("ProcessedEvents = %d, want 2", n)
		}
	})
}

// A replay may meet the events in another order than the first run did
// (several replicas, redeliveries): the model must not depend on it.
func TestStoreReachesTheSameModelInAnyOrder(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		skus := []string{"A", "B", "C", "D", "E"}
		rng := rand.New(rand.NewPCG(1, 2))
		var ps []recommendations.Purchase
		for i := range 60 {
			items := []string{skus[rng.IntN(len(skus))], skus[rng.IntN(len(skus))]}
			ps = append(ps, purchase(i, fmt.Sprintf("user-%d", rng.IntN(8)), items...))
		}
		inOrder, shuffled := openStore(t, b), openStore(t, b)
		record(t, inOrder, ps...)
		rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		record(t, shuffled, ps...)
		for _, sku := range skus {
			if a, b := recommend(t, inOrder, sku), recommend(t, shuffled, sku); !reflect.DeepEqual(a, b) {
				t.Errorf("Recommend(%s): %v in stream order, %v shuffled", sku, a, b)
			}
		}
	})
}

// Two orders of one customer recorded at once, as two replicas do: each
// must see the other's products, or a pair goes uncounted. On PostgreSQL
// that is the customer's lock; on SQLite, the write lock.
func TestStoreRecordsOneCustomersOrdersOneAfterTheOther(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		s := openStore(t, b)
		const customers = 20
		var wg sync.WaitGroup
		errc := make(chan error, 2*customers)
		for c := range customers {
			user := fmt.Sprintf("user-%d", c)
			for i, sku := range []string{"A", "B"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := s.Record(context.Background(), purchase(2*c+i, user, sku))
					errc <- err
				}()
			}
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got, want := recommend(t, s, "A"), []rec{{SKU: "B", Customers: customers}}; !reflect.DeepEqual(got, want) {
			t.Errorf("Recommend(A) = %v, want %v", got, want)
		}
	})
}
