package inventory_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/transport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// newServer serves a real inventory (a real database on backend b, full
// HTTP stack) on a loopback port.
func newServer(t testing.TB, b testenv.Backend, rec sdktrace.SpanProcessor) (*httptest.Server, *inventory.Store) {
	t.Helper()
	tel := testenv.Telemetry(t, inventory.ServiceName, testenv.RecordSpans(rec))
	store := openTracedStore(t, b, tel.TracerProvider)
	svc := inventory.Instrumenting(tel.Registry)(inventory.NewService(store, inventory.Options{}))
	health := observability.NewHealth()
	health.AddCheck("store", store.Ping)
	handler := transport.Handler(tel, health, inventory.API.Server(svc, tel.ServerEndpoint), transport.ServerConfig{MaxBodyBytes: 4 << 10})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv, store
}

func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	srv, store := newServer(t, testenv.SQLite, nil)
	before, err := store.StockLedger(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
		detail                   string // a fragment the detail must contain
	}{
		{"malformed JSON", "POST", "/reservations", `{"order_id": "o1", "items": [`, 400, "malformed_json", "ends in the middle"},
		{"syntax error", "POST", "/reservations", `{"order_id": o1}`, 400, "malformed_json", "byte"},
		{"empty body", "POST", "/reservations", ``, 400, "malformed_json", "empty"},
		{"not an object", "POST", "/reservations", `[1,2]`, 400, "malformed_json", "JSON object"},
		{"two values", "POST", "/reservations", `{"order_id":"o1","items":[{"sku":"A","quantity":1}]} {}`, 400, "malformed_json", "single JSON value"},
		{"unknown field", "POST", "/reservations", `{"order_id":"o1","items":[{"sku":"A","quantity":1}],"coupon":"FREE"}`, 400, "unknown_field", `"coupon"`},
		{"wrong type", "POST", "/reservations", `{"order_id":"o1","items":[{"sku":"A","quantity":"two"}]}`, 400, "invalid_field", "items.quantity"},
		{"missing order id", "POST", "/reservations", `{"items":[{"sku":"A","quantity":1}]}`, 400, inventory.CodeInvalidOrderID, "order_id"},
		{"missing items", "POST", "/reservations", `{"order_id":"o1"}`, 400, inventory.CodeInvalidItems, "at least one"},
		{"zero quantity", "POST", "/reservations", `{"order_id":"o1","items":[{"sku":"A","quantity":0}]}`, 400, inventory.CodeInvalidItems, "items[0].quantity"},
		{"negative quantity", "POST", "/reservations", `{"order_id":"o1","items":[{"sku":"A","quantity":-1}]}`, 400, inventory.CodeInvalidItems, "positive"},
		{"unknown sku", "POST", "/reservations", `{"order_id":"o1","items":[{"sku":"A","quantity":1},{"sku":"ZZZ","quantity":1}]}`, 404, inventory.CodeUnknownProduct, `"ZZZ"`},
		{"out of stock", "POST", "/reservations", `{"order_id":"o1","items":[{"sku":"A","quantity":1},{"sku":"B","quantity":6}]}`, 409, inventory.CodeOutOfStock, "sku B"},
		{"oversized body", "POST", "/reservations", `{"order_id":"` + strings.Repeat("x", 5<<10) + `"}`, 413, "body_too_large", "4096 bytes"},
		{"unknown product", "GET", "/products/NOPE", ``, 404, inventory.CodeUnknownProduct, "NOPE"},
		{"commit unknown", "POST", "/reservations/nope/commit", ``, 404, inventory.CodeReservationNotFound, "nope"},
		{"unknown route", "GET", "/warehouses", ``, 404, "no_route", "/warehouses"},
		{"wrong method", "PUT", "/products", ``, 405, "method_not_allowed", "allowed: GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != transport.ProblemContentType {
				t.Errorf("Content-Type = %q, want %q", ct, transport.ProblemContentType)
			}
			var p transport.Problem
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatalf("decode problem: %v", err)
			}
			if p.Code != tt.code || p.Status != tt.status || !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("problem = %+v, want code %q, status %d, detail containing %q", p, tt.code, tt.status, tt.detail)
			}
			if p.Type == "" || p.Title == "" || len(p.TraceID) != 32 {
				t.Errorf("problem = %+v, want type, title and a 32-hex trace_id", p)
			}
			if p.TraceID != resp.Header.Get(transport.TraceIDHeader) {
				t.Errorf("trace_id %q differs from %s header %q", p.TraceID, transport.TraceIDHeader, resp.Header.Get(transport.TraceIDHeader))
			}
		})
	}

	after, err := store.StockLedger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("bad requests changed the store:\nbefore %v\nafter  %v", before, after)
	}
}

