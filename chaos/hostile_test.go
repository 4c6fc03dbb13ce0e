package chaos

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"go.opentelemetry.io/otel/trace/noop"
)

// hostileAnswer is what a healthy platform answers to each kind of
// hostile input.
func hostileAnswer(k hostileKind) (int, string) {
	switch {
	case k.want == wantServed:
		return http.StatusOK, ""
	case k.name == "wrong password":
		return http.StatusTooManyRequests, "rate_limited"
	case k.name == "unknown SKU", k.name == "unknown order ID":
		return http.StatusNotFound, "not_found"
	case k.name == "oversized body", k.name == "oversized body, chunked":
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case k.name == "garbage bearer token", k.name == "forged token":
		return http.StatusUnauthorized, "unauthenticated"
	}
	return http.StatusBadRequest, "invalid_sku"
}

// hostileOn are the blocks a HostileClient run's hostile client sends in.
var hostileOn = windows{{7 * sec, 12 * sec}, {18 * sec, 23 * sec}, {29 * sec, 34 * sec}, {40 * sec, 45 * sec}}

// hostileRun is a healthy run of HostileClient: the customers' load for
// 48s, the hostile client beside them in hostileOn.
func hostileRun() *Run {
	run := newRun(shop(48).report(), 7*sec, 46*sec)
	for _, op := range []struct {
		op      loadgen.Op
		n       int
		latency time.Duration
	}{{loadgen.Browse, 24, 15 * time.Millisecond}, {loadgen.Login, 4, 90 * time.Millisecond}, {loadgen.Checkout, 8, 60 * time.Millisecond}, {loadgen.Orders, 4, 10 * time.Millisecond}} {
		run.tapRequests(op.op, 0, 48*sec, op.n, http.StatusOK, op.latency)
	}
	hr := &HostileRun{Source: "127.0.0.2", User: "6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f", On: hostileOn}
	kinds := hostileKinds()
	for _, k := range kinds {
		hr.Kinds = append(hr.Kinds, k.name)
	}
	i := 0
	for _, w := range hostileOn {
		for at := w.From; at < w.To; at += sec / hostileRate {
			k := kinds[i%len(kinds)]
			status, code := hostileAnswer(k)
			hr.Requests = append(hr.Requests, HostileRequest{Kind: k.name, At: at, Latency: 3 * time.Millisecond, Status: status, Code: code, TraceID: "0af7651916cd43dd8448eb211c80319c"})
			i++
		}
	}
	for _, k := range kinds {
		if !k.reaches {
			for range tracesPerKind {
				hr.Traces = append(hr.Traces, HostileTrace{Kind: k.name, TraceID: "0af7651916cd43dd8448eb211c80319c", Services: []string{"gateway"}})
			}
		}
	}
	run.Hostile = hr
	for _, caller := range []string{"gateway/1", "orders/1"} {
		run.addSeries(TransitionsSeries(caller), PanelTransitions, Counter, 48*sec, step(0, 4, 4))
	}
	run.addSeries(MemorySeries("gateway/1", "heap in use"), PanelMemory, Bytes, 48*sec, step(0, 9<<20, 9<<20))
	run.addSeries(MemorySeries("gateway/1", "RSS"), PanelMemory, Bytes, 48*sec, step(0, 40<<20, 40<<20))
	return run
}

// answer sets the status of every hostile request of kind.
func answer(run *Run, kind string, status int, code string, latency time.Duration) {
	for i, r := range run.Hostile.Requests {
		if r.Kind == kind {
			run.Hostile.Requests[i].Status, run.Hostile.Requests[i].Code, run.Hostile.Requests[i].Latency = status, code, latency
		}
	}
}

