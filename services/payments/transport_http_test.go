package payments_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"github.com/glasshouse-dev/glasshouse/transport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// testServer is a real payments instance (a real database on backend b,
// fault knobs, full HTTP stack) on a loopback port, wired as cmd/payments
// wires it.
type testServer struct {
	*httptest.Server
	store  *payments.Store
	faults *payments.Faults
}

func newServer(t testing.TB, b testenv.Backend, rec sdktrace.SpanProcessor) testServer {
	t.Helper()
	tel := testenv.Telemetry(t, payments.ServiceName, testenv.RecordSpans(rec))
	store := openTracedStore(t, b, tel.TracerProvider)
	faults := payments.NewFaults(0, 0)
	tel.Registry.MustRegister(faults)
	var svc payments.Service = payments.NewService(store, payments.Options{})
	svc = payments.InjectFaults(faults, rand.Float64)(svc)
	svc = payments.Instrumenting(tel.Registry)(svc)
	health := observability.NewHealth()
	health.AddCheck("store", store.Ping)
	// One test server for both listeners' routes: the API and the fault
	// knobs (which cmd/payments serves on the admin listener).
	routes := http.NewServeMux()
	routes.Handle("/admin/", payments.AdminAPI.Server(faults, tel.ServerEndpoint))
	routes.Handle("/", payments.API.Server(svc, tel.ServerEndpoint))
	srv := httptest.NewServer(transport.Handler(tel, health, routes, transport.ServerConfig{MaxBodyBytes: 4 << 10}))
	t.Cleanup(srv.Close)
	return testServer{Server: srv, store: store, faults: faults}
}

// do sends one request and returns the status and the raw body.
func (s testServer) do(t *testing.T, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}

func chargeJSON(orderID, card string) string {
	return fmt.Sprintf(`{"order_id":%q,"amount_cents":1999,"currency":"EUR","card_number":%q}`, orderID, card)
}

