package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// A Customer is the runner's own shopper: it checks that the shop works
// between experiments, and places single checkouts whose trace an
// experiment wants to read. It speaks the public API like any client.
type Customer struct {
	gateway string
	http    *http.Client
	token   string
}

// approvingCard is the test card payments always approves.
const approvingCard = "4242424242424242"

// customerSKU is what the runner's customer buys: the product with the
// most stock, so its few checkouts never sell anything out.
const customerSKU = "GH-STICK-01"

func newCustomer(ctx context.Context, gateway string) (*Customer, error) {
	c := &Customer{gateway: gateway, http: &http.Client{Timeout: 10 * time.Second}}
	email := fmt.Sprintf("chaos-%s@example.com", randomHex(6))
	const password = "chaos-runner"
	if status, _, err := c.call(ctx, "POST", "/api/users", map[string]string{"email": email, "password": password, "name": "Chaos runner"}, nil); err != nil || status != http.StatusCreated {
		return nil, fmt.Errorf("sign up: %d %v", status, err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if status, _, err := c.call(ctx, "POST", "/api/login", map[string]string{"email": email, "password": password}, &tok); err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("login: %d %v", status, err)
	}
	c.token = tok.Token
	return c, nil
}

// Checkout buys one unit and returns the answer's status and trace ID.
// A placed order is then read back, alone and in the customer's list, so
// that every route of the gateway to orders is called (each has breakers
// of its own, which move from open to closed only when called).
func (c *Customer) Checkout(ctx context.Context) (status int, traceID string, err error) {
	body := map[string]any{
		"items":       []map[string]any{{"sku": customerSKU, "quantity": 1}},
		"card_number": approvingCard,
	}
	var order struct {
		ID string `json:"id"`
	}
	status, traceID, err = c.call(ctx, "POST", "/api/orders", body, &order, "Idempotency-Key", "chaos-"+randomHex(12))
	if err != nil || status != http.StatusCreated {
		return status, traceID, err
	}
	for _, path := range []string{"/api/orders/" + order.ID, "/api/orders"} {
		if s, _, err := c.call(ctx, "GET", path, nil, nil); err != nil || s != http.StatusOK {
			return s, traceID, fmt.Errorf("GET %s after the checkout: %d %v", path, s, err)
		}
	}
	return status, traceID, nil
}

// Browse reads the catalogue and one product of it, and returns the
// answers' status (the first that is not 200).
func (c *Customer) Browse(ctx context.Context) (int, error) {
	for _, path := range []string{"/api/products", "/api/products/" + customerSKU} {
		if status, _, err := c.call(ctx, "GET", path, nil, nil); err != nil || status != http.StatusOK {
			return status, err
		}
	}
	return http.StatusOK, nil
}

// call sends a request to the gateway and decodes a 2xx answer into out.
func (c *Customer) call(ctx context.Context, method, path string, body, out any, header ...string) (int, string, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.gateway+path, r)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	traceID := resp.Header.Get("X-Trace-Id")
	if err != nil {
		return resp.StatusCode, traceID, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, traceID, err
		}
	}
	return resp.StatusCode, traceID, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
