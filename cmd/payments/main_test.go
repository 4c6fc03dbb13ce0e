package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"github.com/glasshouse-dev/glasshouse/transport"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRunServesAndShutsDownCleanly starts the real service through run,
// as main does, on a free port and a temporary data directory, or a
// PostgreSQL database whose password no log line may show, and calls it
// the way orders will: found in Consul, through payments.NewClient.
func TestRunServesAndShutsDownCleanly(t *testing.T) {
	testenv.OnEachBackend(t, testRunServesAndShutsDownCleanly)
}

func testRunServesAndShutsDownCleanly(t *testing.T, b testenv.Backend) {
	ctx := context.Background()
	consul := testenv.StartConsul(t)
	env := map[string]string{"DATA_DIR": t.TempDir(), "LISTEN_ADDR": "127.0.0.1:0", "CONSUL_HTTP_ADDR": consul.Addr, "CHECK_INTERVAL": "1s"}
	secrets := []string{payments.TestCardApproved, payments.TestCardDeclined}
	if b.Name == testenv.Postgres.Name {
		dbURL := b.NewDatabase(t)
		env["DATABASE_URL"] = dbURL
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		if password, ok := u.User.Password(); ok && password != "" {
			secrets = append(secrets, password)
		}
	}
	// Every log line must be JSON, and no line may hold a card number or
	// the database's password.
	var storeLine atomic.Value // the database named by the "store" log line
	svc := testenv.RunService(t, run, env, func(line []byte) {
		for _, secret := range secrets {
			if bytes.Contains(line, []byte(secret)) {
				t.Errorf("log line holds %s: %s", secret, line)
			}
		}
		var rec struct{ Msg, Database string }
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "store" {
			storeLine.Store(rec.Database)
		}
	})
	// The store opens before the service serves.
	if got, want := storeLine.Load(), map[string]string{"sqlite": "sqlite", "postgres": "postgresql"}[b.Name]; got != want {
		t.Errorf("the store log line names database %v, want %q", got, want)
	}
	base, admin := "http://"+svc.Addr, "http://"+svc.AdminAddr // /metrics is on the admin listener

	ids := consul.WaitPassing("payments", 1, 10*time.Second)
	if want := svc.InstanceID("payments"); ids[0] != want {
		t.Errorf("registered as %q, want %q", ids[0], want)
	}

	client := newClient(t, consul)
	c, err := client.Charge(ctx, payments.ChargeRequest{OrderID: "o1", AmountCents: 4200, Currency: "EUR", CardNumber: payments.TestCardApproved})
	if err != nil || c.Status != payments.Succeeded {
		t.Fatalf("Charge through Consul = %+v, %v; want succeeded", c, err)
	}
	_, err = client.Charge(ctx, payments.ChargeRequest{OrderID: "o2", AmountCents: 4200, Currency: "EUR", CardNumber: payments.TestCardDeclined})
	if errs.KindOf(err) != errs.Declined {
		t.Fatalf("declined Charge through Consul = %v, want Declined", err)
	}

	// The knobs are not on the public port: a caller of the API cannot
	// make payments fail.
	if status, body := testenv.Send(t, "PUT", base+"/admin/faults", `{"error_rate":1,"latency":"0s"}`); status != 404 {
		t.Fatalf("PUT /admin/faults on the public port = %d %s; want 404", status, body)
	}
	// Turn the error knob at run time: charges fail, and nothing is charged.
	if status, body := testenv.Send(t, "PUT", admin+"/admin/faults", `{"error_rate":1,"latency":"0s"}`); status != 200 {
		t.Fatalf("PUT /admin/faults = %d %s", status, body)
	}
	status, body := testenv.Send(t, "POST", base+"/charges", `{"order_id":"o3","amount_cents":100,"currency":"EUR","card_number":"4242424242424242"}`)
	if status != 500 || !strings.Contains(body, `"code":"injected_fault"`) {
		t.Errorf("charge with error rate 1 = %d %s, want 500 injected_fault", status, body)
	}
	if _, err := client.FindCharge(ctx, "o3"); errs.CodeOf(err) != payments.CodeChargeNotFound {
		t.Errorf("FindCharge(o3) = %v, want %s", err, payments.CodeChargeNotFound)
	}
	// And back: the same charge now goes through.
	if status, body := testenv.Send(t, "PUT", admin+"/admin/faults", `{"error_rate":0,"latency":"0s"}`); status != 200 {
		t.Fatalf("PUT /admin/faults = %d %s", status, body)
	}
	if c, err := client.Charge(ctx, payments.ChargeRequest{OrderID: "o3", AmountCents: 100, Currency: "EUR", CardNumber: payments.TestCardApproved}); err != nil || c.Status != payments.Succeeded {
		t.Errorf("charge with the knobs off = %+v, %v", c, err)
	}

	_, metrics := testenv.Send(t, "GET", admin+"/metrics", "")
	for _, want := range []string{
		`glasshouse_payments_charges_total{result="succeeded"} 2`,
		`glasshouse_payments_charges_total{result="card_declined"} 1`,
		`glasshouse_payments_charges_total{result="injected_fault"} 1`,
		`glasshouse_payments_charged_cents_total{currency="EUR"} 4300`,
		`glasshouse_payments_faults_injected_total{type="error"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Turning a knob is logged like any endpoint call, so a drill leaves
	// a record of who turned what when.
	svc.AwaitLog("the endpoint call SetFaults", func(rec map[string]any) bool {
		return rec["msg"] == "endpoint call" && rec["endpoint"] == "SetFaults"
	})

	svc.Stop()
	if ids, err := consul.Registered("payments"); err != nil || len(ids) != 0 {
		t.Errorf("after shutdown Consul still has %v (%v); want the instance deregistered", ids, err)
	}
}

// TestRunRejectsBadFaultSettings fails fast, before listening, on fault
// flags out of range.
func TestRunRejectsBadFaultSettings(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"error rate from the environment", nil, map[string]string{"FAULT_ERROR_RATE": "1.5"}, "error_rate"},
		{"latency flag", []string{"-fault-latency", "1m"}, nil, "latency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"DATA_DIR": t.TempDir(), "LISTEN_ADDR": "127.0.0.1:0"}
			for k, v := range tt.env {
				env[k] = v
			}
			var out bytes.Buffer
			err := run(context.Background(), tt.args, func(k string) string { return env[k] }, &out)
			if errs.CodeOf(err) != payments.CodeInvalidFaults || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run = %v, want %s about %s", err, payments.CodeInvalidFaults, tt.want)
			}
			if strings.Contains(out.String(), "serving HTTP") {
				t.Errorf("run served before rejecting its settings:\n%s", out.String())
			}
		})
	}
}

// TestFaultKnobsTakeNoBaggageFaults proves why the knobs' endpoints skip
// the per-request faults: with fault injection on, a request whose
// baggage fails all of payments fails a charge, but not the knob an
// operator turns to end the drill. Consul is not needed: the service
// serves while its registration retries.
func TestFaultKnobsTakeNoBaggageFaults(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ports := testenv.FreePorts(t, 3)
	base, admin := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	env := map[string]string{"DATA_DIR": t.TempDir(), "LISTEN_ADDR": base, "ADMIN_LISTEN_ADDR": admin,
		"FAULT_INJECTION": "true", "CONSUL_HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", ports[2])}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + admin + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("service did not start within 10s")
		}
	}

	drill := func(method, url, body string) (int, string) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Baggage", "fault.payments=error")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if status, body := drill("POST", "http://"+base+"/charges", `{"order_id":"o1","amount_cents":100,"currency":"EUR","card_number":"4242424242424242"}`); status != 500 || !strings.Contains(body, `"code":"injected_fault"`) {
		t.Fatalf("charge under a baggage fault = %d %s, want 500 injected_fault", status, body)
	}
	if status, body := drill("PUT", "http://"+admin+"/admin/faults", `{"error_rate":0,"latency":"0s"}`); status != 200 {
		t.Errorf("PUT /admin/faults under a baggage fault = %d %s, want 200", status, body)
	}
	if status, body := drill("GET", "http://"+admin+"/admin/faults", ""); status != 200 {
		t.Errorf("GET /admin/faults under a baggage fault = %d %s, want 200", status, body)
	}
}

// newClient returns payments as orders sees it: found in Consul, with
// breakers and retries.
func newClient(t *testing.T, consul *testenv.Consul) payments.Service {
	t.Helper()
	tel := testenv.Telemetry(t, "orders")
	client, err := transport.NewConsulClient(consul.Addr)
	if err != nil {
		t.Fatal(err)
	}
	remote := transport.NewRemote(client, transport.ClientConfig{Service: payments.ServiceName}, tel)
	t.Cleanup(remote.Close)
	return payments.NewClient(remote.Factory())
}
