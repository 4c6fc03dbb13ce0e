// Package loadgen drives open-loop load through the gateway's public API
// and reports what its customers saw: latency percentiles free of
// coordinated omission, errors by problem code with trace IDs to open in
// Jaeger, and a second-by-second timeline for plotting.
//
// Open loop means requests leave on a fixed schedule whatever the shop
// does, as real customers keep arriving when a site slows down. A closed
// loop (N workers, each sending its next request when the last is
// answered) slows down with the system it measures: during a 2 s stall it
// sends one request per worker and records one slow answer each, while
// the customers who would have arrived meanwhile, and waited, are never
// counted. That is coordinated omission, and it hides exactly the stalls
// a chaos test looks for. Here every request is due at a fixed time and
// its latency runs from then, so a stall shows up in every request due
// during it, including any this generator itself sent late.
//
// The generator is a black-box client: it speaks HTTP and problem+json as
// the README documents them and imports nothing of the platform.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults for the Config fields left zero.
const (
	DefaultMaxInFlight   = 200
	DefaultUsers         = 10
	DefaultTimeout       = 10 * time.Second
	DefaultProgressEvery = time.Second
)

// Config describes a run.
type Config struct {
	// Target is the gateway's base URL, like http://127.0.0.1:8080.
	Target string
	// Rate is how many requests to send per second, whatever the answers.
	// It is ignored in a closed loop (Connections > 0).
	Rate float64
	// Connections, when positive, makes the run a closed loop instead:
	// that many workers, each sending its next request as soon as its last
	// is answered, for Duration. A closed loop finds the rate a system
	// saturates at (what a benchmark wants); it is blind to stalls, as the
	// package comment says, so latencies under it run from when each
	// request was sent, and chaos and SLO runs use the open loop.
	Connections int
	// Duration is how long to send them for.
	Duration time.Duration
	// MaxInFlight bounds the requests awaiting an answer (default 200). A
	// request due while that many are in flight is skipped and counted,
	// never held back: sending it late would be a closed loop again.
	MaxInFlight int
	// Users is how many customers the setup signs up and logs in
	// (default 10); each request is made by one of them at random.
	Users int
	// Mix weighs the operations (default DefaultMix).
	Mix Mix
	// Items is how many products (one unit each) a checkout orders; 0
	// means one or two at random.
	Items int
	// Timeout bounds each request (default 10s), and so how long Run waits
	// for the requests in flight when it stops. It applies whatever Client
	// is given.
	Timeout time.Duration
	// Client sends the requests (default: one that keeps a connection for
	// each request in flight).
	Client *http.Client
	// Progress, if not nil, gets a progress line every ProgressEvery
	// (default 1s) while requests are sent.
	Progress      io.Writer
	ProgressEvery time.Duration
}

func (c Config) withDefaults() (Config, error) {
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("target %q is not an http(s) URL", c.Target)
	}
	if (c.Rate <= 0 && c.Connections <= 0) || c.Duration <= 0 {
		return c, errors.New("rate (or connections) and duration must be positive")
	}
	if c.Connections < 0 || c.Items < 0 {
		return c, errors.New("connections and items must not be negative")
	}
	if c.Connections > 0 {
		c.MaxInFlight = c.Connections
	}
	c.MaxInFlight = orDefault(c.MaxInFlight, DefaultMaxInFlight)
	c.Users = orDefault(c.Users, DefaultUsers)
	c.Timeout = orDefault(c.Timeout, DefaultTimeout)
	c.ProgressEvery = orDefault(c.ProgressEvery, DefaultProgressEvery)
	if c.MaxInFlight < 0 || c.Users < 0 || c.Timeout < 0 || c.ProgressEvery < 0 {
		return c, errors.New("max in flight, users, timeout and progress interval must not be negative")
	}
	if c.Mix == nil {
		c.Mix = DefaultMix()
	}
	if err := c.Mix.validate(); err != nil {
		return c, fmt.Errorf("mix: %w", err)
	}
	if c.Client == nil {
		// The default transport keeps two idle connections per host: every
		// request beyond two in flight would dial a new one and close it
		// after, and a long run would run out of ephemeral ports.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = c.MaxInFlight, c.MaxInFlight
		c.Client = &http.Client{Transport: t, Timeout: c.Timeout}
	}
	return c, nil
}