func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	srv := newServer(t, testenv.SQLite, nil)
	if resp, body := srv.do(t, "POST", "/charges", chargeJSON("paid", payments.TestCardApproved)); resp.StatusCode != 201 {
		t.Fatalf("charge = %d %s", resp.StatusCode, body)
	}
	if resp, body := srv.do(t, "POST", "/charges", chargeJSON("declined", payments.TestCardDeclined)); resp.StatusCode != 402 {
		t.Fatalf("declined charge = %d %s", resp.StatusCode, body)
	}
	declined, err := srv.store.FindCharge(context.Background(), "declined")
	if err != nil {
		t.Fatal(err)
	}
	before, faultsBefore := listCharges(t, srv.store), srv.faults.Get()

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
		detail                   string // a fragment the detail must contain
	}{
		{"malformed JSON", "POST", "/charges", `{"order_id": "o1", "amount_cents": `, 400, "malformed_json", "ends in the middle"},
		{"empty body", "POST", "/charges", ``, 400, "malformed_json", "empty"},
		{"two values", "POST", "/charges", chargeJSON("o1", payments.TestCardApproved) + ` {}`, 400, "malformed_json", "single JSON value"},
		{"unknown field", "POST", "/charges", `{"order_id":"o1","amount_cents":1,"currency":"EUR","card_number":"4242424242424242","cvc":"123"}`, 400, "unknown_field", `"cvc"`},
		{"amount as a string", "POST", "/charges", `{"order_id":"o1","amount_cents":"ten","currency":"EUR","card_number":"4242424242424242"}`, 400, "invalid_field", "amount_cents"},
		{"card as a number", "POST", "/charges", `{"order_id":"o1","amount_cents":1,"currency":"EUR","card_number":4242424242424242}`, 400, "invalid_field", "card_number"},
		{"missing order id", "POST", "/charges", `{"amount_cents":1999,"currency":"EUR","card_number":"4242424242424242"}`, 400, payments.CodeInvalidOrderID, "order_id"},
		{"zero amount", "POST", "/charges", `{"order_id":"o1","amount_cents":0,"currency":"EUR","card_number":"4242424242424242"}`, 400, payments.CodeInvalidAmount, "positive"},
		{"lower-case currency", "POST", "/charges", `{"order_id":"o1","amount_cents":1,"currency":"eur","card_number":"4242424242424242"}`, 400, payments.CodeInvalidCurrency, "upper-case"},
		{"card with dashes", "POST", "/charges", chargeJSON("o1", "4242-4242-4242-4242"), 400, payments.CodeInvalidCard, "12 to 19 digits"},
		{"replayed decline", "POST", "/charges", chargeJSON("declined", payments.TestCardApproved), 402, payments.CodeCardDeclined, "card ending 0002 was declined"},
		{"mismatch", "POST", "/charges", `{"order_id":"paid","amount_cents":1,"currency":"EUR","card_number":"4242424242424242"}`, 409, payments.CodeChargeMismatch, "already charged 1999 EUR"},
		{"oversized body", "POST", "/charges", `{"order_id":"` + strings.Repeat("x", 5<<10) + `"}`, 413, "body_too_large", "4096 bytes"},
		{"refund declined", "POST", "/charges/" + declined.ID + "/refund", ``, 409, payments.CodeChargeNotRefundable, declined.ID},
		{"refund unknown", "POST", "/charges/ch_nope/refund", ``, 404, payments.CodeChargeNotFound, "ch_nope"},
		{"get unknown", "GET", "/charges/ch_nope", ``, 404, payments.CodeChargeNotFound, "ch_nope"},
		{"find uncharged order", "GET", "/orders/nope/charge", ``, 404, payments.CodeChargeNotFound, "nope"},
		{"unknown route", "GET", "/refunds", ``, 404, "no_route", "/refunds"},
		{"wrong method", "DELETE", "/charges/ch_nope", ``, 405, "method_not_allowed", "allowed: GET"},
		{"error rate above one", "PUT", "/admin/faults", `{"error_rate":1.5,"latency":"0s"}`, 400, payments.CodeInvalidFaults, "error_rate"},
		{"negative error rate", "PUT", "/admin/faults", `{"error_rate":-0.5,"latency":"0s"}`, 400, payments.CodeInvalidFaults, "error_rate"},
		{"latency not a duration", "PUT", "/admin/faults", `{"error_rate":0,"latency":"banana"}`, 400, "malformed_json", `"banana" is not a duration`},
		{"latency as a number", "PUT", "/admin/faults", `{"error_rate":0,"latency":300}`, 400, "malformed_json", "must be a string"},
		{"latency too long", "PUT", "/admin/faults", `{"error_rate":0,"latency":"31s"}`, 400, payments.CodeInvalidFaults, "latency"},
		{"unknown fault", "PUT", "/admin/faults", `{"error_rate":0,"jitter":"1s"}`, 400, "unknown_field", `"jitter"`},
		{"faults wrong method", "POST", "/admin/faults", `{}`, 405, "method_not_allowed", "allowed: GET, PUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, raw := srv.do(t, tt.method, tt.path, tt.body)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != transport.ProblemContentType {
				t.Errorf("Content-Type = %q, want %q", ct, transport.ProblemContentType)
			}
			var p transport.Problem
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("decode problem %s: %v", raw, err)
			}
			if p.Code != tt.code || p.Status != tt.status || !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("problem = %+v, want code %q, status %d, detail containing %q", p, tt.code, tt.status, tt.detail)
			}
			if p.Type == "" || p.Title == "" || len(p.TraceID) != 32 {
				t.Errorf("problem = %+v, want type, title and a 32-hex trace_id", p)
			}
			for _, card := range []string{payments.TestCardApproved, payments.TestCardDeclined, "4242-4242-4242-4242"} {
				if bytes.Contains(raw, []byte(card)) {
					t.Errorf("response %s echoes the card number %s", raw, card)
				}
			}
		})
	}

	if after := listCharges(t, srv.store); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("bad requests changed the store:\nbefore %+v\nafter  %+v", before, after)
	}
	if got := srv.faults.Get(); got != faultsBefore {
		t.Errorf("bad requests changed the fault knobs to %+v, want %+v", got, faultsBefore)
	}
}

// decodeFields decodes a JSON object and returns it with its sorted keys.
func decodeFields(t *testing.T, raw []byte) (map[string]any, []string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return m, keys
}