func TestHostileClientVerdicts(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		run := hostileRun()
		expectFailures(t, judgeHostileClient(run))
		v := summarizeHostile(run).values(run.Hostile)
		if v["hostile_requests"] != float64(len(run.Hostile.Requests)) || v["hostile_wrong_answers"] != 0 || v["customers_p99_baseline_ms"] != 60 || v["breaker_transitions"] != 0 {
			t.Errorf("figures for results.json: %v", v)
		}
	})
	t.Run("identifiers not validated at the gateway: hostile IDs reach the backends", func(t *testing.T) {
		run := hostileRun()
		// The services refuse them in turn, so the answers are still
		// 4xx: only the traces show where they went.
		for i, tr := range run.Hostile.Traces {
			switch tr.Kind {
			case "70 kB SKU", "SKU with NUL", "SKU with a bidi control", "SKU with encoded slashes":
				run.Hostile.Traces[i].Services = []string{"gateway", "inventory"}
			case "checkout of an invalid SKU":
				run.Hostile.Traces[i].Services = []string{"gateway", "orders"}
			}
		}
		expectFailures(t, judgeHostileClient(run), "reaches a backend")
	})
	t.Run("dishonest breakers: not-found answers open the gateway's inventory breakers", func(t *testing.T) {
		run := hostileRun()
		run.Series = run.Series[:0]
		run.addSeries(TransitionsSeries("gateway/1"), PanelTransitions, Counter, 48*sec,
			steps([]time.Duration{0, 8 * sec, 19 * sec, 30 * sec}, []float64{4, 6, 10, 14}))
		run.addSeries(TransitionsSeries("orders/1"), PanelTransitions, Counter, 48*sec, step(0, 4, 4))
		run.addSeries(MemorySeries("gateway/1", "heap in use"), PanelMemory, Bytes, 48*sec, step(0, 9<<20, 9<<20))
		run.addSeries(MemorySeries("gateway/1", "RSS"), PanelMemory, Bytes, 48*sec, step(0, 40<<20, 40<<20))
		run.Streams[0].Report = shop(48).fail(8, 13, loadgen.Browse, 3, "unavailable").report()
		answer(run, "unknown SKU", http.StatusServiceUnavailable, "unavailable", 3*time.Millisecond)
		expectFailures(t, judgeHostileClient(run), "changes state", "do not fail", "gets a 4xx")
	})
	t.Run("a breaker that opens and closes again between two samples still counts", func(t *testing.T) {
		run := hostileRun()
		run.SeriesNamed(TransitionsSeries("orders/1")).Points[150].V = 7 // and stays there
		for i := 151; i < len(run.SeriesNamed(TransitionsSeries("orders/1")).Points); i++ {
			run.SeriesNamed(TransitionsSeries("orders/1")).Points[i].V = 7
		}
		expectFailures(t, judgeHostileClient(run), "changes state")
	})
	t.Run("fault baggage honoured without the secret", func(t *testing.T) {
		run := hostileRun()
		answer(run, "fault baggage without the secret", http.StatusInternalServerError, "injected_fault", 3*time.Millisecond)
		expectFailures(t, judgeHostileClient(run), "gets a 4xx")
	})
	t.Run("a hostile request hangs", func(t *testing.T) {
		run := hostileRun()
		answer(run, "oversized body, chunked", 0, "no answer", hostileTimeout)
		expectFailures(t, judgeHostileClient(run), "gets a 4xx")
	})
	t.Run("a dot segment is redirected", func(t *testing.T) {
		run := hostileRun()
		answer(run, "dot-segment SKU (%2E%2E)", http.StatusMovedPermanently, "", 3*time.Millisecond)
		expectFailures(t, judgeHostileClient(run), "gets a 4xx")
	})
	t.Run("lines of one SKU are capped before merging: the hostile client buys", func(t *testing.T) {
		run := hostileRun()
		answer(run, "checkout past the line cap once merged", http.StatusCreated, "", 80*time.Millisecond)
		run.Hostile.Stores = HostileStores{Orders: 66, Reservations: 66, Charges: 66}
		expectFailures(t, judgeHostileClient(run), "gets a 4xx", "no trace of the hostile client")
	})
	t.Run("the stores cannot be read", func(t *testing.T) {
		run := hostileRun()
		run.Hostile.Stores.Err = "orders.db: no such table"
		expectFailures(t, judgeHostileClient(run), "no trace of the hostile client")
	})
	t.Run("the customers are slowed down", func(t *testing.T) {
		run := hostileRun()
		for i, r := range run.Main().Requests {
			if hostileOn.contains(r.At) && r.Op == loadgen.Checkout {
				run.Main().Requests[i].Latency = 400 * time.Millisecond
			}
		}
		expectFailures(t, judgeHostileClient(run), "logins aside, stays within")
	})
	t.Run("the customers' logins are slowed down by the flood", func(t *testing.T) {
		run := hostileRun()
		for i, r := range run.Main().Requests {
			if hostileOn.contains(r.At) && r.Op == loadgen.Login {
				run.Main().Requests[i].Latency = 600 * time.Millisecond
			}
		}
		expectFailures(t, judgeHostileClient(run), "logins keep a p99")
	})
	t.Run("the gateway keeps what hostile requests sent", func(t *testing.T) {
		run := hostileRun()
		run.Series = run.Series[:2]
		run.addSeries(MemorySeries("gateway/1", "heap in use"), PanelMemory, Bytes, 48*sec, func(at time.Duration) (float64, bool) {
			return 9<<20 + float64(max(at-7*sec, 0))/float64(sec)*(1<<20), true
		})
		run.addSeries(MemorySeries("gateway/1", "RSS"), PanelMemory, Bytes, 48*sec, step(0, 40<<20, 40<<20))
		expectFailures(t, judgeHostileClient(run), "memory stays flat")
	})
	t.Run("the traces cannot be read: nothing is proved", func(t *testing.T) {
		run := hostileRun()
		run.Hostile.Traces = run.Hostile.Traces[:3]
		expectFailures(t, judgeHostileClient(run), "reaches a backend")
	})
	t.Run("the hostile client never started", func(t *testing.T) {
		run := hostileRun()
		run.Hostile = nil
		run.Marks[0].Err = "sign up: 429"
		expectFailures(t, judgeHostileClient(run), "carried out as scheduled", "sent its inputs")
	})
	t.Run("the hostile client sent too little", func(t *testing.T) {
		run := hostileRun()
		run.Hostile.Requests = run.Hostile.Requests[:len(run.Hostile.Requests)/2]
		expectFailures(t, judgeHostileClient(run), "sent every kind")
	})
}

