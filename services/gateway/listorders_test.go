package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/prometheus/client_golang/prometheus"
)

// pagingOrders is an orders backend that records the pages asked of it
// and answers one page with a next cursor.
type pagingOrders struct {
	orders.Service
	mu    sync.Mutex
	pages []orders.Page
}

func (p *pagingOrders) ListOrders(_ context.Context, userID string, page orders.Page) (orders.OrderPage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pages = append(p.pages, page)
	return orders.OrderPage{Orders: []orders.Order{{ID: "ord_2", UserID: userID}}, NextCursor: "next"}, nil
}

func TestListOrdersPassesThePageThroughAndRefusesBadOnes(t *testing.T) {
	backend := &pagingOrders{}
	limits := Limits{Client: NewRateLimiter(0, 0, prometheus.NewRegistry())}
	h := NewHandler(NewService(Backends{Orders: backend}, Options{}), noMiddleware, testAuth, limits, "")
	get := func(query string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/api/orders"+query, nil)
		r.Header.Set("Authorization", "Bearer "+goodToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}

	rec := get("")
	var page orders.ListOrdersResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &page); rec.Code != http.StatusOK || err != nil || len(page.Orders) != 1 || page.NextCursor != "next" {
		t.Fatalf("GET /api/orders = %d %s; want 200 with the orders and next_cursor", rec.Code, rec.Body)
	}
	// A cursor as orders issues it: opaque to the gateway, but well-formed.
	const cursor = "MTcwMDAwMDAwMDAwMDpvcmRfMQ" // base64url("1700000000000:ord_1")
	if rec := get("?limit=2&cursor=" + cursor); rec.Code != http.StatusOK {
		t.Fatalf("a page with limit and cursor = %d %s", rec.Code, rec.Body)
	}
	for _, tt := range []struct{ query, code string }{
		{"?limit=101", orders.CodeInvalidLimit},
		{"?limit=0", orders.CodeInvalidLimit},
		{"?limit=lots", orders.CodeInvalidLimit},
		{"?cursor=not%20a%20cursor", orders.CodeInvalidCursor},
	} {
		rec := get(tt.query)
		var p transport.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != http.StatusBadRequest || p.Code != tt.code {
			t.Errorf("GET /api/orders%s = %d %s; want 400 %s", tt.query, rec.Code, rec.Body, tt.code)
		}
	}
	backend.mu.Lock()
	defer backend.mu.Unlock()
	want := []orders.Page{{}, {Limit: 2, Cursor: cursor}}
	if len(backend.pages) != len(want) || backend.pages[0] != want[0] || backend.pages[1] != want[1] {
		t.Errorf("orders was asked for %+v; want %+v (and nothing for the refused pages)", backend.pages, want)
	}
}
