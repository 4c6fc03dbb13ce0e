// Package chaos proves the platform's resilience the way its customers
// would notice it: it drives open-loop load through the gateway, does harm
// on a schedule (SIGKILL an instance, stop Consul, slow a dependency),
// measures what the load saw and what the platform's own metrics, stores
// and traces say, and judges each experiment's hypothesis from those
// measurements alone.
//
// An Experiment is data: its load, its fault schedule, what to sample
// while it runs, and a Judge. The Runner carries it out against a running
// stack (package stack) and records everything it measured in a Run; the
// Judge is a pure function from that Run to Checks, so the verdicts can be
// tested with synthetic timelines, including ones where the mechanism an
// experiment exercises is broken and the verdict must be FAIL.
//
// After every experiment the Runner reads the services' own SQLite stores
// and checks the checkout's promises (stock conserved, nothing charged
// twice, every charge belongs to a confirmed order or was refunded), then
// brings the stack back to full health before the next one. WriteReport
// turns the results into a markdown summary with one SVG timeline per
// experiment.
package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
)

// An Experiment is one hypothesis about the platform, tested by doing harm
// under load.
type Experiment struct {
	// Name identifies the experiment on the command line (-run) and in
	// file names: lower case, dashes.
	Name string
	// Title is the experiment in a few words, for people.
	Title string
	// Hypothesis says what should hold, with its thresholds, in prose; the
	// Judge checks exactly that.
	Hypothesis string
	// Streams are the loads sent at once for the whole experiment. The
	// first is the main one: Steps run on its clock, and most experiments
	// need no other.
	Streams []Stream
	// Setup runs before the load starts (e.g. slowing payments down so
	// that sagas are caught in flight); nil for none.
	Setup func(ctx context.Context, env *Env) error
	// Steps are the faults and their repairs, in time order.
	Steps []Step
	// Probes are sampled every SampleEvery while the load runs.
	Probes []Probe
	// Measure runs once the load is over, before the invariants are read,
	// to gather what the Judge needs besides the timeline and the probes
	// (a trace from Jaeger, say); nil for nothing.
	Measure func(ctx context.Context, env *Env, run *Run) error
	// Judge turns what was measured into checks. It must be a pure
	// function of run: every verdict is computed from measurements.
	Judge func(run *Run) []Check
}

// Load is an open-loop load through the gateway (see package loadgen).
type Load struct {
	Rate     float64 // requests per second
	Duration time.Duration
	Mix      loadgen.Mix
	Users    int // customers signed up for the stream
}

func (l Load) String() string {
	return fmt.Sprintf("%g req/s for %s (%s; %d customers)", l.Rate, l.Duration, l.Mix, l.Users)
}

// A Stream is one load, with what every one of its requests carries.
type Stream struct {
	Name string
	Load Load
	// Baggage, if set, is sent as the W3C baggage header of every request,
	// e.g. "fault.payments=error": faults for this stream's requests only,
	// honoured by services started with FAULT_INJECTION=true.
	Baggage string
}

// Keys of the marks experiments share. The timeline plot shades the time
// between MarkFault and MarkRecover.
const (
	MarkFault   = "fault"   // the harm begins
	MarkRecover = "recover" // the harm is repaired
)

// A Step is an action at a point of the main stream's load.
type Step struct {
	At time.Duration // since the main stream started sending
	// Mark is the key the Judge finds the step by (MarkFault, MarkRecover).
	Mark   string
	Action Action
}

// An Action is something the runner does to the stack.
type Action struct {
	Name string // "SIGKILL inventory/2", as the report shows it
	Do   func(ctx context.Context, env *Env, run *Run) error
}

// A Probe samples one or more series while the load runs. Sample returns
// the value of each series by name; an error skips the sample (a gap in
// the plot), as a dead target cannot be read.
type Probe struct {
	// Panel names the plot panel its series are drawn in.
	Panel  string
	Kind   SeriesKind
	Sample func(ctx context.Context, env *Env) (map[string]float64, error)
}

// SeriesKind says what a series' values mean, for plotting.
type SeriesKind int

const (
	// Gauge values are drawn as they are, as steps.
	Gauge SeriesKind = iota
	// Counter values only grow; the plot draws their rate per second.
	Counter
	// Bytes are a gauge drawn in MiB.
	Bytes
	// Breaker values are circuit breaker states (0 closed, 1 half-open,
	// 2 open), drawn as coloured bands.
	Breaker
)

// A Check is one claim of a hypothesis and what was measured against it.
type Check struct {
	Claim    string `json:"claim"`    // "no browse call fails"
	Measured string `json:"measured"` // "0 of 612 failed"
	Pass     bool   `json:"pass"`
}

// checkf builds a check whose measurement is formatted from args.
func checkf(claim string, pass bool, measured string, args ...any) Check {
	return Check{Claim: claim, Measured: fmt.Sprintf(measured, args...), Pass: pass}
}

// A Result is one experiment carried out and judged.
type Result struct {
	Experiment Experiment
	Run        *Run
	Checks     []Check
	// Err is set when the experiment could not be carried out as
	// designed (a fault that could not be done, a load that could not
	// set up): it proves nothing, which is a failure too.
	Err  error
	Took time.Duration
}

// Passed reports whether the experiment ran as designed and every check
// of its hypothesis held.
func (r Result) Passed() bool {
	if r.Err != nil || len(r.Checks) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.Pass {
			return false
		}
	}
	return true
}

// Verdict is PASS or FAIL.
func (r Result) Verdict() string {
	if r.Passed() {
		return "PASS"
	}
	return "FAIL"
}
