package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/stack"
	"github.com/glasshouse-dev/glasshouse/traces"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// Timings of the runner.
const (
	// SampleEvery is how often probes are sampled: fine enough to time a
	// breaker or a discovery change to a fifth of a second, coarse enough
	// that scraping costs the 2-core machine nothing noticeable.
	SampleEvery = 200 * time.Millisecond
	// DefaultQuietWithin bounds the wait for every saga to end and every
	// promise to hold after an experiment: orders' recovery
	// (SAGA_STALE_AFTER plus RECOVERY_INTERVAL, see StackEnv) with ample
	// room.
	DefaultQuietWithin = time.Minute
	// restoreWithin bounds bringing the stack back to full health.
	restoreWithin = 90 * time.Second
	// progressEvery is how often the load reports progress; the runner
	// prints one line in progressLines.
	progressEvery = time.Second
	progressLines = 5
	// examplesPerRun bounds the failed requests' traces kept per
	// experiment.
	examplesPerRun = 4
)

// StackEnv is how the chaos suite runs the services, with extra settings
// (to break a mechanism on purpose, say) appended so they win:
//
//   - FAULT_INJECTION=true everywhere, for the per-request faults that
//     travel in baggage. Never set in production.
//   - users hashing at bcrypt cost 8 rather than 10: on a 2-core machine
//     every comparison a login flood is still allowed (the per-email
//     burst) takes a core from the services beside it for tens of
//     milliseconds, and it is the login limits, not the hash's cost, that
//     the hostile-client experiment is about.
//   - orders with recovery timings short enough to watch: a saga may take
//     5s (more than the 3s deadline of its calls to payments, so a slow
//     payments call fails inside the saga with time left to compensate),
//     and an order untouched for 6s is taken over by recovery, which
//     looks every 500ms.
func StackEnv(extra map[string][]string) map[string][]string {
	env := map[string][]string{
		"*": {"FAULT_INJECTION=true"},
		// The saga's calls go over gRPC, orders' default, said here so
		// the report says it; `glasshouse chaos -env
		// orders:INVENTORY_TRANSPORT=http -env orders:PAYMENTS_TRANSPORT=http`
		// runs the suite with them on HTTP.
		"orders": {"SAGA_TIMEOUT=5s", "SAGA_STALE_AFTER=6s", "RECOVERY_INTERVAL=500ms", "INVENTORY_TRANSPORT=grpc", "PAYMENTS_TRANSPORT=grpc"},
		"users":  {"BCRYPT_COST=8"},
	}
	for svc, kvs := range extra {
		env[svc] = append(env[svc], kvs...)
	}
	return env
}

// A Runner carries out experiments against a running stack, started with
// StackEnv.
type Runner struct {
	// QuietWithin bounds the wait, after each experiment's load, for
	// every saga to end and the checkout's promises to hold; after it the
	// invariants are judged as they are (DefaultQuietWithin).
	QuietWithin time.Duration

	env *Env
	out io.Writer
	// faultToken is the gateway's FAULT_INJECTION_TOKEN, sent with every
	// request that carries its stream's fault baggage (see RunSuite).
	faultToken string
}

// NewRunner prepares to run experiments against s, printing progress to
// out (nil discards it).
func NewRunner(ctx context.Context, s *stack.Stack, out io.Writer) (*Runner, error) {
	if out == nil {
		out = io.Discard
	}
	env, err := newEnv(ctx, s)
	if err != nil {
		return nil, err
	}
	return &Runner{QuietWithin: DefaultQuietWithin, env: env, out: out}, nil
}

