package loadgen

import (
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The latency histograms record microseconds from 1µs to 60s with three
// significant digits: any latency is reported within 0.1%.
const (
	lowestLatency  = time.Microsecond
	highestLatency = 60 * time.Second
	significant    = 3

	// tracesPerCode is how many trace IDs of failed requests a report keeps
	// for each error code: enough to open a few in Jaeger, not a log.
	tracesPerCode = 5
)

// latencies is what a tally needs of a histogram. The run's and the
// operations' tallies use dense histograms (fast to record, ~140 KiB
// each); the timeline's use sparse ones, since a second holds few
// distinct latencies and a long run has many seconds.
type latencies interface {
	RecordValue(v int64) error
	ValueAtPercentile(percentile float64) int64
	Max() int64
	TotalCount() int64
	Reset()
}

func newDense() latencies {
	return hdrhistogram.New(int64(lowestLatency/time.Microsecond), int64(highestLatency/time.Microsecond), significant)
}

func newSparse() latencies {
	return hdrhistogram.NewPacked(int64(lowestLatency/time.Microsecond), int64(highestLatency/time.Microsecond), significant)
}

// record adds d, clamped to the histogram's range: a latency beyond 60s
// (a client timeout far longer than the default) still counts, as 60s.
func record(h latencies, d time.Duration) {
	us := int64(min(max(d, 0), highestLatency) / time.Microsecond)
	_ = h.RecordValue(us) // cannot fail: us is within the histogram's range
}

// A tally counts a set of requests as they happen; Stats is its summary.
type tally struct {
	requests, ok, skipped int
	errors                map[string]int
	latency               latencies
}

func newTally(h latencies) *tally { return &tally{errors: map[string]int{}, latency: h} }

func (t *tally) stats() Stats {
	s := Stats{Requests: t.requests, OK: t.ok, Skipped: t.skipped}
	if len(t.errors) > 0 {
		s.Errors = maps.Clone(t.errors)
	}
	if t.latency.TotalCount() > 0 {
		at := func(p float64) time.Duration { return time.Duration(t.latency.ValueAtPercentile(p)) * time.Microsecond }
		s.Latency = Latency{P50: at(50), P90: at(90), P99: at(99), P999: at(99.9), Max: time.Duration(t.latency.Max()) * time.Microsecond}
	}
	return s
}

// tallies is a set of requests overall and by operation.
type tallies struct {
	total *tally
	byOp  map[Op]*tally
}

func newTallies(h func() latencies) *tallies {
	t := &tallies{total: newTally(h()), byOp: map[Op]*tally{}}
	for _, op := range Ops() {
		t.byOp[op] = newTally(h())
	}
	return t
}

// each calls f on the overall tally and on op's.
func (t *tallies) each(op Op, f func(*tally)) {
	f(t.total)
	f(t.byOp[op])
}

func (t *tallies) stats() (Stats, map[Op]Stats) {
	byOp := map[Op]Stats{}
	for op, t := range t.byOp {
		byOp[op] = t.stats()
	}
	return t.total.stats(), byOp
}

// A recorder gathers what happens to every request of a run. One mutex
// guards it all: a request holds it for a microsecond or so, nothing next
// to a round trip through the gateway.
type recorder struct {
	start time.Time

	mu      sync.Mutex
	run     *tallies
	seconds []*tallies // by the second of the run the request was due in
	traces  map[string][]string

	// Since the last progress line: when it was, how many requests had
	// been sent then, and the latencies of the answers since.
	lastLine time.Time
	sentThen int
	recent   latencies
}

func newRecorder(start time.Time) *recorder {
	return &recorder{
		start: start, run: newTallies(newDense), traces: map[string][]string{},
		lastLine: start, recent: newDense(),
	}
}

// second returns the tallies of the second due falls in. Requests are
// filed by when they were due, not when they were answered: a stall shows
// up in the seconds when customers met it, however late the answers came.
func (r *recorder) second(due time.Time) *tallies {
	i := max(int(due.Sub(r.start)/time.Second), 0)
	for len(r.seconds) <= i {
		r.seconds = append(r.seconds, nil)
	}
	if r.seconds[i] == nil {
		r.seconds[i] = newTallies(newSparse)
	}
	return r.seconds[i]
}

// sent counts a request that was due at due and has left.
func (r *recorder) sent(op Op, due time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	count := func(t *tally) { t.requests++ }
	r.run.each(op, count)
	r.second(due).each(op, count)
}

// skipped counts a request that was due at due but not sent, because
// MaxInFlight requests were awaiting answers.
func (r *recorder) skipped(op Op, due time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	count := func(t *tally) { t.skipped++ }
	r.run.each(op, count)
	r.second(due).each(op, count)
}

// answered records how a sent request ended: err is nil on success, and
// latency runs from when it was due.
func (r *recorder) answered(op Op, due time.Time, latency time.Duration, err error) {
	code, traceID := "", ""
	if err != nil {
		code = CodeTransport
		if f, ok := errors.AsType[*failure](err); ok {
			code, traceID = f.code, f.traceID
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	count := func(t *tally) {
		record(t.latency, latency)
		if code == "" {
			t.ok++
		} else {
			t.errors[code]++
		}
	}
	r.run.each(op, count)
	r.second(due).each(op, count)
	record(r.recent, latency)
	if traceID != "" && len(r.traces[code]) < tracesPerCode {
		r.traces[code] = append(r.traces[code], traceID)
	}
}

// progress summarises the run at now for a progress line, and starts the
// next line's interval.
func (r *recorder) progress(now time.Time) progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := r.run.total
	failed := 0
	for _, n := range total.errors {
		failed += n
	}
	p := progress{
		elapsed:  now.Sub(r.start),
		ok:       total.ok,
		failed:   failed,
		skipped:  total.skipped,
		inFlight: total.requests - total.ok - failed,
	}
	if d := now.Sub(r.lastLine); d > 0 {
		p.rate = float64(total.requests-r.sentThen) / d.Seconds()
	}
	if p.answered = int(r.recent.TotalCount()); p.answered > 0 {
		p.p99 = time.Duration(r.recent.ValueAtPercentile(99)) * time.Microsecond
	}
	r.lastLine, r.sentThen = now, total.requests
	r.recent.Reset()
	return p
}

// report summarises the run; every request must have been answered.
func (r *recorder) report() *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{Started: r.start, ErrorTraces: map[string][]string{}}
	rep.Total, rep.ByOp = r.run.stats()
	for code, ids := range r.traces {
		rep.ErrorTraces[code] = append([]string(nil), ids...)
	}
	for i, s := range r.seconds {
		if s == nil { // a second in which no request was due
			s = newTallies(newSparse)
		}
		sec := Second{Start: time.Duration(i) * time.Second}
		sec.Total, sec.ByOp = s.stats()
		rep.Timeline = append(rep.Timeline, sec)
	}
	return rep
}
