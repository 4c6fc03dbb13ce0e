package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/prometheus/client_golang/prometheus"
)

var testCatalogue = []inventory.Product{
	{SKU: "MUG-01", Name: "Mug"}, {SKU: "TEE-02", Name: "Tee"}, {SKU: "CAP-03", Name: "Cap"}, {SKU: "PEN-04", Name: "Pen"},
}

// catalogueInventory answers the catalogue, or fails when down is set.
type catalogueInventory struct {
	inventory.Service
	down  atomic.Bool
	calls atomic.Int32
}

func (c *catalogueInventory) ListProducts(context.Context) ([]inventory.Product, error) {
	c.calls.Add(1)
	if c.down.Load() {
		return nil, errs.E(errs.Unavailable, "", "inventory is down")
	}
	return testCatalogue, nil
}

// fixedRecommendations answers recs, or err when set.
type fixedRecommendations struct {
	recs  []recommendations.Recommendation
	err   error
	calls atomic.Int32
}

func (f *fixedRecommendations) GetRecommendations(_ context.Context, sku string, limit int) (recommendations.Recommendations, error) {
	f.calls.Add(1)
	if f.err != nil {
		return recommendations.Recommendations{}, f.err
	}
	return recommendations.Recommendations{SKU: sku, Recommendations: f.recs[:min(limit, len(f.recs))]}, nil
}

func recommendationsHandler(inv inventory.Service, recs recommendations.Service) func(path string) (*httptest.ResponseRecorder, Recommendations) {
	limits := Limits{Client: NewRateLimiter(0, 0, prometheus.NewRegistry())}
	h := NewHandler(NewService(Backends{Inventory: inv, Recommendations: recs}, Options{}), noMiddleware, testAuth, limits, "")
	return func(path string) (*httptest.ResponseRecorder, Recommendations) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		var answer Recommendations
		if rec.Code == http.StatusOK {
			_ = json.Unmarshal(rec.Body.Bytes(), &answer)
		}
		return rec, answer
	}
}

func skus(answer Recommendations) []string {
	var out []string
	for _, p := range answer.Recommendations {
		out = append(out, p.SKU)
	}
	return out
}

func TestRecommendationsAreDescribedFromTheCatalogue(t *testing.T) {
	recs := &fixedRecommendations{recs: []recommendations.Recommendation{{SKU: "TEE-02", Customers: 3}, {SKU: "GONE-99", Customers: 2}, {SKU: "CAP-03", Customers: 1}}}
	get := recommendationsHandler(&catalogueInventory{}, recs)
	rec, answer := get("/api/products/MUG-01/recommendations")
	if rec.Code != http.StatusOK || answer.Fallback || answer.SKU != "MUG-01" {
		t.Fatalf("GET = %d %s; want 200, not a fallback", rec.Code, rec.Body)
	}
	// A product the catalogue no longer has is left out.
	want := []RecommendedProduct{{Product: testCatalogue[1], Customers: 3}, {Product: testCatalogue[2], Customers: 1}}
	if len(answer.Recommendations) != 2 || answer.Recommendations[0] != want[0] || answer.Recommendations[1] != want[1] {
		t.Errorf("recommendations = %+v, want %+v", answer.Recommendations, want)
	}
	if _, answer := get("/api/products/MUG-01/recommendations?limit=1"); len(answer.Recommendations) != 1 {
		t.Errorf("limit=1 answered %v", skus(answer))
	}
}