// RunAll restores the stack to full health before each experiment, runs
// it and judges it. An experiment that cannot start from a healthy stack
// fails without running.
func (r *Runner) RunAll(ctx context.Context, exps []Experiment) []Result {
	var results []Result
	for i, e := range exps {
		fmt.Fprintln(r.out)
		fmt.Fprintf(r.out, "[%d/%d] %s — %s\n", i+1, len(exps), e.Name, e.Title)
		var res Result
		if err := r.Restore(ctx); err != nil {
			res = Result{Experiment: e, Run: &Run{}, Err: fmt.Errorf("the stack could not be brought back to full health first: %w", err)}
		} else {
			res = r.Run(ctx, e)
		}
		r.printResult(res)
		results = append(results, res)
		if ctx.Err() != nil {
			break
		}
	}
	return results
}

func (r *Runner) printResult(res Result) {
	for _, c := range res.Checks {
		verdict := "ok  "
		if !c.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(r.out, "      %s %s: %s\n", verdict, c.Claim, c.Measured)
	}
	if res.Err != nil {
		fmt.Fprintf(r.out, "      error: %v\n", res.Err)
	}
	fmt.Fprintf(r.out, "  %s %s (%s)\n", res.Verdict(), res.Experiment.Name, res.Took.Round(100*time.Millisecond))
}