func TestHostileSource(t *testing.T) {
	for _, tc := range []struct {
		gateway, want string
		ok            bool
	}{
		{"http://127.0.0.1:8080", "127.0.0.2", true},
		{"http://127.0.0.2:8080", "127.0.0.3", true},
		{"http://10.0.0.7:8080", "", false},
		{"http://[::1]:8080", "", false},
	} {
		src, err := hostileSource(tc.gateway)
		if (err == nil) != tc.ok || err == nil && src.IP.String() != tc.want {
			t.Errorf("hostileSource(%s) = %v, %v; want %s (ok %v)", tc.gateway, src, err, tc.want, tc.ok)
		}
	}
}

func TestForgedTokenHasTheShapeOfARealOne(t *testing.T) {
	tok, err := forgeToken("6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f")
	if err != nil {
		t.Fatal(err)
	}
	if got := tokenSubject(tok); got != "6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f" {
		t.Errorf("subject %q", got)
	}
}

// The hostile user's orders, and their reservations and charges, are
// found in the services' own stores; other users' are not counted.
func TestReadHostileStores(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	tp := noop.NewTracerProvider()
	ord, err := orders.OpenStore(ctx, filepath.Join(dir, "orders", "orders.db"), tp)
	if err != nil {
		t.Fatal(err)
	}
	defer ord.Close()
	inv, err := inventory.OpenStore(ctx, filepath.Join(dir, "inventory", "inventory.db"), tp)
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	pay, err := payments.OpenStore(ctx, filepath.Join(dir, "payments", "payments.db"), tp)
	if err != nil {
		t.Fatal(err)
	}
	defer pay.Close()
	if _, err := inv.Seed(ctx, inventory.Catalogue); err != nil {
		t.Fatal(err)
	}

	const hostile, customer = "6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f", "0a1b2c3d-3a4b-4c5d-8e9f-6f1c1d2e4e5f"
	src := func(service string) string { return filepath.Join(dir, service, service+".db") }
	if got := readHostileStores(ctx, src, hostile); got != (HostileStores{}) {
		t.Fatalf("empty stores: %+v", got)
	}
	// orders offers no way to write an order but a checkout: write the
	// rows as it would.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "orders", "orders.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	for i, user := range []string{hostile, hostile, customer} {
		id := fmt.Sprintf("ord_%032d", i)
		if _, err := db.ExecContext(ctx, `INSERT INTO orders (id, user_id, idempotency_key, request_hash, status, step, total_cents, currency, created_at, updated_at)
			VALUES (?, ?, ?, 'h', 'CONFIRMED', 'done', 600, 'EUR', ?, ?)`, id, user, fmt.Sprintf("k%d", i), now.UnixMilli(), now.UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if _, err := inv.Reserve(ctx, id, []inventory.Item{{SKU: customerSKU, Quantity: 1}}, now, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if i != 1 {
			if _, _, err := pay.CreateCharge(ctx, payments.Charge{ID: fmt.Sprintf("ch_%d", i), OrderID: id, AmountCents: 600, Currency: "EUR",
				Status: payments.Succeeded, CardLast4: "4242", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := HostileStores{Orders: 2, Reservations: 2, Charges: 1}
	if got := readHostileStores(ctx, src, hostile); got != want {
		t.Errorf("readHostileStores = %+v, want %+v", got, want)
	}
	if got := readHostileStores(ctx, src, ""); got.Err == "" {
		t.Errorf("an unknown user reads as %+v, want an error", got)
	}
}

func TestHostileAnswerSeriesCountEachClass(t *testing.T) {
	reqs := []HostileRequest{
		{At: 0, Latency: 30 * time.Millisecond, Status: 400},
		{At: 10 * time.Millisecond, Latency: 5 * time.Millisecond, Status: 200},
		{At: 20 * time.Millisecond, Latency: time.Millisecond, Status: 503},
		{At: 30 * time.Millisecond, Latency: hostileTimeout},
	}
	got := map[string]float64{}
	for _, s := range hostileAnswerSeries(reqs) {
		for i := 1; i < len(s.Points); i++ {
			if s.Points[i].At < s.Points[i-1].At {
				t.Errorf("%s: points out of order", s.Name)
			}
		}
		got[s.Name] = s.Points[len(s.Points)-1].V
	}
	for name, n := range map[string]float64{"hostile client: 4xx": 1, "hostile client: 2xx": 1, "hostile client: 5xx": 1, "hostile client: other or none": 1} {
		if got[name] != n {
			t.Errorf("%s = %v, want %v", name, got[name], n)
		}
	}
}

// The hostile client signs up, then sends every kind of input from its
// own loopback address, open-loop, noting each answer; one that never
// comes is noted as none once its deadline passes.
func TestHostileClientSendsEveryKindFromItsOwnAddress(t *testing.T) {
	var (
		mu      sync.Mutex
		sources = map[string]int{}
		paths   = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		sources[host]++
		paths[r.Method+" "+r.URL.EscapedPath()]++
		mu.Unlock()
		switch {
		case r.URL.Path == "/api/users":
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"id":"6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"}`)
		case r.URL.Path == "/api/login":
			var body struct{ Password string }
			_ = json.NewDecoder(r.Body).Decode(&body)
			if body.Password != "hostile-client" {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"code":"unauthenticated"}`)
				return
			}
			fmt.Fprint(w, `{"token":"e30.eyJzdWIiOiJ4In0.c2ln"}`)
		case r.URL.EscapedPath() == "/api/products/%2E%2E":
			<-r.Context().Done() // hangs
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"code":"invalid_sku"}`)
		}
	}))
	defer srv.Close()

	h, err := newHostileClient(t.Context(), srv.URL)
	if err != nil {
		t.Skipf("no second loopback address to send from here: %v", err)
	}
	hr := &HostileRun{done: make(chan struct{}), start: time.Now()}
	kinds := hostileKinds()
	var round []hostileKind
	for _, k := range kinds {
		for range k.weight {
			round = append(round, k)
		}
	}
	hr.send(t.Context(), h, round, 100, 2, 150*time.Millisecond, 300*time.Millisecond)
	<-hr.done

	if len(hr.Requests)+hr.Skipped != 30 {
		t.Errorf("%d requests sent and %d skipped, want 30 in all", len(hr.Requests), hr.Skipped)
	}
	if len(hr.blocks) != 2 || hr.blocks[1][0].Sub(hr.blocks[0][0]) != 300*time.Millisecond {
		t.Errorf("blocks %v, want 2, 300ms apart", hr.blocks)
	}
	// Judged by when each was due: on a loaded machine the send itself
	// may come a little after.
	for _, r := range hr.Requests {
		if off := r.due.Sub(hr.start); off >= 150*time.Millisecond && off < 300*time.Millisecond {
			t.Errorf("a request due %s after the start, between the blocks", off)
		}
	}
	sent := map[string]int{}
	for _, r := range hr.Requests {
		sent[r.Kind]++
		switch r.Kind {
		case "dot-segment SKU (%2E%2E)":
			if r.Status != 0 || r.Latency < hostileTimeout {
				t.Errorf("the hanging request: status %d after %s, want none after %s", r.Status, r.Latency, hostileTimeout)
			}
		case "wrong password":
			if r.Status != http.StatusUnauthorized || r.Code != "unauthenticated" {
				t.Errorf("wrong password: %d %s", r.Status, r.Code)
			}
		default:
			if r.Status != http.StatusBadRequest || r.Code != "invalid_sku" {
				t.Errorf("%s: %d %s", r.Kind, r.Status, r.Code)
			}
		}
	}
	// 30 requests are more than one round: every kind is in it.
	for _, k := range kinds {
		if sent[k.name] == 0 {
			t.Errorf("no %s sent", k.name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sources) != 1 || sources["127.0.0.2"] == 0 {
		t.Errorf("sent from %v, want 127.0.0.2 only", sources)
	}
	if paths["GET /api/orders/%2E"] == 0 || paths["GET /api/products/GH-MUG-01%E2%80%AE"] == 0 {
		t.Errorf("odd paths not sent as written: %v", paths)
	}
}

// The allowance for sampling noise is what sampling moves a p99 by, no
// more: measured against many independent samples of one distribution.
func TestP99SamplingNoiseIsTheSpreadOfP99s(t *testing.T) {
	same := make([]Request, 730)
	for i := range same {
		same[i].Latency = 20 * time.Millisecond
	}
	if got := p99SamplingNoise(same); got != 0 {
		t.Errorf("requests all alike: noise %s, want 0", got)
	}

	// Latencies with a long tail, as a loaded machine answers: 10 ms plus
	// an exponential of mean 5 ms.
	rng := mathrand.New(mathrand.NewPCG(7, 8))
	draw := func() []Request {
		reqs := make([]Request, 730)
		for i := range reqs {
			reqs[i].Latency = 10*time.Millisecond + time.Duration(rng.ExpFloat64()*float64(5*time.Millisecond))
		}
		return reqs
	}
	var p99s []float64
	for range 300 {
		p, _ := latencyPercentile(draw(), 99)
		p99s = append(p99s, float64(p))
	}
	var mean, sq float64
	for _, p := range p99s {
		mean += p / float64(len(p99s))
	}
	for _, p := range p99s {
		sq += (p - mean) * (p - mean) / float64(len(p99s))
	}
	want := 2 * math.Sqrt2 * math.Sqrt(sq) // two sds of a difference of two p99s
	for range 5 {
		got := float64(p99SamplingNoise(draw()))
		t.Logf("bootstrap noise %s; from 300 independent samples %s", time.Duration(got), time.Duration(want))
		if got < 0.4*want || got > 2.5*want {
			t.Errorf("noise %s, want about %s (two standard deviations of the difference of two p99s)", time.Duration(got), time.Duration(want))
		}
	}
}
