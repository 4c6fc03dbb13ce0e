package chaos

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
)

// 8. A hostile client beside the customers.
//
// One client sends what a careless or malicious caller sends: dot
// segments, huge and odd identifiers, valid-looking IDs of things that do
// not exist, a flood of wrong passwords, fault baggage without the secret
// that allows it, oversized and malformed bodies, bad and forged tokens,
// checkouts nobody could fulfil. The platform must answer each with a
// 4xx at the edge (or, for what is only unknown, from the service that
// owns it) and the customers beside it must not notice.

// Bounds and shape of HostileClient.
const (
	// hostileRate is what the hostile client sends, per second: more than
	// the customers' load, well under the gateway's per-client limit in
	// the local stack, so that it is the inputs that are hostile and not
	// the volume.
	hostileRate = 10
	// The hostile client sends in hostileBlocks blocks of hostileBlock,
	// and the customers' baseline is the hostileBlock before each: both
	// p99s rest on as many requests (about 800 each at 40 req/s), and
	// whatever else loads this shared machine meanwhile weighs on both
	// alike, which one baseline phase followed by one hostile phase cannot
	// promise. The hostileSettle after each block belongs to neither:
	// answers still in flight, the garbage they left.
	hostileBlocks = 4
	hostileBlock  = 5 * time.Second
	hostileSettle = time.Second
	// hostilePhase is how long it sends in all.
	hostilePhase = hostileBlocks * hostileBlock
	// hostileWarmup is the start of the run left out of the baseline:
	// connections and caches warm up.
	hostileWarmup = 2 * time.Second
	// hostileTimeout bounds each hostile request, answer included: a
	// request not answered by then hung.
	hostileTimeout = 2 * time.Second
	// hostileInFlight bounds the hostile requests awaiting answers; one
	// due while that many wait is not sent (and counted).
	hostileInFlight = 32
	// cleanP99Slack is how much the customers' p99 may rise while the
	// hostile client sends: 20% of the baseline's. Logins are judged on
	// their own (loginP99Bound): each is one bcrypt comparison, about a
	// core for tens of milliseconds, and every comparison the login
	// limits still allow the flood (the per-email burst) shares the same
	// two cores, so on this machine a few overlapping ones move the
	// logins' p99 by more than 20% whatever the limits.
	cleanP99Slack = 0.20
	// loginP99Bound is what the issue asks of other customers' logins
	// during a flood of wrong ones.
	loginP99Bound = 500 * time.Millisecond
	// hostileHeapGrowth and hostileRSSGrowth bound the gateway's memory
	// growth (highest sample from the hostile client's first block to the
	// end of its last, over the highest in the baseline before the first). Bodies are capped before they are read and
	// identifiers refused before they are kept, so nothing should grow;
	// the bounds leave room for the garbage collector's rhythm, and
	// buffering the oversized bodies (1.5 MiB each, 3 a second) would
	// exceed them within seconds.
	hostileHeapGrowth = 16 << 20
	hostileRSSGrowth  = 32 << 20
	// tracesPerKind is how many traces of each input that must stop at
	// the gateway are read back from Jaeger.
	tracesPerKind = 2
	// oversizedBody is larger than any body the API accepts (1 MiB).
	oversizedBody = 1536 << 10
	// hugeIdentifier is the length of the huge SKU: far past the 64-byte
	// grammar, well under the HTTP server's header limit, so that it is
	// the gateway's rule and not the HTTP library that refuses it.
	hugeIdentifier = 70_000
)

// What a hostile input must get.
const (
	// wantRefused: a 4xx.
	wantRefused = "refused"
	// wantServed: a 2xx, as if the request carried nothing hostile (fault
	// baggage without the secret is simply dropped); a 429 is fine too.
	wantServed = "served"
)

// A hostileKind is one class of hostile input.
type hostileKind struct {
	name string
	want string
	// reaches says the input may legitimately reach a backend (an unknown
	// but well-formed SKU is the inventory's to answer). Every other one
	// must stop at the gateway, which its trace proves.
	reaches bool
	// weight is how many of each round of requests are of this kind.
	weight int
	build  func(h *hostileClient, n int) (*http.Request, error)
}