// Restore brings the stack back to full health: every process running,
// payments' fault knobs off, every instance passing its Consul check,
// every breaker the gateway and orders hold closed, no saga in flight,
// and a checkout through the gateway succeeding.
func (r *Runner) Restore(ctx context.Context) error {
	start := time.Now()
	var restarted []string
	for _, p := range r.env.Stack.Procs() {
		if !p.Running() {
			if err := r.env.Stack.Restart(ctx, p.Name); err != nil {
				return err
			}
			restarted = append(restarted, p.Name)
		}
	}
	if err := r.env.setPaymentsFaults(ctx, 0, 0); err != nil {
		return err
	}
	err := poll(ctx, restoreWithin, 250*time.Millisecond, func() error {
		// Every registration: a gRPC listener's is checked on its own
		// schedule, so it may pass seconds after the HTTP one.
		for _, svc := range services.All() {
			want := len(r.env.Stack.Instances(svc.Name))
			for _, name := range []string{svc.Name, svc.GRPCName()} {
				if name == "" {
					continue
				}
				if n, err := r.env.passing(ctx, name); err != nil || n != want {
					return fmt.Errorf("%s: %d of %d instances passing in Consul (%v)", name, n, want, err)
				}
			}
		}
		// A checkout and a browse also move any breaker that an
		// experiment left open past its open period to closed.
		if status, _, err := r.env.Customer.Checkout(ctx); err != nil || status != http.StatusCreated {
			return fmt.Errorf("checkout: %d %v", status, err)
		}
		if status, err := r.env.Customer.Browse(ctx); err != nil || status != http.StatusOK {
			return fmt.Errorf("browse: %d %v", status, err)
		}
		for _, caller := range []string{"gateway/1", "orders/1"} {
			p, err := r.env.proc(caller)
			if err != nil {
				return err
			}
			m, err := scrape(ctx, r.env.HTTP, p.AdminAddr)
			if err != nil {
				return err
			}
			var open []string
			m.each("glasshouse_client_breaker_state", func(labels map[string]string, v float64) {
				if v != 0 {
					open = append(open, labels["remote"]+"@"+r.env.instanceName(labels["remote_instance"]))
				}
			})
			if len(open) > 0 {
				return fmt.Errorf("%s has breakers not closed: %s", caller, strings.Join(open, ", "))
			}
		}
		if n, err := r.env.pendingOrders(ctx); err != nil || n != 0 {
			return fmt.Errorf("%d orders PENDING (%v)", n, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	note := ""
	if len(restarted) > 0 {
		note = "; restarted " + strings.Join(restarted, ", ")
	}
	fmt.Fprintf(r.out, "  stack healthy (checked in %s%s)\n", time.Since(start).Round(100*time.Millisecond), note)
	return nil
}

// Run carries out one experiment on a healthy stack and judges it.
func (r *Runner) Run(ctx context.Context, e Experiment) (res Result) {
	began := time.Now()
	run := &Run{Values: map[string]float64{}}
	res = Result{Experiment: e, Run: run}
	defer func() { res.Took = time.Since(began) }()
	if len(e.Streams) == 0 || e.Judge == nil {
		res.Err = errors.New("an experiment needs a load and a judge")
		return res
	}
	for _, s := range e.Streams {
		line := fmt.Sprintf("  load %s: %s", s.Name, s.Load)
		if s.Baggage != "" {
			line += fmt.Sprintf(", baggage %q", s.Baggage)
		}
		fmt.Fprintln(r.out, line)
	}
	if e.Setup != nil {
		if err := e.Setup(ctx, r.env); err != nil {
			res.Err = fmt.Errorf("setup: %w", err)
			return res
		}
	}

	probeCtx, stopProbes := context.WithCancel(ctx)
	probesDone := r.sample(probeCtx, e.Probes)

	// The streams start together; the schedule runs on the main one's
	// clock, which starts when its customers are set up.
	started := make(chan time.Time, 1)
	outcomes := make([]streamOutcome, len(e.Streams))
	var wg sync.WaitGroup
	for i, s := range e.Streams {
		var signal chan<- time.Time
		if i == 0 {
			signal = started
		}
		wg.Go(func() { outcomes[i] = r.stream(ctx, s, signal) })
	}
	loadDone := make(chan struct{})
	marksDone := r.schedule(ctx, e.Steps, started, loadDone, run)
	wg.Wait()
	close(loadDone)
	marks := <-marksDone
	loadEnded := time.Now()
	stopProbes()
	series := <-probesDone

	main := outcomes[0]
	if main.err != nil {
		res.Err = fmt.Errorf("load %s: %w", e.Streams[0].Name, main.err)
		return res
	}
	run.Started = main.report.Started
	at := func(t time.Time) time.Duration { return t.Sub(run.Started) }
	for i, o := range outcomes {
		if o.err != nil {
			res.Err = fmt.Errorf("load %s: %w", e.Streams[i].Name, o.err)
			return res
		}
		sr := &StreamRun{Stream: e.Streams[i], Report: o.report, Offset: at(o.report.Started)}
		for _, t := range o.requests {
			sr.Requests = append(sr.Requests, Request{Op: t.op, At: at(t.sent), Latency: t.latency, Status: t.status, TraceID: t.traceID})
		}
		run.Streams = append(run.Streams, sr)
	}
	for _, m := range marks {
		run.Marks = append(run.Marks, Mark{Key: m.key, Label: m.label, At: at(m.began), Took: m.took, Err: m.err})
		if m.err != "" {
			res.Err = errors.Join(res.Err, fmt.Errorf("%s: %s", m.label, m.err))
		}
	}
	for _, s := range series {
		out := &Series{Name: s.name, Panel: s.panel, Kind: s.kind}
		for _, p := range s.points {
			out.Points = append(out.Points, Point{At: at(p.at), V: p.v})
		}
		run.Series = append(run.Series, out)
	}
	run.LoadEnded = at(loadEnded)

	fmt.Fprintln(r.out, "  load done; waiting for every saga to end and reading the stores")
	run.Invariants = awaitInvariants(ctx, r.env.Stack.StoreSource, r.QuietWithin)
	if e.Measure != nil {
		if err := e.Measure(ctx, r.env, run); err != nil {
			res.Err = errors.Join(res.Err, fmt.Errorf("measure: %w", err))
		}
	}
	run.Examples = r.examples(ctx, run)
	res.Checks = e.Judge(run)
	return res
}

// A mark is a step as it happened, in wall-clock time.
type mark struct {
	key, label string
	began      time.Time
	took       time.Duration
	err        string
}

// schedule runs the steps on the main stream's clock: it waits for the
// stream's start, then for each step's time. Steps the load outlives are
// not run, and say so.
func (r *Runner) schedule(ctx context.Context, steps []Step, started <-chan time.Time, loadDone <-chan struct{}, run *Run) <-chan []mark {
	done := make(chan []mark, 1)
	go func() {
		var marks []mark
		defer func() { done <- marks }()
		var zero time.Time
		select {
		case zero = <-started:
		case <-loadDone:
			return // the load failed to start: nothing to do harm to
		}
		for i, s := range steps {
			timer := time.NewTimer(time.Until(zero.Add(s.At)))
			select {
			case <-timer.C:
			case <-loadDone:
				timer.Stop()
				for _, s := range steps[i:] {
					marks = append(marks, mark{key: s.Mark, label: s.Action.Name, began: time.Now(), err: "not done: the load ended first"})
				}
				return
			case <-ctx.Done():
				timer.Stop()
				return
			}
			began := time.Now()
			err := s.Action.Do(ctx, r.env, run)
			m := mark{key: s.Mark, label: s.Action.Name, began: began, took: time.Since(began)}
			if err != nil {
				m.err = err.Error()
			}
			line := fmt.Sprintf("  t=%-6s %s (%s)", seconds(began.Sub(zero)), s.Action.Name, m.took.Round(time.Millisecond))
			if err != nil {
				line += ": " + err.Error()
			}
			fmt.Fprintln(r.out, line)
			marks = append(marks, m)
		}
	}()
	return done
}

// A sampledSeries is a series as sampled, in wall-clock time.
type sampledSeries struct {
	name, panel string
	kind        SeriesKind
	points      []struct {
		at time.Time
		v  float64
	}
}

// sample runs each probe every SampleEvery until ctx ends, then delivers
// the series, in probe order and, within a probe, by name.
func (r *Runner) sample(ctx context.Context, probes []Probe) <-chan []*sampledSeries {
	done := make(chan []*sampledSeries, 1)
	perProbe := make([][]*sampledSeries, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			byName := map[string]*sampledSeries{}
			ticker := time.NewTicker(SampleEvery)
			defer ticker.Stop()
			for {
				sctx, cancel := context.WithTimeout(ctx, time.Second)
				values, err := p.Sample(sctx, r.env)
				cancel()
				now := time.Now()
				if err == nil {
					for name, v := range values {
						s := byName[name]
						if s == nil {
							s = &sampledSeries{name: name, panel: p.Panel, kind: p.Kind}
							byName[name] = s
							perProbe[i] = append(perProbe[i], s)
						}
						s.points = append(s.points, struct {
							at time.Time
							v  float64
						}{now, v})
					}
				}
				select {
				case <-ctx.Done():
					slices.SortFunc(perProbe[i], func(a, b *sampledSeries) int { return strings.Compare(a.name, b.name) })
					return
				case <-ticker.C:
				}
			}
		})
	}
	go func() {
		wg.Wait()
		var all []*sampledSeries
		for _, ss := range perProbe {
			all = append(all, ss...)
		}
		done <- all
	}()
	return done
}

// A streamOutcome is what one stream's load produced.
type streamOutcome struct {
	report   *loadgen.Report
	requests []tapped
	err      error
}

// stream sends one stream's load. When started is not nil it receives
// the moment the load began sending (after its customers' setup).
func (r *Runner) stream(ctx context.Context, s Stream, started chan<- time.Time) streamOutcome {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConns, base.MaxIdleConnsPerHost = loadgen.DefaultMaxInFlight, loadgen.DefaultMaxInFlight
	t := &tap{base: base, baggage: s.Baggage, faultToken: r.faultToken}
	progress := &progressLine{out: r.out, prefix: s.Name, started: started}
	rep, err := loadgen.Run(ctx, loadgen.Config{
		Target:   r.env.Stack.GatewayURL,
		Rate:     s.Load.Rate,
		Duration: s.Load.Duration,
		Users:    s.Load.Users,
		Mix:      s.Load.Mix,
		Client:   &http.Client{Transport: t, Timeout: loadgen.DefaultTimeout},
		// loadgen writes its first progress line one interval after it
		// starts sending: that is how the schedule learns its zero.
		Progress:      progress,
		ProgressEvery: progressEvery,
	})
	return streamOutcome{report: rep, requests: t.requests(), err: err}
}

// progressLine forwards one in progressLines of the load's progress lines,
// indented, and turns the first one into the load's start time.
type progressLine struct {
	out     io.Writer
	prefix  string
	started chan<- time.Time
	lines   int
}

func (p *progressLine) Write(b []byte) (int, error) {
	if p.lines == 0 && p.started != nil {
		p.started <- time.Now().Add(-progressEvery)
	}
	p.lines++
	if p.lines%progressLines == 0 {
		fmt.Fprintf(p.out, "    %-8s %s", p.prefix, b)
	}
	return len(b), nil
}

// tap is the load's HTTP transport: it adds the stream's baggage to every
// request and notes each one's outcome and trace ID, which the load
// generator's report keeps only in aggregate.
type tap struct {
	base       http.RoundTripper
	baggage    string
	faultToken string // lets the baggage's faults past the gateway

	mu  sync.Mutex
	log []tapped
}

type tapped struct {
	op      loadgen.Op
	sent    time.Time
	latency time.Duration
	status  int
	traceID string
}

func (t *tap) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.baggage != "" {
		req = req.Clone(req.Context()) // a RoundTripper must not change its request
		req.Header.Set("Baggage", t.baggage)
		if t.faultToken != "" {
			req.Header.Set(transport.FaultTokenHeader, t.faultToken)
		}
	}
	sent := time.Now()
	resp, err := t.base.RoundTrip(req)
	rec := tapped{op: opOf(req), sent: sent, latency: time.Since(sent)}
	if err == nil {
		rec.status, rec.traceID = resp.StatusCode, resp.Header.Get("X-Trace-Id")
	}
	t.mu.Lock()
	t.log = append(t.log, rec)
	t.mu.Unlock()
	return resp, err
}

func (t *tap) requests() []tapped {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.log)
}