func TestClientRoundTripKeepsTypedErrors(t *testing.T) {
	srv, store := newServer(t, testenv.SQLite, nil)
	client := inventory.NewClient(testenv.Direct(t, srv.URL, testenv.Telemetry(t, "orders")))
	ctx := context.Background()

	products, err := client.ListProducts(ctx)
	if err != nil || len(products) != len(testCatalogue) {
		t.Fatalf("ListProducts = %d products, %v", len(products), err)
	}
	p, err := client.GetProduct(ctx, "B")
	if err != nil || p.Name != "Banana" || p.PriceCents != 250 || p.Available != 5 {
		t.Fatalf("GetProduct(B) = %+v, %v", p, err)
	}
	// An order ID outside the identifier grammar (here a slash and spaces)
	// is refused by the service whatever the client did with the path,
	// and comes back as the same typed error.
	if _, err := client.Reserve(ctx, "order/with spaces", []inventory.Item{{SKU: "B", Quantity: 2}}); errs.CodeOf(err) != inventory.CodeInvalidOrderID {
		t.Fatalf("Reserve(order/with spaces) = %v; want invalid_order_id", err)
	}
	if _, err := client.Commit(ctx, "order/with spaces"); errs.CodeOf(err) != inventory.CodeInvalidOrderID {
		t.Fatalf("Commit(order/with spaces) = %v; want invalid_order_id", err)
	}
	r, err := client.Reserve(ctx, "ord_with-dashes_1", []inventory.Item{{SKU: "B", Quantity: 2}})
	if err != nil || r.Status != inventory.Held || r.OrderID != "ord_with-dashes_1" {
		t.Fatalf("Reserve = %+v, %v", r, err)
	}
	if r, err := client.Commit(ctx, "ord_with-dashes_1"); err != nil || r.Status != inventory.Committed {
		t.Fatalf("Commit = %+v, %v", r, err)
	}

	typed := []struct {
		name string
		call func() error
		kind errs.Kind
		code string
	}{
		{"out of stock", func() error {
			_, err := client.Reserve(ctx, "o2", []inventory.Item{{SKU: "B", Quantity: 4}})
			return err
		}, errs.Conflict, inventory.CodeOutOfStock},
		{"unknown product", func() error { _, err := client.GetProduct(ctx, "NOPE"); return err }, errs.NotFound, inventory.CodeUnknownProduct},
		{"invalid", func() error { _, err := client.Reserve(ctx, "o3", nil); return err }, errs.Invalid, inventory.CodeInvalidItems},
		{"committed", func() error { _, err := client.Release(ctx, "ord_with-dashes_1"); return err }, errs.Conflict, inventory.CodeReservationCommitted},
	}
	for _, tt := range typed {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var e *errs.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *errs.Error", err, err)
			}
			if e.Kind != tt.kind || e.Code != tt.code || e.Detail == "" {
				t.Errorf("error = %+v, want kind %v code %q with a detail", e, tt.kind, tt.code)
			}
			if !errs.IsBusiness(err) {
				t.Errorf("%v should be a business error", err)
			}
		})
	}
	assertConserved(t, store)
}

func TestHealthAndMetricsEndpoints(t *testing.T) {
	srv, _ := newServer(t, testenv.SQLite, nil)
	if _, err := http.Get(srv.URL + "/products/A"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/healthz": `"status":"ok"`,
		"/readyz":  `"store":"ok"`,
		"/metrics": `glasshouse_endpoint_request_duration_seconds_count{endpoint="GetProduct",outcome="success",service="inventory",transport="http"} 1`,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d %s; want 200 containing %s", path, resp.StatusCode, body, want)
		}
	}
}