// hostileKinds are the hostile inputs, in the order of one round.
func hostileKinds() []hostileKind {
	get := func(path string, auth bool) func(h *hostileClient, n int) (*http.Request, error) {
		return func(h *hostileClient, n int) (*http.Request, error) {
			req, err := http.NewRequest(http.MethodGet, h.gateway+path, nil)
			if err == nil && auth {
				req.Header.Set("Authorization", "Bearer "+h.token)
			}
			return req, err
		}
	}
	checkout := func(items func(n int) any) func(h *hostileClient, n int) (*http.Request, error) {
		return func(h *hostileClient, n int) (*http.Request, error) {
			b, err := json.Marshal(map[string]any{"items": items(n), "card_number": approvingCard})
			if err != nil {
				return nil, err
			}
			return h.post("/api/orders", bytes.NewReader(b), h.token)
		}
	}
	return []hostileKind{
		{name: "dot-segment SKU (%2E%2E)", want: wantRefused, weight: 1, build: get("/api/products/%2E%2E", false)},
		{name: "dot-segment order ID (%2E)", want: wantRefused, weight: 1, build: get("/api/orders/%2E", true)},
		{name: "70 kB SKU", want: wantRefused, weight: 1, build: get("/api/products/"+strings.Repeat("A", hugeIdentifier), false)},
		{name: "SKU with NUL", want: wantRefused, weight: 1, build: get("/api/products/GH-MUG-01%00", false)},
		{name: "SKU with a bidi control", want: wantRefused, weight: 1, build: get("/api/products/GH-MUG-01%E2%80%AE", false)},
		{name: "SKU with encoded slashes", want: wantRefused, weight: 1, build: get("/api/products/..%2F..%2Fadmin%2Ffaults", false)},
		{name: "order ID with encoded slashes", want: wantRefused, weight: 1, build: get("/api/orders/..%2F..%2Fhealthz", true)},
		{name: "unknown SKU", want: wantRefused, reaches: true, weight: 1, build: func(h *hostileClient, n int) (*http.Request, error) {
			return get(fmt.Sprintf("/api/products/GH-NONE-%04d", n), false)(h, n)
		}},
		{name: "unknown order ID", want: wantRefused, reaches: true, weight: 1, build: func(h *hostileClient, n int) (*http.Request, error) {
			return get("/api/orders/ord_"+randomHex(16), true)(h, n)
		}},
		// The flood weighs most: it is what costs users bcrypt work.
		{name: "wrong password", want: wantRefused, reaches: true, weight: 4, build: func(h *hostileClient, n int) (*http.Request, error) {
			b, err := json.Marshal(map[string]string{"email": h.email, "password": fmt.Sprintf("wrong-%06d", n)})
			if err != nil {
				return nil, err
			}
			return h.post("/api/login", bytes.NewReader(b), "")
		}},
		{name: "fault baggage without the secret", want: wantServed, reaches: true, weight: 1, build: func(h *hostileClient, n int) (*http.Request, error) {
			req, err := get("/api/products", false)(h, n)
			if err == nil {
				req.Header.Set("Baggage", "fault.inventory=error,fault.users=error,fault.orders=error")
			}
			return req, err
		}},
		{name: "oversized body", want: wantRefused, weight: 1, build: func(h *hostileClient, n int) (*http.Request, error) {
			return h.post("/api/orders", bytes.NewReader(h.oversized), h.token)
		}},
		{name: "oversized body, chunked", want: wantRefused, weight: 1, build: func(h *hostileClient, n int) (*http.Request, error) {
			// A reader of unknown length is sent chunked: no
			// Content-Length to refuse it by, the body must be cut.
			return h.post("/api/orders", io.MultiReader(bytes.NewReader(h.oversized)), h.token)
		}},
		{name: "malformed JSON", want: wantRefused, weight: 1, build: func(h *hostileClient, n int) (*http.Request, error) {
			return h.post("/api/orders", strings.NewReader(`{"items":[{"sku":"GH-MUG-01","quantity":`), h.token)
		}},
		{name: "garbage bearer token", want: wantRefused, weight: 1, build: func(h *hostileClient, n int) (*http.Request, error) {
			req, err := get("/api/orders", false)(h, n)
			if err == nil {
				req.Header.Set("Authorization", "Bearer not.a-token")
			}
			return req, err
		}},
		{name: "forged token", want: wantRefused, weight: 1, build: func(h *hostileClient, n int) (*http.Request, error) {
			req, err := get("/api/orders", false)(h, n)
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+h.forged)
			}
			return req, err
		}},
		{name: "checkout of an invalid SKU", want: wantRefused, weight: 1, build: checkout(func(int) any {
			return []map[string]any{{"sku": "..", "quantity": 1}}
		})},
		{name: "checkout of a huge quantity", want: wantRefused, reaches: true, weight: 1, build: checkout(func(int) any {
			return []map[string]any{{"sku": "GH-MUG-01", "quantity": 1_000_000_000}}
		})},
		{name: "checkout past the line cap once merged", want: wantRefused, reaches: true, weight: 1, build: checkout(func(int) any {
			items := make([]map[string]any, 11)
			for i := range items {
				items[i] = map[string]any{"sku": customerSKU, "quantity": 100}
			}
			return items
		})},
	}
}

// oversized is a checkout body past every limit, well-formed JSON so that
// only its size is wrong.
func oversized() []byte {
	return []byte(`{"card_number":"` + approvingCard + `","items":[],"note":"` + strings.Repeat("x", oversizedBody) + `"}`)
}

