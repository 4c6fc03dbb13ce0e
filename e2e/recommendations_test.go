package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/gateway"
	"github.com/glasshouse-dev/glasshouse/services/orders"
)

// recommended reads GET /api/products/{sku}/recommendations, which must
// answer 200 whatever recommendations does.
func (s *shop) recommended(sku string) gateway.Recommendations {
	s.t.Helper()
	r := s.call("GET", "/api/products/"+sku+"/recommendations", "", nil)
	if r.status != 200 {
		s.t.Fatalf("recommendations for %s: %d %s; want 200, a fallback at worst", sku, r.status, r.body)
	}
	var answer gateway.Recommendations
	r.decode(s.t, &answer)
	return answer
}

func describe(a gateway.Recommendations) string {
	var parts []string
	for _, p := range a.Recommendations {
		parts = append(parts, fmt.Sprintf("%s×%d", p.SKU, p.Customers))
	}
	return fmt.Sprintf("fallback=%v [%s]", a.Fallback, strings.Join(parts, " "))
}

// TestRecommendationsLearnFromCheckoutsAndDegrade: checkouts reach
// recommendations through the outbox, NATS and its consumer, and the
// gateway answers "customers who bought X also bought Y". With
// recommendations killed, the same endpoint answers the catalogue,
// marked as a fallback, while products and checkouts carry on; restarted,
// it catches up with what it missed.
func TestRecommendationsLearnFromCheckoutsAndDegrade(t *testing.T) {
	s := startShop(t)
	ada, bob := s.signUp("ada@example.com"), s.signUp("bob@example.com")
	for _, o := range []struct {
		token, key string
		skus       []string
	}{
		{ada, "ada-1", []string{"GH-MUG-01", "GH-TEE-01"}},
		{bob, "bob-1", []string{"GH-MUG-01"}},
		{bob, "bob-2", []string{"GH-TEE-01", "GH-CAP-01"}}, // pairs with bob's mug
	} {
		var items []orders.Item
		for _, sku := range o.skus {
			items = append(items, orders.Item{SKU: sku, Quantity: 1})
		}
		if r := s.order(o.token, o.key, approveCard, items...); r.status != 201 {
			t.Fatalf("checkout %s: %d %s", o.key, r.status, r.body)
		}
	}
	testenv.Eventually(t, 20*time.Second, "the mug's recommendations learnt from the three checkouts", func() error {
		got := s.recommended("GH-MUG-01")
		if got.Fallback || describe(got) != "fallback=false [GH-TEE-01×2 GH-CAP-01×1]" {
			return fmt.Errorf("GH-MUG-01: %s; want the tee (2 customers), then the cap (1)", describe(got))
		}
		if got.Recommendations[0].Name == "" || got.Recommendations[0].PriceCents == 0 {
			return fmt.Errorf("GH-MUG-01: %+v lacks the catalogue's description", got.Recommendations[0])
		}
		return nil
	})

	// recommendations hangs (SIGSTOP: registered, passing until its check
	// times out, but silent): the gateway stops waiting after its budget.
	if err := s.recommendations.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		start := time.Now()
		if got := s.recommended("GH-MUG-01"); !got.Fallback {
			t.Errorf("with recommendations hung, answer %d is not a fallback: %s", i, describe(got))
		}
		t.Logf("MEASURED fallback answer %d with recommendations hung: %s", i, time.Since(start).Round(time.Millisecond))
	}
	if err := s.recommendations.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	// recommendations dies: the endpoint falls back, nothing else notices.
	s.recommendations.Kill()
	got := s.recommended("GH-MUG-01")
	if !got.Fallback || len(got.Recommendations) == 0 || slices.ContainsFunc(got.Recommendations, func(p gateway.RecommendedProduct) bool { return p.SKU == "GH-MUG-01" }) {
		t.Errorf("with recommendations killed: %s; want a fallback of other products", describe(got))
	}
	for i := range 5 {
		start := time.Now()
		if got := s.recommended("GH-TEE-01"); !got.Fallback {
			t.Errorf("with recommendations killed, answer %d is not a fallback: %s", i, describe(got))
		}
		t.Logf("MEASURED fallback answer %d with recommendations killed: %s", i, time.Since(start).Round(time.Millisecond))
	}
	if r := s.call("GET", "/api/products", "", nil); r.status != 200 {
		t.Errorf("GET /api/products with recommendations killed: %d %s", r.status, r.body)
	}
	if r := s.order(ada, "ada-2", approveCard, orders.Item{SKU: "GH-CAP-01", Quantity: 1}); r.status != 201 {
		t.Fatalf("checkout with recommendations killed: %d %s", r.status, r.body)
	}

	// Restarted on its store, it learns the checkout it missed.
	s.recommendations = testenv.StartService(t, "recommendations", s.env("recommendations")...)
	s.consul.WaitServing("recommendations", 1, 20*time.Second)
	testenv.Eventually(t, 30*time.Second, "the checkout made while recommendations was down learnt", func() error {
		if got := s.recommended("GH-MUG-01"); describe(got) != "fallback=false [GH-CAP-01×2 GH-TEE-01×2]" {
			return fmt.Errorf("GH-MUG-01: %s; want the cap and the tee, 2 customers each", describe(got))
		}
		return nil
	})
	if r := s.call("GET", "/api/products/GH-NONE-01/recommendations", "", nil); r.status != 404 {
		t.Errorf("recommendations for an unknown product: %d %s; want 404", r.status, r.body)
	}
	s.checkInvariants()
}
