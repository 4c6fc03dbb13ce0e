package chaos

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/services/orders"
)

// Synthetic measurements, for testing the judges without a stack: a
// healthy run of each experiment must pass, and a run in which the
// mechanism the experiment exercises is broken must fail on the checks
// that mechanism answers for.

// synth builds a load generator timeline second by second.
type synth struct {
	seconds []map[loadgen.Op]*loadgen.Stats
}

// steady is a run of n seconds in which every second sends perSecond
// requests of each operation, all answered OK with a p99 of p99.
func steady(n int, perSecond map[loadgen.Op]int, p99 time.Duration) *synth {
	s := &synth{}
	for range n {
		sec := map[loadgen.Op]*loadgen.Stats{}
		for op, k := range perSecond {
			sec[op] = &loadgen.Stats{Requests: k, OK: k, Latency: loadgen.Latency{P50: p99 / 2, P90: p99, P99: p99, P999: p99, Max: p99}}
		}
		s.seconds = append(s.seconds, sec)
	}
	return s
}

// shop is the default mix at 40 requests a second.
func shop(n int) *synth {
	return steady(n, map[loadgen.Op]int{loadgen.Browse: 24, loadgen.Login: 4, loadgen.Checkout: 8, loadgen.Orders: 4}, 20*time.Millisecond)
}

// fail makes k of op's requests fail with code in seconds [from, to).
func (s *synth) fail(from, to int, op loadgen.Op, k int, code string) *synth {
	for i := from; i < to && i < len(s.seconds); i++ {
		st := s.seconds[i][op]
		k := min(k, st.OK)
		st.OK -= k
		if st.Errors == nil {
			st.Errors = map[string]int{}
		}
		st.Errors[code] += k
	}
	return s
}

// slow sets op's latency in seconds [from, to).
func (s *synth) slow(from, to int, op loadgen.Op, p99 time.Duration) *synth {
	for i := from; i < to && i < len(s.seconds); i++ {
		st := s.seconds[i][op]
		st.Latency = loadgen.Latency{P50: p99 / 2, P90: p99, P99: p99, P999: p99, Max: p99}
	}
	return s
}

// report sums the seconds into a load generator report.
func (s *synth) report() *loadgen.Report {
	rep := &loadgen.Report{Duration: time.Duration(len(s.seconds)) * time.Second, ByOp: map[loadgen.Op]loadgen.Stats{}}
	for i, sec := range s.seconds {
		out := loadgen.Second{Start: time.Duration(i) * time.Second, ByOp: map[loadgen.Op]loadgen.Stats{}}
		for _, op := range slices.Sorted(maps.Keys(sec)) {
			st := *sec[op]
			st.Errors = maps.Clone(st.Errors)
			out.ByOp[op] = st
			add(&out.Total, st)
			whole := rep.ByOp[op]
			add(&whole, st)
			rep.ByOp[op] = whole
			add(&rep.Total, st)
		}
		rep.Timeline = append(rep.Timeline, out)
	}
	return rep
}

// add adds st to sum; latencies combine as their maximum, an upper bound.
func add(sum *loadgen.Stats, st loadgen.Stats) {
	sum.Requests += st.Requests
	sum.OK += st.OK
	sum.Skipped += st.Skipped
	for code, n := range st.Errors {
		if sum.Errors == nil {
			sum.Errors = map[string]int{}
		}
		sum.Errors[code] += n
	}
	sum.Latency.P50 = max(sum.Latency.P50, st.Latency.P50)
	sum.Latency.P90 = max(sum.Latency.P90, st.Latency.P90)
	sum.Latency.P99 = max(sum.Latency.P99, st.Latency.P99)
	sum.Latency.P999 = max(sum.Latency.P999, st.Latency.P999)
	sum.Latency.Max = max(sum.Latency.Max, st.Latency.Max)
}

// newRun is a run of one main stream with the given report and the
// schedule's fault and repair at the given seconds.
func newRun(rep *loadgen.Report, fault, recover time.Duration) *Run {
	run := &Run{
		Streams: []*StreamRun{{Stream: Stream{Name: "main", Load: Load{Mix: loadgen.DefaultMix()}}, Report: rep}},
		Values:  map[string]float64{},
		Invariants: Invariants{
			Orders:  map[orders.Status]int{orders.Confirmed: 180, orders.Failed: 20},
			Charges: 180,
		},
	}
	if fault > 0 {
		run.Marks = append(run.Marks, Mark{Key: MarkFault, Label: "fault", At: fault, Took: 10 * time.Millisecond})
	}
	if recover > 0 {
		run.Marks = append(run.Marks, Mark{Key: MarkRecover, Label: "repair", At: recover, Took: 300 * time.Millisecond})
	}
	return run
}

// series adds a sampled series, a point every SampleEvery from 0 to end,
// valued by v (a NaN value leaves the point out).
func (r *Run) addSeries(name, panel string, kind SeriesKind, end time.Duration, v func(at time.Duration) (float64, bool)) *Series {
	s := &Series{Name: name, Panel: panel, Kind: kind}
	for at := time.Duration(0); at < end; at += SampleEvery {
		if x, ok := v(at); ok {
			s.Points = append(s.Points, Point{At: at, V: x})
		}
	}
	r.Series = append(r.Series, s)
	return s
}

// step returns a function valued before until at, after from then on.
func step(at time.Duration, before, after float64) func(time.Duration) (float64, bool) {
	return func(t time.Duration) (float64, bool) {
		if t < at {
			return before, true
		}
		return after, true
	}
}

// steps is a piecewise constant function: values[i] from at[i] on.
func steps(at []time.Duration, values []float64) func(time.Duration) (float64, bool) {
	return func(t time.Duration) (float64, bool) {
		v := values[0]
		for i, a := range at {
			if t >= a {
				v = values[i]
			}
		}
		return v, true
	}
}

// tapRequests adds n requests of op per second in [from, to) to the main
// stream, each with the given status and latency.
func (r *Run) tapRequests(op loadgen.Op, from, to time.Duration, perSecond int, status int, latency time.Duration) {
	main := r.Main()
	gap := time.Second / time.Duration(perSecond)
	for at := from; at < to; at += gap {
		main.Requests = append(main.Requests, Request{Op: op, At: at, Latency: latency, Status: status, TraceID: "0af7651916cd43dd8448eb211c80319c"})
	}
}

// expectFailures checks that exactly the checks whose claims contain one
// of want failed.
func expectFailures(t *testing.T, checks []Check, want ...string) {
	t.Helper()
	if len(checks) == 0 {
		t.Fatal("no checks")
	}
	for _, c := range checks {
		wanted := false
		for _, w := range want {
			wanted = wanted || strings.Contains(c.Claim, w)
		}
		if c.Pass == wanted {
			verdict := "passed"
			if !c.Pass {
				verdict = "failed"
			}
			t.Errorf("%s: %q: %s", verdict, c.Claim, c.Measured)
		}
	}
	for _, w := range want {
		found := false
		for _, c := range checks {
			found = found || strings.Contains(c.Claim, w)
		}
		if !found {
			t.Errorf("no check claims %q", w)
		}
	}
}
