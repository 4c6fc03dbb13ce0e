package gateway

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/recommendations"
)

// Recommendations is the public answer of GET
// /api/products/{sku}/recommendations: the products bought with SKU,
// each with its catalogue entry. Fallback says the recommendations
// service did not answer in time (down, slow, or its breaker open), and
// the list is the catalogue's own order instead.
type Recommendations struct {
	SKU             string               `json:"sku"`
	Recommendations []RecommendedProduct `json:"recommendations"`
	Fallback        bool                 `json:"fallback"`
}

// RecommendedProduct is a product and, unless in a fallback, how many
// customers bought it with the product asked about.
type RecommendedProduct struct {
	inventory.Product
	Customers int `json:"customers,omitempty"`
}

// CatalogueTTL is how long the gateway trusts the catalogue it last read
// (every GET /api/products refreshes it) before a recommendation reads it
// again. When inventory cannot be reached, the last one read is used
// however old, and tried again a TTL later.
const CatalogueTTL = 10 * time.Second

// GetRecommendations answers in every case but a bad request or a product
// the catalogue does not have (404 unknown_product): whatever the
// recommendations service does, the answer is a 200, a fallback if need
// be. The call to it has its own short budget (the client's settings,
// -recommendations-attempt-timeout, 100ms by default).
func (g gateway) GetRecommendations(ctx context.Context, sku, limit string) (Recommendations, error) {
	if err := g.check(ident.SKU, sku); err != nil {
		return Recommendations{}, err
	}
	n, err := recommendations.ParseLimit(limit)
	if err != nil {
		return Recommendations{}, err
	}
	products, known := g.catalogue.read(ctx, g.Inventory)
	if known && !slices.ContainsFunc(products, func(p inventory.Product) bool { return p.SKU == sku }) {
		return Recommendations{}, errs.E(errs.NotFound, inventory.CodeUnknownProduct, "no product with sku %s", ident.Quote(sku))
	}
	answer := Recommendations{SKU: sku, Recommendations: []RecommendedProduct{}}
	recs, err := g.Recommendations.GetRecommendations(ctx, sku, n)
	if err != nil && !g.fallback {
		return Recommendations{}, err
	}
	if err != nil {
		answer.Fallback = true
		for _, p := range products {
			if p.SKU != sku && len(answer.Recommendations) < n {
				answer.Recommendations = append(answer.Recommendations, RecommendedProduct{Product: p})
			}
		}
		return answer, nil
	}
	for _, r := range recs.Recommendations {
		i := slices.IndexFunc(products, func(p inventory.Product) bool { return p.SKU == r.SKU })
		switch {
		case i >= 0:
			answer.Recommendations = append(answer.Recommendations, RecommendedProduct{Product: products[i], Customers: r.Customers})
		case !known: // no catalogue to describe it with
			answer.Recommendations = append(answer.Recommendations, RecommendedProduct{Product: inventory.Product{SKU: r.SKU}, Customers: r.Customers})
		}
		// A product the catalogue no longer has is not recommended.
	}
	return answer, nil
}

// catalogueReadTimeout bounds a recommendation's read of the catalogue:
// a slow inventory must not make the endpoint slow, as the catalogue
// read before serves meanwhile.
const catalogueReadTimeout = time.Second

// catalogue is the last product list the gateway read from inventory.
type catalogue struct {
	mu       sync.Mutex
	products []inventory.Product
	// tried is when the catalogue was last read, or a read began.
	tried time.Time
}

func (c *catalogue) store(products []inventory.Product) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.products, c.tried = products, time.Now()
}

// read returns the catalogue, and whether there is one at all. Once every
// CatalogueTTL one call reads it again from inv, within
// catalogueReadTimeout; the calls meanwhile, and those after a failed
// read, use the one read before. So inventory down costs one call per
// TTL, not one per request.
func (c *catalogue) read(ctx context.Context, inv inventory.Service) ([]inventory.Product, bool) {
	c.mu.Lock()
	products, due := c.products, time.Since(c.tried) >= CatalogueTTL
	if due {
		c.tried = time.Now()
	}
	c.mu.Unlock()
	if !due {
		return products, products != nil
	}
	ctx, cancel := context.WithTimeout(ctx, catalogueReadTimeout)
	defer cancel()
	latest, err := inv.ListProducts(ctx)
	if err != nil {
		return products, products != nil
	}
	c.store(latest)
	return latest, true
}
