package loadgen

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// fakeGateway imitates the gateway's public API for the generator's unit
// tests (the real stack is tested end to end elsewhere). It is strict: a
// request the real gateway would refuse gets the real problem code, so a
// run without errors proves the generator used the API as documented.
type fakeGateway struct {
	mux *http.ServeMux
	// intercept, when set, sees every request first (with its X-Trace-Id
	// set) and answers it itself by returning true. Tests use it to make
	// the shop slow or failing.
	intercept func(w http.ResponseWriter, r *http.Request) bool

	mu          sync.Mutex
	traces      int
	calls       map[string]int    // by route pattern, like "GET /api/orders/{id}"
	inFlight    int               // requests being served
	maxInFlight int               // the most ever served at once
	passwords   map[string]string // email → password
	logins      map[string]int    // by email
	tokens      map[string]string // token → email
	byCustomer  map[string]int    // authenticated requests by email
	stock       map[string]int
	orders      map[string]fakeOrder // by ID
	keys        map[string]bool      // Idempotency-Keys seen
	sold        map[string]int       // units by SKU
	basketSizes map[int]int          // orders by number of items
}

type fakeOrder struct {
	ID    string `json:"id"`
	email string
}

func newFakeGateway() *fakeGateway {
	g := &fakeGateway{
		mux: http.NewServeMux(), calls: map[string]int{},
		passwords: map[string]string{}, logins: map[string]int{}, tokens: map[string]string{},
		byCustomer: map[string]int{}, orders: map[string]fakeOrder{}, keys: map[string]bool{},
		sold: map[string]int{}, basketSizes: map[int]int{},
		// Plenty of everything but the lamp, as in the real catalogue.
		stock: map[string]int{"GH-MUG-01": 100000, "GH-TEE-01": 100000, "GH-STICK-01": 100000, "GH-LAMP-01": 3},
	}
	g.mux.HandleFunc("POST /api/users", g.signUp)
	g.mux.HandleFunc("POST /api/login", g.login)
	g.mux.HandleFunc("GET /api/products", g.listProducts)
	g.mux.HandleFunc("GET /api/products/{sku}", g.getProduct)
	g.mux.HandleFunc("GET /api/products/{sku}/recommendations", g.recommendations)
	g.mux.HandleFunc("POST /api/orders", g.placeOrder)
	g.mux.HandleFunc("GET /api/orders", g.listOrders)
	g.mux.HandleFunc("GET /api/orders/{id}", g.getOrder)
	return g
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := g.route(r)
	g.mu.Lock()
	g.traces++
	traceID := fmt.Sprintf("%032x", g.traces)
	g.calls[route]++
	g.inFlight++
	g.maxInFlight = max(g.maxInFlight, g.inFlight)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()

	w.Header().Set("X-Trace-Id", traceID)
	if g.intercept != nil && g.intercept(w, r) {
		return
	}
	g.mux.ServeHTTP(w, r)
}

// route is the pattern r matches, like "GET /api/orders/{id}".
func (g *fakeGateway) route(r *http.Request) string {
	_, pattern := g.mux.Handler(r)
	return pattern
}

// count returns how many requests reached route.
func (g *fakeGateway) count(route string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[route]
}

func writeProblem(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "code": code, "trace_id": w.Header().Get("X-Trace-Id")})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body strictly, as the real services do.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		writeProblem(w, http.StatusBadRequest, "malformed_json")
		return false
	}
	return true
}

func (g *fakeGateway) signUp(w http.ResponseWriter, r *http.Request) {
	var req struct{ Email, Password, Name string }
	if !decode(w, r, &req) {
		return
	}
	switch {
	case !strings.Contains(req.Email, "@"):
		writeProblem(w, http.StatusBadRequest, "invalid_email")
		return
	case len(req.Password) < 8:
		writeProblem(w, http.StatusBadRequest, "weak_password")
		return
	case req.Name == "":
		writeProblem(w, http.StatusBadRequest, "invalid_name")
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, taken := g.passwords[req.Email]; taken {
		writeProblem(w, http.StatusConflict, "email_taken")
		return
	}
	g.passwords[req.Email] = req.Password
	writeJSON(w, http.StatusCreated, map[string]string{"id": "user-" + req.Email, "email": req.Email, "name": req.Name})
}

func (g *fakeGateway) login(w http.ResponseWriter, r *http.Request) {
	var req struct{ Email, Password string }
	if !decode(w, r, &req) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if pw, ok := g.passwords[req.Email]; !ok || pw != req.Password {
		writeProblem(w, http.StatusUnauthorized, "invalid_credentials")
		return
	}
	g.logins[req.Email]++
	token := fmt.Sprintf("token-%d-%s", g.logins[req.Email], req.Email)
	g.tokens[token] = req.Email
	writeJSON(w, http.StatusOK, map[string]any{"token": token, "expires_at": time.Now().Add(time.Hour)})
}

// customer is the email of the request's bearer, or "" after answering 401.
// The caller holds g.mu.
func (g *fakeGateway) customer(w http.ResponseWriter, r *http.Request) string {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		writeProblem(w, http.StatusUnauthorized, "missing_token")
		return ""
	}
	email, ok := g.tokens[token]
	if !ok {
		writeProblem(w, http.StatusUnauthorized, "invalid_token")
		return ""
	}
	g.byCustomer[email]++
	return email
}

