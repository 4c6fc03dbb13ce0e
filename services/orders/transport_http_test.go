package orders

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// serve puts the saga of w behind the real HTTP stack, checking tokens
// with a fresh key pair; it returns the server and a token for user u1.
func serve(t *testing.T, w *world) (*httptest.Server, observability.Telemetry, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := users.NewIssuer(priv, time.Hour, nil).Issue("u1")
	if err != nil {
		t.Fatal(err)
	}
	tel := testenv.Telemetry(t, ServiceName)
	handler := transport.Handler(tel, observability.NewHealth(),
		API.Server(w.saga, tel.ServerEndpoint, transport.WithAuth(users.NewVerifier(pub, nil).Verify)), transport.ServerConfig{})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv, tel, token
}

func TestBadOrderRequestsAreRejectedAndCreateNothing(t *testing.T) {
	w := newWorld(t, testenv.SQLite)
	srv, _, token := serve(t, w)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forged, _, _ := users.NewIssuer(otherKey, time.Hour, nil).Issue("u1")
	good := `{"items":[{"sku":"MUG","quantity":1}],"card_number":"4242424242424242"}`

	tests := []struct {
		name, method, path, token, key, body string
		status                               int
		code                                 string
	}{
		{"no token", "POST", "/orders", "", "k", good, 401, "missing_token"},
		{"forged token", "POST", "/orders", forged, "k", good, 401, "invalid_token"},
		{"no token to list", "GET", "/orders", "", "", "", 401, "missing_token"},
		{"no idempotency key", "POST", "/orders", token, "", good, 400, CodeMissingIdempotencyKey},
		{"malformed JSON", "POST", "/orders", token, "k", `{"items":`, 400, "malformed_json"},
		{"unknown field", "POST", "/orders", token, "k", `{"items":[{"sku":"MUG","quantity":1}],"card_number":"4242424242424242","user_id":"u2"}`, 400, "unknown_field"},
		{"zero quantity", "POST", "/orders", token, "k", `{"items":[{"sku":"MUG","quantity":0}],"card_number":"4242424242424242"}`, 400, CodeInvalidItems},
		{"card with dashes", "POST", "/orders", token, "k", `{"items":[{"sku":"MUG","quantity":1}],"card_number":"4242-4242-4242"}`, 400, CodeInvalidCard},
		{"unknown product", "POST", "/orders", token, "k", `{"items":[{"sku":"NOPE","quantity":1}],"card_number":"4242424242424242"}`, 404, "unknown_product"},
		{"unknown order", "GET", "/orders/ord_nope", token, "", "", 404, CodeOrderNotFound},
		{"dot order id", "GET", "/orders/%2E%2E", token, "", "", 400, CodeInvalidOrderID},
		{"huge order id", "GET", "/orders/" + strings.Repeat("o", 70_000), token, "", "", 400, CodeInvalidOrderID},
		{"dot sku", "POST", "/orders", token, "k", `{"items":[{"sku":"..","quantity":1}],"card_number":"4242424242424242"}`, 400, CodeInvalidSKU},
		{"one SKU over many lines", "POST", "/orders", token, "k", `{"items":[` + strings.Repeat(`{"sku":"MUG","quantity":100},`, 10) + `{"sku":"MUG","quantity":100}],"card_number":"4242424242424242"}`, 400, CodeInvalidItems},
		{"limit zero", "GET", "/orders?limit=0", token, "", "", 400, CodeInvalidLimit},
		{"limit too big", "GET", "/orders?limit=101", token, "", "", 400, CodeInvalidLimit},
		{"limit not a number", "GET", "/orders?limit=ten", token, "", "", 400, CodeInvalidLimit},
		{"cursor not base64", "GET", "/orders?cursor=%25%25%25", token, "", "", 400, CodeInvalidCursor},
		{"cursor forged", "GET", "/orders?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("1:../x")), token, "", "", 400, CodeInvalidCursor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.key != "" {
				req.Header.Set(IdempotencyKeyHeader, tt.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p transport.Problem
			json.NewDecoder(resp.Body).Decode(&p)
			if resp.StatusCode != tt.status || p.Code != tt.code {
				t.Errorf("got %d %+v; want %d %s", resp.StatusCode, p, tt.status, tt.code)
			}
		})
	}
	if counts, _ := w.store.CountByStatus(context.Background()); len(counts) != 0 {
		t.Errorf("bad requests created orders: %v", counts)
	}
	w.checkInvariants(t)
}

func TestClientRoundTripCarriesTheTokenAndTypedErrors(t *testing.T) {
	w := newWorld(t, testenv.SQLite)
	srv, tel, token := serve(t, w)
	build, err := transport.NewDirectFactory(srv.URL, tel, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	client := NewClient(build)
	ctx := transport.WithBearerToken(context.Background(), token)

	o, err := client.PlaceOrder(ctx, "ignored: the token decides", "k1", []Item{{"MUG", 2}}, approve)
	if err != nil || o.Status != Confirmed || o.UserID != "u1" || o.TotalCents != 2400 {
		t.Fatalf("PlaceOrder = %+v, %v; want u1's CONFIRMED 2400", o, err)
	}
	if got, err := client.GetOrder(ctx, "", o.ID); err != nil || got.ID != o.ID {
		t.Fatalf("GetOrder = %+v, %v", got, err)
	}
	_, err = client.PlaceOrder(ctx, "", "k2", []Item{{"TEE", 1}}, decline)
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Declined || e.Code != "card_declined" {
		t.Errorf("declined over the wire: %v; want errs.Declined card_declined", err)
	}
	if _, err := client.ListOrders(context.Background(), "u1", Page{}); errs.CodeOf(err) != "missing_token" {
		t.Errorf("a call without a token: %v; want missing_token", err)
	}
	page, err := client.ListOrders(ctx, "", Page{})
	list := page.Orders
	if err != nil || len(list) != 2 {
		t.Errorf("ListOrders = %d orders, %v; want 2", len(list), err)
	}
	// The page travels: limit and cursor over the wire, next_cursor back.
	first, err := client.ListOrders(ctx, "", Page{Limit: 1})
	if err != nil || len(first.Orders) != 1 || first.NextCursor == "" {
		t.Fatalf("first page of 1 = %+v, %v; want 1 order and a next cursor", first, err)
	}
	second, err := client.ListOrders(ctx, "", Page{Limit: 1, Cursor: first.NextCursor})
	if err != nil || len(second.Orders) != 1 || second.Orders[0].ID == first.Orders[0].ID || second.NextCursor != "" {
		t.Errorf("second page of 1 = %+v, %v; want the other order and no next cursor", second, err)
	}
}