// opOf names the load generator's operation a request belongs to, from
// the public API's routes; "" for sign-ups, which only setup sends.
func opOf(req *http.Request) loadgen.Op {
	path := req.URL.Path
	switch {
	case req.Method == http.MethodGet && strings.HasPrefix(path, "/api/products"):
		return loadgen.Browse
	case req.Method == http.MethodPost && path == "/api/login":
		return loadgen.Login
	case req.Method == http.MethodPost && path == "/api/orders":
		return loadgen.Checkout
	case req.Method == http.MethodGet && strings.HasPrefix(path, "/api/orders"):
		return loadgen.Orders
	}
	return ""
}

// examples reads the trace of the first failed request of each error
// code, stream by stream, and draws it.
func (r *Runner) examples(ctx context.Context, run *Run) []Example {
	var out []Example
	for _, s := range run.Streams {
		codes := make([]string, 0, len(s.Report.ErrorTraces))
		for code := range s.Report.ErrorTraces {
			codes = append(codes, code)
		}
		slices.Sort(codes)
		for _, code := range codes {
			if len(out) == examplesPerRun {
				return out
			}
			ids := s.Report.ErrorTraces[code]
			if len(ids) == 0 {
				continue
			}
			ex := Example{Stream: s.Stream.Name, Code: code, TraceID: ids[0]}
			tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			t, err := r.env.Jaeger.Await(tctx, ex.TraceID, 250*time.Millisecond)
			cancel()
			if t != nil {
				var b strings.Builder
				if errors.Is(err, traces.ErrIncomplete) {
					b.WriteString("(incomplete: a process on its path died before exporting its spans)\n")
				}
				if traces.Waterfall(&b, t, 60) == nil {
					ex.Waterfall = b.String()
				}
			}
			out = append(out, ex)
		}
	}
	return out
}