// HostileClient runs the customers' steady load and, in blocks, a
// hostile client beside it.
func HostileClient() Experiment {
	var kinds []string
	for _, k := range hostileKinds() {
		kinds = append(kinds, k.name)
	}
	start := hostileWarmup + hostileBlock
	end := start + hostileBlocks*hostileBlock + (hostileBlocks-1)*(hostileBlock+hostileSettle)
	return Experiment{
		Name:  "hostile-client",
		Title: "A hostile client beside the customers",
		Hypothesis: fmt.Sprintf("Identifiers are checked at the edge and breakers count only a peer's own faults, so a "+
			"hostile client (from its own address, %d req/s in %d blocks of %s: %s) cannot hurt other customers: the "+
			"customers' requests do not fail and their p99 while it sends stays within %s of the baseline measured "+
			"over the %s before each block; every "+
			"hostile request gets a 4xx (fault baggage without the secret is served as if it carried none), none a 5xx "+
			"or no answer within %s; no circuit breaker changes state (the gateway and orders are the only callers); no hostile input that "+
			"must stop at the gateway reaches a backend (their traces hold gateway spans only); the stores hold no "+
			"order, reservation or charge of the hostile user; and the gateway's heap grows < %d MiB, its RSS < %d MiB.",
			hostileRate, hostileBlocks, hostileBlock, strings.Join(kinds, ", "), percent(cleanP99Slack), hostileBlock, hostileTimeout,
			hostileHeapGrowth>>20, hostileRSSGrowth>>20),
		Streams: mainStream(steadyLoad(end + 2*time.Second)),
		Steps: []Step{
			{At: start, Mark: MarkFault, Action: StartHostile(hostileRate, hostileBlocks, hostileBlock, 2*hostileBlock+hostileSettle)},
			{At: end + time.Second, Mark: MarkRecover, Action: StopHostile()},
		},
		Probes: []Probe{
			// Only the gateway and orders call other services.
			BreakerTransitions("gateway", "orders"),
			Breakers("gateway/1", "inventory"),
			Memory("gateway/1"),
		},
		Measure: measureHostile,
		Judge:   judgeHostileClient,
	}
}

// HostileRun is what the hostile client sent and what came of it.
type HostileRun struct {
	// Source is the address it sent from: another loopback address than
	// the customers', so that per-client limits tell them apart.
	Source string
	User   string // the hostile user's ID
	// Kinds are the kinds of input it sends, in the order of one round.
	Kinds []string
	// On are the blocks of time it sent in, on the main clock.
	On       []Window
	Requests []HostileRequest
	// Skipped counts requests due while hostileInFlight awaited answers.
	Skipped int
	// Traces are traces of inputs that must stop at the gateway, read
	// back from Jaeger.
	Traces []HostileTrace
	// Stores is what the services' stores hold of the hostile user.
	Stores HostileStores

	done   chan struct{} // closed when the last request is answered
	err    error         // why it could not start
	start  time.Time     // when it began sending
	blocks [][2]time.Time
}

// A HostileRequest is one hostile request as the hostile client saw it.
type HostileRequest struct {
	Kind    string
	At      time.Duration // sent, on the main clock
	Latency time.Duration
	Status  int    // 0 when there was no answer within hostileTimeout
	Code    string // the problem+json code, if any
	TraceID string

	sent time.Time
	due  time.Time // when the schedule had it sent; sent is a little later
}

// A HostileTrace is the trace of one hostile request: which services it
// reached.
type HostileTrace struct {
	Kind     string
	TraceID  string
	Services []string
	Err      string // the trace could not be read
}

// HostileStores counts what the stores hold of the hostile user.
type HostileStores struct {
	Orders, Reservations, Charges int
	Err                           string
}

// hostileClient speaks the public API from its own address.
type hostileClient struct {
	gateway string
	http    *http.Client
	email   string
	token   string
	user    string
	forged  string // a token in the right shape, signed by a key of its own
	// oversized is built once: the client's own work must not load the
	// machine whose latency it is measured against.
	oversized []byte
}

// hostileSource is the address the hostile client sends from: 127.0.0.2
// when the gateway listens on IPv4 loopback (on Linux the whole of
// 127.0.0.0/8 is the loopback interface), so the gateway sees two clients.
func hostileSource(gateway string) (*net.TCPAddr, error) {
	u, err := url.Parse(gateway)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("the gateway %s is not on IPv4 loopback: no second client address to send from", gateway)
	}
	src := net.IPv4(127, 0, 0, 2)
	if ip.Equal(src) {
		src = net.IPv4(127, 0, 0, 3)
	}
	return &net.TCPAddr{IP: src}, nil
}

func newHostileClient(ctx context.Context, gateway string) (*hostileClient, error) {
	src, err := hostileSource(gateway)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{LocalAddr: src, Timeout: hostileTimeout}
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConns:        hostileInFlight,
		MaxIdleConnsPerHost: hostileInFlight,
		IdleConnTimeout:     30 * time.Second,
	}
	h := &hostileClient{
		gateway:   gateway,
		http:      &http.Client{Transport: tr, Timeout: hostileTimeout},
		email:     fmt.Sprintf("hostile-%s@example.com", randomHex(6)),
		oversized: oversized(),
	}
	// A real account: the dot-segment order ID and the checkouts need a
	// valid token, and the login flood hits an account that exists.
	const password = "hostile-client"
	var user struct {
		ID string `json:"id"`
	}
	if status, err := h.setup(ctx, "/api/users", map[string]string{"email": h.email, "password": password, "name": "Hostile client"}, &user); err != nil || status != http.StatusCreated {
		return nil, fmt.Errorf("sign up: %d %v", status, err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if status, err := h.setup(ctx, "/api/login", map[string]string{"email": h.email, "password": password}, &tok); err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("login: %d %v", status, err)
	}
	h.token, h.user = tok.Token, user.ID
	if h.user == "" {
		h.user = tokenSubject(tok.Token)
	}
	if h.forged, err = forgeToken(h.user); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *hostileClient) post(path string, body io.Reader, token string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, h.gateway+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "hostile-"+randomHex(12))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