// Netflix's fallback: whatever recommendations does, the answer is a 200,
// marked, from the catalogue.
func TestRecommendationsFallBackToTheCatalogue(t *testing.T) {
	inv := &catalogueInventory{}
	recs := &fixedRecommendations{err: errs.E(errs.Unavailable, "", "recommendations: no instance answered")}
	get := recommendationsHandler(inv, recs)
	rec, answer := get("/api/products/TEE-02/recommendations?limit=2")
	if rec.Code != http.StatusOK || !answer.Fallback {
		t.Fatalf("GET with recommendations down = %d %s; want 200 and a fallback", rec.Code, rec.Body)
	}
	if got := skus(answer); len(got) != 2 || got[0] != "MUG-01" || got[1] != "CAP-03" {
		t.Errorf("fallback = %v, want the catalogue's first two but TEE-02 itself", got)
	}
	var raw map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &raw)
	if raw["fallback"] != true {
		t.Errorf(`body %s lacks "fallback": true`, rec.Body)
	}

	// inventory down too: the catalogue read last still serves, and no
	// error reaches the client.
	inv.down.Store(true)
	calls := inv.calls.Load()
	if rec, answer := get("/api/products/TEE-02/recommendations"); rec.Code != http.StatusOK || !answer.Fallback || len(answer.Recommendations) != 3 {
		t.Errorf("GET with both down = %d %s; want 200, the remembered catalogue", rec.Code, rec.Body)
	}
	if inv.calls.Load() != calls {
		t.Errorf("the catalogue was read again within %s", CatalogueTTL)
	}
}

func TestRecommendationsWithNoCatalogueAtAll(t *testing.T) {
	inv := &catalogueInventory{}
	inv.down.Store(true)
	recs := &fixedRecommendations{recs: []recommendations.Recommendation{{SKU: "TEE-02", Customers: 1}}}
	get := recommendationsHandler(inv, recs)
	// Nothing to check the product against: recommendations answers alone.
	if rec, answer := get("/api/products/MUG-01/recommendations"); rec.Code != http.StatusOK || answer.Fallback || len(answer.Recommendations) != 1 {
		t.Errorf("GET = %d %s; want 200 with recommendations' own answer", rec.Code, rec.Body)
	}
	recs.err = errs.E(errs.Unavailable, "", "down")
	if rec, answer := get("/api/products/MUG-01/recommendations"); rec.Code != http.StatusOK || !answer.Fallback || answer.Recommendations == nil {
		t.Errorf("GET with everything down = %d %s; want 200, an empty fallback", rec.Code, rec.Body)
	}
	// A failed read is not tried again by every request: inventory down
	// costs one call per CatalogueTTL.
	if n := inv.calls.Load(); n != 1 {
		t.Errorf("inventory was asked for the catalogue %d times in two requests, want once", n)
	}
}

func TestRecommendationsRefuseBadRequestsBeforeAnyCall(t *testing.T) {
	recs := &fixedRecommendations{}
	get := recommendationsHandler(&catalogueInventory{}, recs)
	for path, want := range map[string]struct {
		status int
		code   string
	}{
		"/api/products/NOPE-00/recommendations":         {http.StatusNotFound, inventory.CodeUnknownProduct},
		"/api/products/MUG-01/recommendations?limit=0":  {http.StatusBadRequest, recommendations.CodeInvalidLimit},
		"/api/products/MUG-01/recommendations?limit=x":  {http.StatusBadRequest, recommendations.CodeInvalidLimit},
		"/api/products/bad%20sku/recommendations":       {http.StatusBadRequest, "invalid_sku"},
		"/api/products/MUG-01/recommendations?limit=51": {http.StatusBadRequest, recommendations.CodeInvalidLimit},
	} {
		rec, _ := get(path)
		var p transport.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != want.status || p.Code != want.code {
			t.Errorf("GET %s = %d %s; want %d %s", path, rec.Code, rec.Body, want.status, want.code)
		}
	}
	if n := recs.calls.Load(); n != 0 {
		t.Errorf("recommendations was called %d times for requests refused at the edge", n)
	}
}

// The chaos switch: without the fallback, recommendations' failure is
// the client's.
func TestRecommendationsWithoutTheFallbackFail(t *testing.T) {
	limits := Limits{Client: NewRateLimiter(0, 0, prometheus.NewRegistry())}
	recs := &fixedRecommendations{err: errs.E(errs.Unavailable, "", "recommendations: no instance answered")}
	h := NewHandler(NewService(Backends{Inventory: &catalogueInventory{}, Recommendations: recs}, Options{NoRecommendationFallback: true}), noMiddleware, testAuth, limits, "")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/products/MUG-01/recommendations", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("GET with the fallback off and recommendations down = %d %s; want 503", rec.Code, rec.Body)
	}
}
