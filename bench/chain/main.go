// Command chain is the bare reference chain that `make bench` measures
// glasshouse against: the checkout's hops (gateway → orders → inventory
// and payments) as plain net/http processes exchanging the same JSON
// shapes, with no instrumentation, no discovery, no resilience and no
// database. What it reaches on a machine is the physical limit of four
// processes passing JSON over loopback; every microsecond glasshouse
// spends above it is the price of its patterns.
//
//	chain -role gateway   -listen ADDR -orders ADDR
//	chain -role orders    -listen ADDR -inventory ADDR -payments ADDR
//	chain -role inventory -listen ADDR
//	chain -role payments  -listen ADDR
//
// The gateway answers the calls the load generator makes to set up and
// check out: GET /api/products, POST /api/users, POST /api/login and
// POST /api/orders. A checkout costs what the saga's calls cost on the
// wire: orders reserves the items (inventory answers their prices),
// charges the card, and commits the reservation.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// The wire shapes, as the services' own (snake_case, money in cents).
type (
	item struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	}
	line struct {
		SKU            string `json:"sku"`
		Quantity       int    `json:"quantity"`
		UnitPriceCents int64  `json:"unit_price_cents"`
	}
	product struct {
		SKU         string `json:"sku"`
		Name        string `json:"name"`
		Description string `json:"description"`
		PriceCents  int64  `json:"price_cents"`
		Currency    string `json:"currency"`
		Available   int    `json:"available"`
	}
	placeOrder struct {
		Items      []item `json:"items"`
		CardNumber string `json:"card_number"`
	}
	createOrder struct {
		UserID         string `json:"user_id"`
		IdempotencyKey string `json:"idempotency_key"`
		Items          []item `json:"items"`
		CardNumber     string `json:"card_number"`
	}
	order struct {
		ID         string    `json:"id"`
		UserID     string    `json:"user_id"`
		Status     string    `json:"status"`
		TotalCents int64     `json:"total_cents"`
		Currency   string    `json:"currency"`
		Items      []line    `json:"items"`
		CreatedAt  time.Time `json:"created_at"`
	}
	reserveRequest struct {
		OrderID string `json:"order_id"`
		Items   []item `json:"items"`
	}
	reservation struct {
		OrderID   string    `json:"order_id"`
		Status    string    `json:"status"`
		Items     []line    `json:"items"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	chargeRequest struct {
		OrderID     string `json:"order_id"`
		AmountCents int64  `json:"amount_cents"`
		Currency    string `json:"currency"`
		CardNumber  string `json:"card_number"`
	}
	charge struct {
		ID          string    `json:"id"`
		OrderID     string    `json:"order_id"`
		AmountCents int64     `json:"amount_cents"`
		Currency    string    `json:"currency"`
		Status      string    `json:"status"`
		CardLast4   string    `json:"card_last4"`
		CreatedAt   time.Time `json:"created_at"`
	}
)

// catalogue is a dozen products with stock that never runs out.
var catalogue = func() []product {
	var ps []product
	for i := range 12 {
		ps = append(ps, product{SKU: fmt.Sprintf("GH-BENCH-%02d", i), Name: "Bench product",
			Description: "A product of the bare chain.", PriceCents: int64(600 + 100*i), Currency: "EUR", Available: 1 << 30})
	}
	return ps
}()

func main() {
	role := flag.String("role", "", "gateway, orders, inventory or payments")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	ordersAddr := flag.String("orders", "", "orders' host:port (gateway)")
	inventoryAddr := flag.String("inventory", "", "inventory's host:port (orders)")
	paymentsAddr := flag.String("payments", "", "payments' host:port (orders)")
	flag.Parse()

	// One keep-alive pool, large enough for the load's connections.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	mux := http.NewServeMux()
	switch *role {
	case "gateway":
		mux.HandleFunc("GET /api/products", func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, map[string]any{"products": catalogue})
		})
		mux.HandleFunc("POST /api/users", func(w http.ResponseWriter, r *http.Request) {
			var req struct{ Email, Name string }
			if decode(w, r, &req) {
				reply(w, http.StatusCreated, map[string]string{"id": newID(), "email": req.Email, "name": req.Name})
			}
		})
		mux.HandleFunc("POST /api/login", func(w http.ResponseWriter, r *http.Request) {
			var req struct{ Email string }
			if decode(w, r, &req) {
				reply(w, http.StatusOK, map[string]string{"token": "bench." + newID()})
			}
		})
		mux.HandleFunc("POST /api/orders", func(w http.ResponseWriter, r *http.Request) {
			var req placeOrder
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || r.Header.Get("Idempotency-Key") == "" {
				reply(w, http.StatusUnauthorized, map[string]string{"code": "unauthenticated"})
				return
			}
			if !decode(w, r, &req) {
				return
			}
			var o order
			in := createOrder{UserID: "bench-user", IdempotencyKey: r.Header.Get("Idempotency-Key"), Items: req.Items, CardNumber: req.CardNumber}
			if err := call(r.Context(), client, "POST", *ordersAddr, "/orders", in, &o); err != nil {
				reply(w, http.StatusBadGateway, map[string]string{"code": "unavailable", "detail": err.Error()})
				return
			}
			reply(w, http.StatusCreated, o)
		})
	case "orders":
		mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
			var req createOrder
			if !decode(w, r, &req) {
				return
			}
			o := order{ID: newID(), UserID: req.UserID, Status: "PENDING", Currency: "EUR", CreatedAt: time.Now().UTC()}
			var res reservation
			err := call(r.Context(), client, "POST", *inventoryAddr, "/reservations", reserveRequest{OrderID: o.ID, Items: req.Items}, &res)
			for _, l := range res.Items {
				o.TotalCents += l.UnitPriceCents * int64(l.Quantity)
			}
			var c charge
			if err == nil {
				err = call(r.Context(), client, "POST", *paymentsAddr, "/charges",
					chargeRequest{OrderID: o.ID, AmountCents: o.TotalCents, Currency: o.Currency, CardNumber: req.CardNumber}, &c)
			}
			if err == nil {
				err = call(r.Context(), client, "POST", *inventoryAddr, "/reservations/"+o.ID+"/commit", nil, &res)
			}
			if err != nil {
				reply(w, http.StatusBadGateway, map[string]string{"code": "unavailable", "detail": err.Error()})
				return
			}
			o.Status, o.Items = "CONFIRMED", res.Items
			reply(w, http.StatusCreated, o)
		})
	case "inventory":
		prices := map[string]int64{}
		for _, p := range catalogue {
			prices[p.SKU] = p.PriceCents
		}
		mux.HandleFunc("POST /reservations", func(w http.ResponseWriter, r *http.Request) {
			var req reserveRequest
			if !decode(w, r, &req) {
				return
			}
			res := reservation{OrderID: req.OrderID, Status: "held", ExpiresAt: time.Now().Add(15 * time.Minute).UTC()}
			for _, it := range req.Items {
				res.Items = append(res.Items, line{SKU: it.SKU, Quantity: it.Quantity, UnitPriceCents: prices[it.SKU]})
			}
			reply(w, http.StatusCreated, res)
		})
		mux.HandleFunc("POST /reservations/{orderID}/commit", func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, reservation{OrderID: r.PathValue("orderID"), Status: "committed", ExpiresAt: time.Now().UTC()})
		})
	case "payments":
		mux.HandleFunc("POST /charges", func(w http.ResponseWriter, r *http.Request) {
			var req chargeRequest
			if !decode(w, r, &req) {
				return
			}
			reply(w, http.StatusCreated, charge{ID: newID(), OrderID: req.OrderID, AmountCents: req.AmountCents,
				Currency: req.Currency, Status: "succeeded", CardLast4: req.CardNumber[max(0, len(req.CardNumber)-4):], CreatedAt: time.Now().UTC()})
		})
	default:
		log.Fatalf("chain: -role %q: choose gateway, orders, inventory or payments", *role)
	}

	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("chain %s: %v", *role, err)
	}
}

// call sends in as JSON to http://addr+path and decodes a 2xx answer into
// out.
func call(ctx context.Context, client *http.Client, method, addr, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// decode reads the request's JSON body into v, answering 400 when it
// cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(v); err != nil {
		reply(w, http.StatusBadRequest, map[string]string{"code": "invalid_json", "detail": err.Error()})
		return false
	}
	return true
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