// setup sends one of the hostile client's own setup calls.
func (h *hostileClient) setup(ctx context.Context, path string, body, out any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := h.post(path, bytes.NewReader(b), "")
	if err != nil {
		return 0, err
	}
	resp, err := h.http.Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

// tokenSubject reads the subject of a JWT without verifying it: the
// hostile client only needs to know its own user ID.
func tokenSubject(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(b, &claims)
	return claims.Sub
}

// forgeToken makes an EdDSA JWT for subject, signed by a key nobody
// trusts: the shape is right, the signature is not.
func forgeToken(subject string) (string, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"EdDSA","typ":"JWT"}`))
	claims, err := json.Marshal(map[string]any{"sub": subject, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		return "", err
	}
	signed := header + "." + enc(claims)
	return signed + "." + enc(ed25519.Sign(key, []byte(signed))), nil
}

// send issues one hostile request and notes its outcome.
func (h *hostileClient) send(ctx context.Context, k hostileKind, n int) HostileRequest {
	rec := HostileRequest{Kind: k.name, sent: time.Now()}
	req, err := k.build(h, n)
	if err != nil {
		rec.Code = "build: " + err.Error()
		return rec
	}
	ctx, cancel := context.WithTimeout(ctx, hostileTimeout)
	defer cancel()
	resp, err := h.http.Do(req.WithContext(ctx))
	if err != nil {
		rec.Latency = time.Since(rec.sent)
		rec.Code = "no answer"
		return rec
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	rec.Latency, rec.Status, rec.TraceID = time.Since(rec.sent), resp.StatusCode, resp.Header.Get("X-Trace-Id")
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(b, &p) == nil {
		rec.Code = p.Code
	}
	return rec
}

// StartHostile signs the hostile client up and starts it sending, rate
// requests a second cycling through the hostile kinds, in blocks blocks
// of block, one every period; it returns once it is sending. StopHostile
// waits for it to finish.
func StartHostile(rate float64, blocks int, block, period time.Duration) Action {
	return Action{
		Name: fmt.Sprintf("start the hostile client (%g req/s, %d × %s every %s)", rate, blocks, block, period),
		Do: func(ctx context.Context, env *Env, run *Run) error {
			hr := &HostileRun{done: make(chan struct{})}
			run.Hostile = hr
			h, err := newHostileClient(ctx, env.Stack.GatewayURL)
			if err != nil {
				hr.err = err
				close(hr.done)
				return err
			}
			src, _ := hostileSource(env.Stack.GatewayURL)
			hr.Source, hr.User = src.IP.String(), h.user
			var round []hostileKind
			for _, k := range hostileKinds() {
				hr.Kinds = append(hr.Kinds, k.name)
				for range k.weight {
					round = append(round, k)
				}
			}
			hr.start = time.Now()
			go hr.send(ctx, h, round, rate, blocks, block, period)
			return nil
		},
	}
}

// send runs the hostile load open-loop: in each block, one request every
// 1/rate, each in its own goroutine, at most hostileInFlight awaiting
// answers.
func (hr *HostileRun) send(ctx context.Context, h *hostileClient, round []hostileKind, rate float64, blocks int, block, period time.Duration) {
	defer close(hr.done)
	defer h.http.CloseIdleConnections()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		slots = make(chan struct{}, hostileInFlight)
		gap   = time.Duration(float64(time.Second) / rate)
		timer = time.NewTimer(0)
		n     = 0 // requests due so far, across blocks
	)
	defer timer.Stop()
	defer wg.Wait()
	for b := range blocks {
		from := hr.start.Add(time.Duration(b) * period)
		hr.blocks = append(hr.blocks, [2]time.Time{from, from.Add(block)})
		for i := 0; time.Duration(i)*gap < block; i, n = i+1, n+1 {
			due := from.Add(time.Duration(i) * gap)
			timer.Reset(time.Until(due))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			select {
			case slots <- struct{}{}:
			default:
				mu.Lock()
				hr.Skipped++
				mu.Unlock()
				continue
			}
			k, seq := round[n%len(round)], n
			wg.Go(func() {
				defer func() { <-slots }()
				rec := h.send(ctx, k, seq)
				rec.due = due
				mu.Lock()
				hr.Requests = append(hr.Requests, rec)
				mu.Unlock()
			})
		}
	}
}

// StopHostile waits until the hostile client has had every answer.
func StopHostile() Action {
	return Action{
		Name: "the hostile client stops",
		Do: func(ctx context.Context, env *Env, run *Run) error {
			hr := run.Hostile
			if hr == nil {
				return errors.New("the hostile client never started")
			}
			select {
			case <-hr.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			return hr.err
		},
	}
}

// measureHostile puts the hostile requests on the main clock, reads back
// the traces of the first few of each kind that must stop at the gateway,
// and reads what the stores hold of the hostile user.
func measureHostile(ctx context.Context, env *Env, run *Run) error {
	hr := run.Hostile
	if hr == nil || hr.err != nil {
		return errors.New("the hostile client did not run")
	}
	// StopHostile waited for it, unless the load ended before that step.
	select {
	case <-hr.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	slices.SortFunc(hr.Requests, func(a, b HostileRequest) int { return a.sent.Compare(b.sent) })
	for i := range hr.Requests {
		hr.Requests[i].At = hr.Requests[i].sent.Sub(run.Started)
	}
	for _, b := range hr.blocks {
		hr.On = append(hr.On, Window{b[0].Sub(run.Started), b[1].Sub(run.Started)})
	}
	run.Series = append(run.Series, hostileAnswerSeries(hr.Requests)...)
	mustStop := map[string]bool{}
	for _, k := range hostileKinds() {
		mustStop[k.name] = !k.reaches
	}
	read := map[string]int{}
	for _, r := range hr.Requests {
		if !mustStop[r.Kind] || r.TraceID == "" || read[r.Kind] == tracesPerKind {
			continue
		}
		read[r.Kind]++
		hr.Traces = append(hr.Traces, env.hostileTrace(ctx, r))
	}
	hr.Stores = readHostileStores(ctx, env.Stack.StoreSource, hr.User)
	if len(hr.Requests) > 0 {
		for name, v := range summarizeHostile(run).values(hr) {
			run.SetValue(name, v)
		}
	}
	return nil
}

// PanelHostile is the plot panel of the hostile client's answers.
const PanelHostile = "The hostile client's answers per second"

// hostileAnswerSeries counts the hostile requests answered so far, by
// class of answer, one point per request, for the plot.
func hostileAnswerSeries(reqs []HostileRequest) []*Series {
	classes := []string{"4xx", "2xx", "5xx", "other or none"}
	class := func(status int) string {
		switch status / 100 {
		case 4:
			return "4xx"
		case 2:
			return "2xx"
		case 5:
			return "5xx"
		}
		return "other or none"
	}
	byClass := map[string]*Series{}
	var out []*Series
	for _, c := range classes {
		s := &Series{Name: "hostile client: " + c, Panel: PanelHostile, Kind: Counter}
		byClass[c] = s
		out = append(out, s)
	}
	answered := slices.Clone(reqs)
	slices.SortFunc(answered, func(a, b HostileRequest) int { return cmp.Compare(a.At+a.Latency, b.At+b.Latency) })
	counts := map[string]float64{}
	for _, r := range answered {
		c := class(r.Status)
		counts[c]++
		for _, name := range classes {
			byClass[name].Points = append(byClass[name].Points, Point{At: r.At + r.Latency, V: counts[name]})
		}
	}
	return out
}

// hostileTrace reads r's trace back from Jaeger and names the services
// it reached. The requests read are the first of their kind, sent many
// seconds before: every process has exported their spans by now (every
// 500ms in the stack), so a trace that looks complete is.
func (e *Env) hostileTrace(ctx context.Context, r HostileRequest) HostileTrace {
	ht := HostileTrace{Kind: r.Kind, TraceID: r.TraceID}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t, err := e.Jaeger.Await(tctx, r.TraceID, 250*time.Millisecond)
	if err != nil {
		ht.Err = err.Error()
	}
	if t != nil {
		ht.Services = t.Services()
	}
	return ht
}

// BreakerTransitions samples, for every instance of the calling
// services, the sum of its breakers' state changes
// (glasshouse_client_breaker_transitions_total).
func BreakerTransitions(callers ...string) Probe {
	return Probe{Panel: PanelTransitions, Kind: Counter, Sample: func(ctx context.Context, env *Env) (map[string]float64, error) {
		out := map[string]float64{}
		for _, svc := range callers {
			for _, p := range env.Stack.Instances(svc) {
				m, err := env.metricsOf(ctx, p.Name)
				if err != nil {
					return nil, err
				}
				v, _ := m.sum("glasshouse_client_breaker_transitions_total", nil)
				out[TransitionsSeries(p.Name)] = v
			}
		}
		return out, nil
	}}
}

// PanelTransitions is the plot panel of BreakerTransitions.
const PanelTransitions = "Circuit breaker transitions per second"

// TransitionsSeries names a series of BreakerTransitions.
func TransitionsSeries(caller string) string { return caller + " breaker transitions" }

// hostileSummary is what judgeHostileClient judges, computed from a run
// alone; measureHostile also records it in the run's values, so that the
// figures are in results.json.
type hostileSummary struct {
	during, before windows // the hostile blocks, and as long before each
	sent           map[string]int
	missing        []string // kinds never sent

	customers      Tally
	p99Before, p99 time.Duration
	// p99Noise is how far two p99s of quiet windows of this machine may
	// differ without any hostile client (see summarizeHostile)
	p99Noise time.Duration
	// the customers' logins, judged on their own
	loginP99Before, loginP99 time.Duration
	nLogins                  int
	nBefore, nDuring         int
	perOp                    []string

	refused, served, bad int
	refusedCodes         map[string]int
	wrong                []string // examples of wrong answers
	slowest              time.Duration

	transitions float64
	perCaller   []string

	tracesRead, stopKinds int
	reached               []string

	heapBefore, heapDuring, rssBefore, rssDuring float64
	memoryRead                                   bool
}

func summarizeHostile(run *Run) hostileSummary {
	hr := run.Hostile
	sum := hostileSummary{sent: map[string]int{}, refusedCodes: map[string]int{}}
	for _, r := range hr.Requests {
		sum.sent[r.Kind]++
	}
	sum.during = hr.On
	if len(sum.during) == 0 { // not recorded: from the first request to the last answer
		first, last := hr.Requests[0].At, hr.Requests[0].At
		for _, r := range hr.Requests {
			first, last = min(first, r.At), max(last, r.At+r.Latency)
		}
		sum.during = windows{{first, last}}
	}
	prev := hostileWarmup - hostileSettle
	for _, w := range sum.during {
		sum.before = append(sum.before, Window{max(w.From-w.Len(), prev+hostileSettle), w.From})
		prev = w.To
	}
	for _, k := range hr.Kinds {
		if sum.sent[k] == 0 {
			sum.missing = append(sum.missing, k)
		}
	}

	// The customers.
	main := run.Main()
	tl := main.Report.Timeline
	sum.customers = Count(tl, "", Window{0, run.end()})
	sum.p99Before, sum.nBefore = latencyPercentile(sum.before.requestsBut(main, loadgen.Login), 99)
	sum.p99, sum.nDuring = latencyPercentile(sum.during.requestsBut(main, loadgen.Login), 99)
	// How far two quiet windows of this machine differ: the baseline's
	// blocks taken alternately, each half's p99; and what sampling alone
	// moves a p99 of this many requests by (p99SamplingNoise). One split
	// in two is a single draw of the noise, small in a run in four; the
	// bootstrap is not.
	var even, odd windows
	for i, w := range sum.before {
		if i%2 == 0 {
			even = append(even, w)
		} else {
			odd = append(odd, w)
		}
	}
	pEven, _ := latencyPercentile(even.requestsBut(main, loadgen.Login), 99)
	pOdd, _ := latencyPercentile(odd.requestsBut(main, loadgen.Login), 99)
	sum.p99Noise = max(pEven-pOdd, pOdd-pEven, p99SamplingNoise(sum.before.requestsBut(main, loadgen.Login)))
	sum.loginP99Before, _ = latencyPercentile(sum.before.requests(main, loadgen.Login), 99)
	sum.loginP99, sum.nLogins = latencyPercentile(sum.during.requests(main, loadgen.Login), 99)
	for _, op := range loadgen.Ops() {
		b, _ := latencyPercentile(sum.before.requests(main, op), 99)
		d, n := latencyPercentile(sum.during.requests(main, op), 99)
		if n > 0 {
			sum.perOp = append(sum.perOp, fmt.Sprintf("%s %s→%s", op, ms(b), ms(d)))
		}
	}

	// The hostile client's answers.
	want := map[string]string{}
	for _, k := range hostileKinds() {
		want[k.name] = k.want
		if !k.reaches && sum.sent[k.name] > 0 {
			sum.stopKinds++
		}
	}
	for _, r := range hr.Requests {
		sum.slowest = max(sum.slowest, r.Latency)
		switch ok := hostileAnswerOK(want[r.Kind], r.Status); {
		case ok && r.Status/100 == 4:
			sum.refused++
			sum.refusedCodes[cmpCode(r)]++
		case ok:
			sum.served++
		default:
			sum.bad++
			if len(sum.wrong) < 6 {
				sum.wrong = append(sum.wrong, fmt.Sprintf("%s → %s", r.Kind, describeStatus(r)))
			}
		}
	}

	// Breakers.
	for _, s := range run.SeriesInPanel(PanelTransitions) {
		n := s.Increase(Window{0, run.end() + time.Minute})
		sum.transitions += n
		sum.perCaller = append(sum.perCaller, fmt.Sprintf("%s %.0f", strings.TrimSuffix(s.Name, " breaker transitions"), n))
	}

	// Backends.
	for _, t := range hr.Traces {
		if t.Err != "" && len(t.Services) == 0 {
			continue
		}
		sum.tracesRead++
		if beyond := slices.DeleteFunc(slices.Clone(t.Services), func(s string) bool { return s == "gateway" }); len(beyond) > 0 {
			sum.reached = append(sum.reached, fmt.Sprintf("%s → %s", t.Kind, strings.Join(beyond, ", ")))
		}
	}

	// Memory.
	heap, rss := run.SeriesNamed(MemorySeries("gateway/1", "heap in use")), run.SeriesNamed(MemorySeries("gateway/1", "RSS"))
	var ok [4]bool
	// Memory is compared from before the first block to the end of the
	// last: what the hostile client left behind adds up across blocks.
	first := sum.before[:1]
	since := windows{{sum.during[0].From, sum.during[len(sum.during)-1].To}}
	sum.heapBefore, ok[0] = first.max(heap)
	sum.heapDuring, ok[1] = since.max(heap)
	sum.rssBefore, ok[2] = first.max(rss)
	sum.rssDuring, ok[3] = since.max(rss)
	sum.memoryRead = ok == [4]bool{true, true, true, true}
	return sum
}

// values are the summary's figures, by name, for results.json.
func (sum hostileSummary) values(hr *HostileRun) map[string]float64 {
	return map[string]float64{
		"hostile_requests":                float64(len(hr.Requests)),
		"hostile_refused_4xx":             float64(sum.refused),
		"hostile_served_2xx":              float64(sum.served),
		"hostile_wrong_answers":           float64(sum.bad),
		"hostile_slowest_answer_ms":       msValue(sum.slowest),
		"customers_failed":                float64(sum.customers.Unserved()),
		"customers_due":                   float64(sum.customers.Due()),
		"customers_p99_baseline_ms":       msValue(sum.p99Before),
		"customers_p99_hostile_ms":        msValue(sum.p99),
		"breaker_transitions":             sum.transitions,
		"traces_read":                     float64(sum.tracesRead),
		"traces_reaching_a_backend":       float64(len(sum.reached)),
		"hostile_orders":                  float64(hr.Stores.Orders),
		"hostile_reservations":            float64(hr.Stores.Reservations),
		"hostile_charges":                 float64(hr.Stores.Charges),
		"gateway_heap_max_baseline_bytes": sum.heapBefore,
		"gateway_heap_max_hostile_bytes":  sum.heapDuring,
		"gateway_rss_max_baseline_bytes":  sum.rssBefore,
		"gateway_rss_max_hostile_bytes":   sum.rssDuring,
	}
}

func msValue(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func judgeHostileClient(run *Run) []Check {
	checks := []Check{scheduled(run)}
	hr := run.Hostile
	if hr == nil || len(hr.Requests) == 0 {
		return append(checks, checkf("the hostile client sent its inputs", false, "it sent nothing"))
	}
	sum := summarizeHostile(run)

	planned := int(hostileRate*hostilePhase.Seconds()) - hostileBlocks
	checks = append(checks, checkf("the hostile client sent every kind of input", len(sum.missing) == 0 && len(hr.Requests) >= planned*9/10,
		"%d requests of %d kinds from %s in %s (%s; %.0f req/s), %d not sent (too many awaiting answers)%s",
		len(hr.Requests), len(hr.Kinds), hr.Source, seconds(sum.during.len()), sum.during, float64(len(hr.Requests))/max(sum.during.len().Seconds(), 1),
		hr.Skipped, missingKinds(sum.missing)))

	c := sum.customers
	checks = append(checks, checkf("the customers' requests do not fail", c.Due() > 0 && c.Unserved() == 0,
		"%s over the run (codes %s); %d sent while the hostile client sent", c.summary(), codes(c.Codes), sum.nDuring))
	// The bound is the 20% beyond what two quiet windows of this
	// shared machine differ by anyway: a p99 of tens of milliseconds over
	// a few hundred requests moves by several milliseconds between
	// adjacent windows with nothing hostile about (measured: the pooled
	// p99 up 40% while every operation's own p99 but one went down).
	bound := time.Duration(float64(sum.p99Before)*(1+cleanP99Slack)) + sum.p99Noise
	checks = append(checks, checkf(fmt.Sprintf("the customers' p99, logins aside, stays within %s of the baseline", percent(cleanP99Slack)),
		sum.nBefore > 0 && sum.nDuring > 0 && sum.p99 <= bound,
		"p99 %s over %d requests while the hostile client sent, %s over %d in the %s before its blocks (bound %s: +%s, +%s for this machine's noise); by operation %s",
		ms(sum.p99), sum.nDuring, ms(sum.p99Before), sum.nBefore, seconds(sum.before.len()), ms(bound), percent(cleanP99Slack), ms(sum.p99Noise), strings.Join(sum.perOp, ", ")))
	checks = append(checks, checkf(fmt.Sprintf("the customers' logins keep a p99 ≤ %s during the flood of wrong ones", ms(loginP99Bound)),
		sum.nLogins > 0 && sum.loginP99 <= loginP99Bound,
		"login p99 %s over %d logins while the hostile client sent (%s before its blocks)",
		ms(sum.loginP99), sum.nLogins, ms(sum.loginP99Before)))

	checks = append(checks, checkf(fmt.Sprintf("every hostile request gets a 4xx (fault baggage is served as if it carried none), no 5xx, none unanswered within %s", hostileTimeout),
		sum.bad == 0, "%d refused with a 4xx (%s), %d served, %d otherwise%s; slowest answer %s",
		sum.refused, codes(sum.refusedCodes), sum.served, sum.bad, examples(sum.wrong), ms(sum.slowest)))

	checks = append(checks, checkf("no circuit breaker changes state anywhere",
		len(sum.perCaller) > 0 && sum.transitions == 0, "transitions over the run: %s", strings.Join(orNone(sum.perCaller), ", ")))

	checks = append(checks, checkf("no hostile input that must stop at the gateway reaches a backend",
		sum.tracesRead >= sum.stopKinds && len(sum.reached) == 0,
		"%d of %d traces read (of %d kinds); %d reached a backend%s", sum.tracesRead, len(hr.Traces), sum.stopKinds, len(sum.reached), examples(sum.reached)))

	st := hr.Stores
	checks = append(checks, checkf("the stores hold no trace of the hostile client",
		st.Err == "" && hr.User != "" && st.Orders+st.Reservations+st.Charges == 0,
		"user %s: %d orders, %d reservations, %d charges%s", orUnknown(hr.User), st.Orders, st.Reservations, st.Charges, errSuffix(st.Err)))

	checks = append(checks, checkf(fmt.Sprintf("the gateway's memory stays flat: heap grows < %d MiB, RSS < %d MiB", hostileHeapGrowth>>20, hostileRSSGrowth>>20),
		sum.memoryRead && sum.heapDuring-sum.heapBefore < hostileHeapGrowth && sum.rssDuring-sum.rssBefore < hostileRSSGrowth,
		"heap at most %s before the hostile client, %s from its first block to its last; RSS at most %s before, %s from then on",
		mib(sum.heapBefore), mib(sum.heapDuring), mib(sum.rssBefore), mib(sum.rssDuring)))
	return append(checks, invariantChecks(run)...)
}

// hostileAnswerOK reports whether status is what an input wanting want
// must get.
func hostileAnswerOK(want string, status int) bool {
	if want == wantServed {
		return status/100 == 2 || status == http.StatusTooManyRequests
	}
	return status/100 == 4
}

func cmpCode(r HostileRequest) string {
	if r.Code != "" {
		return r.Code
	}
	return fmt.Sprintf("http_%d", r.Status)
}

func describeStatus(r HostileRequest) string {
	if r.Status == 0 {
		return fmt.Sprintf("no answer after %s", ms(r.Latency))
	}
	return fmt.Sprintf("%d %s", r.Status, r.Code)
}

// windows are several spans of a run, taken together.
type windows []Window

func (ws windows) contains(t time.Duration) bool {
	return slices.ContainsFunc(ws, func(w Window) bool { return w.Contains(t) })
}

func (ws windows) len() time.Duration {
	var d time.Duration
	for _, w := range ws {
		d += w.Len()
	}
	return d
}

func (ws windows) String() string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.String()
	}
	return strings.Join(parts, ", ")
}

// requests returns the stream's requests of op (of every operation but
// the setup's sign-ups when op is "") sent in ws.
func (ws windows) requests(s *StreamRun, op loadgen.Op) []Request {
	var out []Request
	for _, r := range s.Requests {
		if (r.Op == op || op == "" && r.Op != "") && ws.contains(r.At) {
			out = append(out, r)
		}
	}
	return out
}

// requestsBut returns the stream's requests of every operation but op (and
// the setup's sign-ups) sent in ws.
func (ws windows) requestsBut(s *StreamRun, op loadgen.Op) []Request {
	var out []Request
	for _, r := range s.Requests {
		if r.Op != op && r.Op != "" && ws.contains(r.At) {
			out = append(out, r)
		}
	}
	return out
}

// max returns the series' largest value in ws, and whether ws holds any
// point of it.
func (ws windows) max(s *Series) (float64, bool) {
	m, found := 0.0, false
	for _, w := range ws {
		if v, ok := s.Max(w); ok && (!found || v > m) {
			m, found = v, true
		}
	}
	return m, found
}

func examples(parts []string) string {
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, "; ")
}

func missingKinds(kinds []string) string {
	if len(kinds) == 0 {
		return ""
	}
	return "; never sent: " + strings.Join(kinds, ", ")
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func errSuffix(err string) string {
	if err == "" {
		return ""
	}
	return " (" + err + ")"
}

// p99SamplingNoise is how far the p99s of two sets of requests as large
// as reqs, drawn from the same machine at the same load, may differ by
// sampling alone: twice the standard deviation of such a difference
// (2·√2·σ, where σ is the standard error of one p99), with σ estimated by
// bootstrap: the p99 of reqs resampled with replacement, 400 times. The
// seed is fixed, so the same measurements give the same bound.
func p99SamplingNoise(reqs []Request) time.Duration {
	const resamples = 400
	if len(reqs) < 2 {
		return 0
	}
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	sample := make([]Request, len(reqs))
	var sum, sumSq float64
	for range resamples {
		for i := range sample {
			sample[i] = reqs[rng.IntN(len(reqs))]
		}
		p, _ := latencyPercentile(sample, 99)
		sum += float64(p)
		sumSq += float64(p) * float64(p)
	}
	mean := sum / resamples
	sigma := math.Sqrt(max(sumSq/resamples-mean*mean, 0))
	return time.Duration(2 * math.Sqrt2 * sigma)
}