func TestChargeLifecycleOverHTTP(t *testing.T) {
	srv := newServer(t, testenv.SQLite, nil)

	resp, first := srv.do(t, "POST", "/charges", chargeJSON("o1", payments.TestCardApproved))
	if resp.StatusCode != 201 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("charge = %d %s (%s), want 201 JSON", resp.StatusCode, first, resp.Header.Get("Content-Type"))
	}
	c, keys := decodeFields(t, first)
	if want := []string{"amount_cents", "card_last4", "created_at", "currency", "id", "order_id", "status"}; !slices.Equal(keys, want) {
		t.Errorf("charge fields = %v, want exactly %v", keys, want)
	}
	if c["status"] != "succeeded" || c["card_last4"] != "4242" || c["amount_cents"] != 1999.0 || bytes.Contains(first, []byte(payments.TestCardApproved)) {
		t.Errorf("charge = %s, want succeeded, ending 4242, without the card number", first)
	}
	id := c["id"].(string)

	// A replay is the same answer, byte for byte.
	if resp, again := srv.do(t, "POST", "/charges", chargeJSON("o1", payments.TestCardApproved)); resp.StatusCode != 201 || !bytes.Equal(again, first) {
		t.Errorf("replay = %d %s, want 201 %s", resp.StatusCode, again, first)
	}
	for _, path := range []string{"/charges/" + id, "/orders/o1/charge"} {
		if resp, got := srv.do(t, "GET", path, ""); resp.StatusCode != 200 || !bytes.Equal(got, first) {
			t.Errorf("GET %s = %d %s, want 200 %s", path, resp.StatusCode, got, first)
		}
	}

	resp, raw := srv.do(t, "POST", "/charges/"+id+"/refund", "")
	refunded, keys := decodeFields(t, raw)
	if resp.StatusCode != 200 || refunded["status"] != "refunded" || !slices.Contains(keys, "refunded_at") {
		t.Fatalf("refund = %d %s, want 200, refunded, with refunded_at", resp.StatusCode, raw)
	}
	if resp, again := srv.do(t, "POST", "/charges/"+id+"/refund", ""); resp.StatusCode != 200 || !bytes.Equal(again, raw) {
		t.Errorf("second refund = %d %s, want 200 %s", resp.StatusCode, again, raw)
	}
}

func TestFaultKnobsOverHTTP(t *testing.T) {
	srv := newServer(t, testenv.SQLite, nil)

	if resp, raw := srv.do(t, "GET", "/admin/faults", ""); resp.StatusCode != 200 || string(raw) != `{"error_rate":0,"latency":"0s"}`+"\n" {
		t.Errorf("GET /admin/faults = %d %s, want the knobs at zero", resp.StatusCode, raw)
	}
	const on = `{"error_rate":1,"latency":"1ms"}` + "\n"
	if resp, raw := srv.do(t, "PUT", "/admin/faults", on); resp.StatusCode != 200 || string(raw) != on {
		t.Fatalf("PUT /admin/faults = %d %s, want 200 %s", resp.StatusCode, raw, on)
	}
	if resp, raw := srv.do(t, "GET", "/admin/faults", ""); resp.StatusCode != 200 || string(raw) != on {
		t.Errorf("GET /admin/faults = %d %s, want %s", resp.StatusCode, raw, on)
	}

	resp, raw := srv.do(t, "POST", "/charges", chargeJSON("o1", payments.TestCardApproved))
	var p transport.Problem
	if err := json.Unmarshal(raw, &p); err != nil || resp.StatusCode != 500 || p.Code != payments.CodeInjectedFault {
		t.Errorf("charge with error rate 1 = %d %s, want 500 %s", resp.StatusCode, raw, payments.CodeInjectedFault)
	}
	if resp, raw := srv.do(t, "GET", "/orders/o1/charge", ""); resp.StatusCode != 404 {
		t.Errorf("GET /orders/o1/charge = %d %s, want 404: the faulted charge must not exist", resp.StatusCode, raw)
	}

	// A field left out is zero: this turns both knobs off.
	if resp, raw := srv.do(t, "PUT", "/admin/faults", `{}`); resp.StatusCode != 200 || string(raw) != `{"error_rate":0,"latency":"0s"}`+"\n" {
		t.Errorf("PUT {} = %d %s, want the knobs at zero", resp.StatusCode, raw)
	}
	if resp, raw := srv.do(t, "POST", "/charges", chargeJSON("o1", payments.TestCardApproved)); resp.StatusCode != 201 {
		t.Errorf("charge with the knobs off = %d %s, want 201", resp.StatusCode, raw)
	}
}