// orDefault is v, or def when v is zero. Unlike cmp.Or it keeps a
// negative v, for withDefaults to reject.
func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Run sets the shop up for a run (reads the catalogue, signs up and logs
// in cfg.Users customers), then sends requests at cfg.Rate for
// cfg.Duration and reports what happened. A failed setup is an error;
// failed requests are not, they are what the report is about.
//
// Cancelling ctx stops sending: Run waits for the requests in flight
// (each at most cfg.Timeout) and reports the run so far.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &api{base: strings.TrimRight(cfg.Target, "/"), client: cfg.Client, timeout: cfg.Timeout}
	s, err := setUp(ctx, a, cfg.Users, cfg.Mix[Checkout] > 0)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	s.items = cfg.Items
	if cfg.Connections > 0 {
		return closedLoop(ctx, cfg, time.Now(), s.do), nil
	}
	return generate(ctx, cfg, time.Now(), s.do), nil
}

// closedLoop runs cfg.Connections workers from start, each sending an
// operation drawn from cfg.Mix as soon as its last one was answered,
// until cfg.Duration has passed or ctx ends, and reports on them. Its
// Rate is the throughput reached.
func closedLoop(ctx context.Context, cfg Config, start time.Time, send func(context.Context, Op) error) *Report {
	rec := newRecorder(start)
	stopProgress := showProgress(cfg.Progress, cfg.ProgressEvery, rec)
	end := start.Add(cfg.Duration)
	requestCtx := context.WithoutCancel(ctx) // as in generate: a request in flight ends on its own
	var workers sync.WaitGroup
	for range cfg.Connections {
		workers.Go(func() {
			for ctx.Err() == nil {
				sentAt := time.Now()
				if !sentAt.Before(end) {
					return
				}
				op := cfg.Mix.pick()
				rec.sent(op, sentAt)
				err := send(requestCtx, op)
				rec.answered(op, sentAt, time.Since(sentAt), err)
			}
		})
	}
	workers.Wait()
	stopProgress()
	sending := min(time.Since(start), cfg.Duration)
	if ctx.Err() == nil {
		sending = cfg.Duration
	}

	rep := rec.report()
	rep.Target, rep.Duration, rep.Interrupted, rep.Connections = cfg.Target, sending, ctx.Err() != nil, cfg.Connections
	if sending > 0 {
		rep.Throughput = float64(rep.Total.Requests) / sending.Seconds()
	}
	return rep
}

// generate sends requests on schedule from start, each an operation drawn
// from cfg.Mix and carried out by send, and reports on them.
//
// Request i is due at start + i/Rate: a fixed interval rather than Poisson
// arrivals. Both are open loops; the fixed one sends exactly Rate ×
// Duration requests, at the same rate every second, so two runs (before
// and after a change, with and without a chaos kill) differ only by what
// the shop did, not by how the dice fell. A generator that falls behind
// (a GC pause, a busy machine) sends the overdue requests at once and
// their latency still runs from when they were due.
func generate(ctx context.Context, cfg Config, start time.Time, send func(context.Context, Op) error) *Report {
	rec := newRecorder(start)
	stopProgress := showProgress(cfg.Progress, cfg.ProgressEvery, rec)

	// Requests in flight outlive ctx, so that the report says how they
	// ended; cfg.Timeout bounds them.
	requestCtx := context.WithoutCancel(ctx)
	slots := make(chan struct{}, cfg.MaxInFlight)
	var inFlight sync.WaitGroup
	interval := float64(time.Second) / cfg.Rate
	wait := time.NewTimer(0) // Reset before each use: since Go 1.23 a Reset timer never delivers a stale tick
	defer wait.Stop()

	interrupted := false
	for i := 0; ; i++ {
		offset := time.Duration(float64(i) * interval)
		if offset >= cfg.Duration {
			break
		}
		due := start.Add(offset)
		if !sleepUntil(ctx, wait, due) {
			interrupted = true
			break
		}
		op := cfg.Mix.pick()
		select {
		case slots <- struct{}{}:
			rec.sent(op, due)
			inFlight.Go(func() {
				defer func() { <-slots }()
				err := send(requestCtx, op)
				rec.answered(op, due, time.Since(due), err)
			})
		default:
			rec.skipped(op, due)
		}
	}
	sending := time.Since(start)
	if !interrupted {
		// The schedule covers all of cfg.Duration, though its last request
		// is due one interval before the end.
		sending = max(sending, cfg.Duration)
	}
	inFlight.Wait()
	stopProgress()

	rep := rec.report()
	rep.Target, rep.Rate, rep.Duration, rep.Interrupted = cfg.Target, cfg.Rate, sending, interrupted
	if sending > 0 {
		rep.Throughput = float64(rep.Total.Requests) / sending.Seconds()
	}
	return rep
}

// sleepUntil waits for due, reusing t, and reports whether ctx still
// allows sending. A due time already past returns at once: the generator
// catches up instead of shifting the schedule.
func sleepUntil(ctx context.Context, t *time.Timer, due time.Time) bool {
	if d := time.Until(due); d > 0 {
		t.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return ctx.Err() == nil
}