func (g *fakeGateway) listProducts(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var products []map[string]any
	for sku, n := range g.stock {
		products = append(products, map[string]any{"sku": sku, "name": sku, "price_cents": 1000, "currency": "EUR", "available": n})
	}
	writeJSON(w, http.StatusOK, map[string]any{"products": products})
}

func (g *fakeGateway) getProduct(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	sku := r.PathValue("sku")
	n, ok := g.stock[sku]
	if !ok {
		writeProblem(w, http.StatusNotFound, "unknown_product")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sku": sku, "name": sku, "price_cents": 1000, "currency": "EUR", "available": n})
}

func (g *fakeGateway) recommendations(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.stock[r.PathValue("sku")]; !ok {
		writeProblem(w, http.StatusNotFound, "unknown_product")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sku": r.PathValue("sku"), "recommendations": []any{}, "fallback": true})
}

func (g *fakeGateway) placeOrder(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	email := g.customer(w, r)
	if email == "" {
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		writeProblem(w, http.StatusBadRequest, "missing_idempotency_key")
		return
	}
	var req struct {
		Items []struct {
			SKU      string `json:"sku"`
			Quantity int    `json:"quantity"`
		} `json:"items"`
		CardNumber string `json:"card_number"`
	}
	if !decode(w, r, &req) {
		return
	}
	if g.keys[key] {
		// The real orders service replays the first answer for a repeated
		// key; a generator repeating keys would measure replays, not checkouts.
		writeProblem(w, http.StatusConflict, "idempotency_mismatch")
		return
	}
	g.keys[key] = true
	if req.CardNumber != "4242424242424242" {
		writeProblem(w, http.StatusPaymentRequired, "card_declined")
		return
	}
	if len(req.Items) == 0 || len(req.Items) > 2 {
		writeProblem(w, http.StatusBadRequest, "invalid_items")
		return
	}
	seen := map[string]bool{}
	for _, it := range req.Items {
		// Stricter than the real gateway: the load buys distinct products, one unit each.
		if it.Quantity != 1 || seen[it.SKU] {
			writeProblem(w, http.StatusBadRequest, "invalid_items")
			return
		}
		seen[it.SKU] = true
		n, ok := g.stock[it.SKU]
		if !ok {
			writeProblem(w, http.StatusNotFound, "unknown_product")
			return
		}
		if n < 1 {
			writeProblem(w, http.StatusConflict, "out_of_stock")
			return
		}
	}
	for _, it := range req.Items {
		g.stock[it.SKU]--
		g.sold[it.SKU]++
	}
	g.basketSizes[len(req.Items)]++
	o := fakeOrder{ID: fmt.Sprintf("order-%d", len(g.orders)+1), email: email}
	g.orders[o.ID] = o
	writeJSON(w, http.StatusCreated, o)
}

func (g *fakeGateway) listOrders(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	email := g.customer(w, r)
	if email == "" {
		return
	}
	mine := []fakeOrder{}
	for _, o := range g.orders {
		if o.email == email {
			mine = append(mine, o)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": mine})
}

func (g *fakeGateway) getOrder(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	email := g.customer(w, r)
	if email == "" {
		return
	}
	o, ok := g.orders[r.PathValue("id")]
	if !ok || o.email != email {
		writeProblem(w, http.StatusNotFound, "order_not_found")
		return
	}
	writeJSON(w, http.StatusOK, o)
}

// inMemory is an http.RoundTripper that serves requests with a handler in
// this process. Tests in a synctest bubble use it because the bubble's
// fake clock only advances while every goroutine is blocked on something
// inside the bubble, and a goroutine waiting on a socket is not.
type inMemory struct{ handler http.Handler }

func (t inMemory) RoundTrip(req *http.Request) (*http.Response, error) {
	// The handler runs in its own goroutine so that the request's context
	// can cut it short, as a timeout cuts a real connection.
	answered := make(chan *http.Response, 1)
	go func() {
		if req.Body != nil {
			defer req.Body.Close()
		}
		rec := httptest.NewRecorder()
		t.handler.ServeHTTP(rec, req.Clone(req.Context()))
		answered <- rec.Result()
	}()
	select {
	case resp := <-answered:
		resp.Request = req
		return resp, nil
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
}