func TestClientRoundTripKeepsTypedErrors(t *testing.T) {
	srv := newServer(t, testenv.SQLite, nil)
	client := payments.NewClient(testenv.Direct(t, srv.URL, testenv.Telemetry(t, "orders")))
	ctx := context.Background()

	// An order ID outside the identifier grammar is refused by the
	// service and comes back as the same typed error.
	if _, err := client.Charge(ctx, charge("order/with spaces", payments.TestCardApproved)); errs.CodeOf(err) != payments.CodeInvalidOrderID {
		t.Fatalf("Charge(order/with spaces) = %v; want invalid_order_id", err)
	}
	c, err := client.Charge(ctx, charge("ord_with-dashes_1", payments.TestCardApproved))
	if err != nil || c.Status != payments.Succeeded || c.OrderID != "ord_with-dashes_1" || c.CardLast4 != "4242" {
		t.Fatalf("Charge = %+v, %v", c, err)
	}
	stored, err := srv.store.GetCharge(ctx, c.ID)
	if err != nil || fmt.Sprint(stored) != fmt.Sprint(c) {
		t.Errorf("client got %+v, store has %+v (%v): the wire must keep every field", c, stored, err)
	}
	if again, err := client.Charge(ctx, charge("ord_with-dashes_1", payments.TestCardApproved)); err != nil || again.ID != c.ID {
		t.Errorf("replayed Charge = %+v, %v; want %s", again, err, c.ID)
	}
	if found, err := client.FindCharge(ctx, "ord_with-dashes_1"); err != nil || found.ID != c.ID {
		t.Errorf("FindCharge = %+v, %v", found, err)
	}
	if got, err := client.GetCharge(ctx, c.ID); err != nil || got.ID != c.ID {
		t.Errorf("GetCharge = %+v, %v", got, err)
	}
	for range 2 {
		r, err := client.Refund(ctx, c.ID)
		if err != nil || r.Status != payments.Refunded || r.RefundedAt == nil {
			t.Fatalf("Refund = %+v, %v; want refunded", r, err)
		}
	}

	typed := []struct {
		name   string
		call   func() error
		kind   errs.Kind
		code   string
		detail string
	}{
		{"declined", func() error {
			_, err := client.Charge(ctx, charge("o2", payments.TestCardDeclined))
			return err
		}, errs.Declined, payments.CodeCardDeclined, "card ending 0002 was declined"},
		{"invalid card", func() error {
			_, err := client.Charge(ctx, charge("o3", "42"))
			return err
		}, errs.Invalid, payments.CodeInvalidCard, "digits"},
		{"mismatch", func() error {
			_, err := client.Charge(ctx, payments.ChargeRequest{OrderID: "o2", AmountCents: 1, Currency: "EUR", CardNumber: payments.TestCardApproved})
			return err
		}, errs.Conflict, payments.CodeChargeMismatch, "already charged"},
		{"not found", func() error { _, err := client.GetCharge(ctx, "ch_nope"); return err }, errs.NotFound, payments.CodeChargeNotFound, "ch_nope"},
		{"not refundable", func() error {
			declined, err := client.FindCharge(ctx, "o2")
			if err != nil {
				return err
			}
			_, err = client.Refund(ctx, declined.ID)
			return err
		}, errs.Conflict, payments.CodeChargeNotRefundable, "declined"},
	}
	for _, tt := range typed {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var e *errs.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *errs.Error", err, err)
			}
			if e.Kind != tt.kind || e.Code != tt.code || !strings.Contains(e.Detail, tt.detail) {
				t.Errorf("error = %+v, want kind %v code %q with a detail containing %q", e, tt.kind, tt.code, tt.detail)
			}
			if !errs.IsBusiness(err) {
				t.Errorf("%v should be a business error", err)
			}
		})
	}

	// An injected fault crosses the wire as a failure, not an answer, so
	// a caller's breaker and retries react to it as to a real outage.
	if err := srv.faults.Set(payments.FaultSettings{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = client.Charge(ctx, charge("o4", payments.TestCardApproved))
	if errs.KindOf(err) != errs.Internal || errs.CodeOf(err) != payments.CodeInjectedFault || errs.IsBusiness(err) {
		t.Errorf("charge under faults = %v, want Internal/%s, not a business error", err, payments.CodeInjectedFault)
	}
}

func TestHealthAndMetricsEndpoints(t *testing.T) {
	srv := newServer(t, testenv.SQLite, nil)
	if resp, raw := srv.do(t, "POST", "/charges", chargeJSON("o1", payments.TestCardApproved)); resp.StatusCode != 201 {
		t.Fatalf("charge = %d %s", resp.StatusCode, raw)
	}
	for path, want := range map[string][]string{
		"/healthz": {`"status":"ok"`},
		"/readyz":  {`"store":"ok"`},
		"/metrics": {
			`glasshouse_endpoint_request_duration_seconds_count{endpoint="Charge",outcome="success",service="payments",transport="http"} 1`,
			`glasshouse_payments_charges_total{result="succeeded"} 1`,
			`glasshouse_payments_charged_cents_total{currency="EUR"} 1999`,
			`glasshouse_payments_faults_injected_total{type="error"} 0`,
			`glasshouse_payments_fault_error_rate 0`,
		},
	} {
		resp, body := srv.do(t, "GET", path, "")
		for _, w := range want {
			if resp.StatusCode != 200 || !strings.Contains(string(body), w) {
				t.Errorf("GET %s = %d; want 200 containing %s", path, resp.StatusCode, w)
			}
		}
	}
}
