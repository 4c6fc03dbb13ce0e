package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// newShop is the smallest stand-in for the gateway that a load can run
// against; package loadgen's tests hold a strict one.
func newShop(t *testing.T) *httptest.Server {
	answer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Trace-Id", "4bc72f0016f6b4693f08c253bf42317f")
			w.WriteHeader(status)
			io.WriteString(w, body)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/users", answer(201, `{"id":"u1"}`))
	mux.Handle("POST /api/login", answer(200, `{"token":"t","expires_at":"2030-01-01T00:00:00Z"}`))
	mux.Handle("GET /api/products", answer(200, `{"products":[{"sku":"GH-MUG-01","available":500},{"sku":"GH-TEE-01","available":300}]}`))
	mux.Handle("GET /api/products/{sku}", answer(200, `{"sku":"GH-MUG-01","available":500}`))
	mux.Handle("GET /api/products/{sku}/recommendations", answer(200, `{"sku":"GH-MUG-01","recommendations":[],"fallback":true}`))
	mux.Handle("POST /api/orders", answer(201, `{"id":"o1","status":"CONFIRMED"}`))
	mux.Handle("GET /api/orders", answer(200, `{"orders":[]}`))
	mux.Handle("GET /api/orders/{id}", answer(200, `{"id":"o1"}`))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestLoadRunsAndSummarises(t *testing.T) {
	shop := newShop(t)
	env := map[string]string{"GLASSHOUSE_GATEWAY": shop.URL}
	var out strings.Builder
	err := run(t.Context(), []string{"load", "-rate", "100", "-duration", "300ms", "-users", "2", "-mix", "browse=1,checkout=1"},
		func(k string) string { return env[k] }, &out)
	if err != nil {
		t.Fatalf("load: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`signing up 2 customers at ` + regexp.QuoteMeta(shop.URL) + `, then 100 req/s for 300ms \(mix browse=1,checkout=1\)`,
		`\nall +30 +30 +0 +0 `, // every request due in 300ms at 100/s, all answered
		`\nlogin +0 +0 +0 +0 `,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("output has nothing like %q:\n%s", want, out.String())
		}
	}
}

func TestLoadFailsWhenSetupFails(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"code":"unavailable"}`)
	}))
	defer down.Close()
	var out strings.Builder
	err := run(t.Context(), []string{"load", "-target", down.URL, "-duration", "1s"}, func(string) string { return "" }, &out)
	if err == nil || !strings.Contains(err.Error(), "setup: GET /api/products: 503 unavailable") {
		t.Errorf("load against a failing gateway: %v; want the setup's failure", err)
	}
}

func TestLoadRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-mix", "browse=1,search=1"},
		{"-rate", "fast"},
		{"-rate", "0"},
		{"-target", "localhost:8080"},
	} {
		err := run(t.Context(), append([]string{"load"}, args...), func(string) string { return "" }, io.Discard)
		if err == nil {
			t.Errorf("load %v was accepted", args)
		}
	}
}
