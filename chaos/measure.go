package chaos

import (
	"fmt"
	"slices"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
)

// A Run is everything measured during one experiment. Offsets count from
// Started, when the main stream began sending.
type Run struct {
	Started time.Time
	Streams []*StreamRun
	Marks   []Mark
	Series  []*Series
	// Values are the numbers an experiment's Measure or actions recorded
	// (the sagas in flight at a kill, say), by name.
	Values map[string]float64
	// Traces are traces read back from Jaeger as evidence.
	Traces []TraceEvidence
	// Examples are traces of failed requests, one per error code and
	// stream, for the report.
	Examples []Example
	// Invariants are the checkout's promises, read from the services'
	// stores once the load is over and every saga has ended.
	Invariants Invariants
	// LoadEnded is when the last stream's last answer came in.
	LoadEnded time.Duration
	// Hostile is what a hostile client sent beside the streams, and what
	// came of it; nil when none did (see HostileClient).
	Hostile *HostileRun
}

// A StreamRun is what one stream's customers saw.
type StreamRun struct {
	Stream Stream
	Report *loadgen.Report
	// Offset is when this stream started sending, on the main clock.
	Offset time.Duration
	// Requests are the stream's requests one by one, as its HTTP client
	// saw them (setup calls included, with a negative At).
	Requests []Request
}

// A Request is one request as the load's HTTP client saw it: its latency
// runs from when it was sent to its response's headers (loadgen's own
// latency runs from when it was due, so it also counts any wait to be
// sent).
type Request struct {
	Op      loadgen.Op    // "" for setup calls (sign-up)
	At      time.Duration // sent, on the main clock
	Latency time.Duration
	Status  int // 0 when there was no answer
	TraceID string
}

// Failed reports whether the request got no answer or an error status.
func (r Request) Failed() bool { return r.Status == 0 || r.Status >= 400 }

// A Mark is an action of the schedule as it happened.
type Mark struct {
	Key   string
	Label string
	At    time.Duration // when it began, on the main clock
	Took  time.Duration
	Err   string
}

// A Series is one sampled quantity over the run.
type Series struct {
	Name   string
	Panel  string
	Kind   SeriesKind
	Points []Point
}

// A Point is one sample.
type Point struct {
	At time.Duration
	V  float64
}

// TraceEvidence is a trace looked up in Jaeger to prove something.
type TraceEvidence struct {
	Purpose string `json:"purpose"` // what it is evidence of
	TraceID string `json:"trace_id"`
	Found   bool   `json:"found"` // in Jaeger and complete
	Spans   int    `json:"spans"`
	// FaultEvents counts payments spans with a fault.injected event.
	FaultEvents int    `json:"fault_events"`
	Err         string `json:"error,omitempty"`
}

// An Example is a failed request's trace, drawn as a waterfall.
type Example struct {
	Stream, Code, TraceID string
	Waterfall             string // "" when Jaeger did not have it
}

// Main is the main stream.
func (r *Run) Main() *StreamRun {
	if len(r.Streams) == 0 {
		return &StreamRun{Report: &loadgen.Report{}}
	}
	return r.Streams[0]
}

// StreamNamed returns the stream called name, or an empty one.
func (r *Run) StreamNamed(name string) *StreamRun {
	for _, s := range r.Streams {
		if s.Stream.Name == name {
			return s
		}
	}
	return &StreamRun{Stream: Stream{Name: name}, Report: &loadgen.Report{}}
}

// Mark returns the mark with key, and whether there is one.
func (r *Run) Mark(key string) (Mark, bool) {
	for _, m := range r.Marks {
		if m.Key == key {
			return m, true
		}
	}
	return Mark{}, false
}

// Value returns a recorded value, and whether it was recorded.
func (r *Run) Value(name string) (float64, bool) {
	v, ok := r.Values[name]
	return v, ok
}

// SetValue records a value.
func (r *Run) SetValue(name string, v float64) {
	if r.Values == nil {
		r.Values = map[string]float64{}
	}
	r.Values[name] = v
}

// SeriesNamed returns the series called name, or nil.
func (r *Run) SeriesNamed(name string) *Series {
	for _, s := range r.Series {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// SeriesInPanel returns the series drawn in panel.
func (r *Run) SeriesInPanel(panel string) []*Series {
	var out []*Series
	for _, s := range r.Series {
		if s.Panel == panel {
			out = append(out, s)
		}
	}
	return out
}

// Trace returns the trace evidence for purpose.
func (r *Run) Trace(purpose string) (TraceEvidence, bool) {
	for _, t := range r.Traces {
		if t.Purpose == purpose {
			return t, true
		}
	}
	return TraceEvidence{}, false
}

// FaultWindow is the time from the MarkFault step to the end of the
// MarkRecover step (or to the end of the load without one).
func (r *Run) FaultWindow() Window {
	w := Window{From: 0, To: r.end()}
	if m, ok := r.Mark(MarkFault); ok {
		w.From = m.At
	}
	if m, ok := r.Mark(MarkRecover); ok {
		w.To = m.At + m.Took
	}
	return w
}

// Before is the time before the fault, in whole seconds: the steady state
// to compare with. (A fault at 8.002s leaves the second from 8s out.)
func (r *Run) Before() Window {
	return Window{From: 0, To: r.FaultWindow().From.Truncate(time.Second)}
}

// end is the end of the main stream's schedule.
func (r *Run) end() time.Duration {
	if d := r.Main().Report.Duration; d > 0 {
		return d
	}
	return time.Duration(len(r.Main().Report.Timeline)) * time.Second
}

// A Window is a span of a run, From inclusive, To exclusive.
type Window struct{ From, To time.Duration }

func (w Window) String() string {
	return fmt.Sprintf("%s–%s", seconds(w.From), seconds(w.To))
}

// Whole is the window cut to the whole seconds it starts and ends in: a
// phase of a run that began at 6.002s and ended at 16.001s is the seconds
// from 6s to 16s. Count on it compares phases without a second of one
// leaking into the other.
func (w Window) Whole() Window {
	return Window{From: w.From.Truncate(time.Second), To: w.To.Truncate(time.Second)}
}

// Len is how long the window lasts.
func (w Window) Len() time.Duration { return max(w.To-w.From, 0) }

// Contains reports whether t falls in the window.
func (w Window) Contains(t time.Duration) bool { return t >= w.From && t < w.To }

// overlaps reports whether the second starting at start overlaps w: a
// second half in a fault window counts as in it, so no failure near an
// edge escapes a check.
func (w Window) overlaps(start time.Duration) bool {
	return start+time.Second > w.From && start < w.To
}

// seconds writes d as seconds with one decimal: 8.0s.
func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// businessCodes are answers in which the shop told the customer the
// truth: the product is sold out, the card was declined. They are correct
// outcomes, not failures of the platform; chaos hypotheses are about
// availability, so they are counted apart. (The load buys only products
// with stock to spare, but a long suite can still sell one out.)
var businessCodes = []string{"out_of_stock", "card_declined"}

// A Tally sums the seconds of a timeline in a window, for one operation
// or for all of them.
type Tally struct {
	Seconds  int
	Requests int // sent
	OK       int
	Failed   int // answered with an error or not at all, business answers excepted
	Business int // out_of_stock, card_declined
	Skipped  int // due but not sent: too many requests were awaiting answers
	Codes    map[string]int
	// WorstP99 is the highest p99 of any second in the window. It bounds
	// the window's own p99 from above: if no second has more than 1% of
	// its answers above it, neither has the window.
	WorstP99 time.Duration
}

// Count tallies op's requests (every operation's when op is "") due in
// the seconds that overlap w.
func Count(timeline []loadgen.Second, op loadgen.Op, w Window) Tally {
	t := Tally{Codes: map[string]int{}}
	for _, s := range timeline {
		if !w.overlaps(s.Start) {
			continue
		}
		st := s.Total
		if op != "" {
			st = s.ByOp[op]
		}
		t.Seconds++
		t.Requests += st.Requests
		t.OK += st.OK
		t.Skipped += st.Skipped
		for code, n := range st.Errors {
			t.Codes[code] += n
			if slices.Contains(businessCodes, code) {
				t.Business += n
			} else {
				t.Failed += n
			}
		}
		if st.OK+st.Failed() > 0 {
			t.WorstP99 = max(t.WorstP99, st.Latency.P99)
		}
	}
	return t
}

// Due is how many requests were due: sent or skipped.
func (t Tally) Due() int { return t.Requests + t.Skipped }

// Unserved is how many due requests did not get a correct answer: failed
// or never sent.
func (t Tally) Unserved() int { return t.Failed + t.Skipped }

// ErrorRatio is the share of due requests left unserved; 0 when none was
// due.
func (t Tally) ErrorRatio() float64 {
	if t.Due() == 0 {
		return 0
	}
	return float64(t.Unserved()) / float64(t.Due())
}

// FailedOnly reports whether every failure had one of codes.
func (t Tally) FailedOnly(codes ...string) bool {
	for code, n := range t.Codes {
		if n > 0 && !slices.Contains(codes, code) && !slices.Contains(businessCodes, code) {
			return false
		}
	}
	return true
}

// summary writes "3 of 412 failed (0.73%)", with skipped requests and
// business answers when there were any.
func (t Tally) summary() string {
	s := fmt.Sprintf("%d of %d failed (%s)", t.Failed, t.Requests, percent(t.ErrorRatio()))
	if t.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", t.Skipped)
	}
	if t.Business > 0 {
		s += fmt.Sprintf(", %d business answers (sold out/declined) not counted", t.Business)
	}
	return s
}

func percent(ratio float64) string {
	if ratio != 0 && ratio < 0.001 {
		return fmt.Sprintf("%.3f%%", 100*ratio)
	}
	return trimFloat(100*ratio) + "%"
}

// RecoveredAt returns the start of the first second at or after from
// from which on every second's share of op's due requests served is at
// least ratio (a second without any of op's requests counts as served),
// and whether there is one. Seconds are the timeline's resolution: the
// answer is exact to within a second.
func RecoveredAt(timeline []loadgen.Second, op loadgen.Op, from time.Duration, ratio float64) (time.Duration, bool) {
	first := -1
	for i, s := range timeline {
		if s.Start+time.Second <= from {
			continue
		}
		t := Count(timeline[i:i+1], op, Window{From: s.Start, To: s.Start + time.Second})
		if t.Due() > 0 && 1-t.ErrorRatio() < ratio {
			first = -1
			continue
		}
		if first < 0 {
			first = i
		}
	}
	if first < 0 {
		return 0, false
	}
	return max(timeline[first].Start, from), true
}

// FirstAt returns the time of the first point at or after from whose
// value satisfies ok.
func (s *Series) FirstAt(from time.Duration, ok func(float64) bool) (time.Duration, bool) {
	if s == nil {
		return 0, false
	}
	for _, p := range s.Points {
		if p.At >= from && ok(p.V) {
			return p.At, true
		}
	}
	return 0, false
}

// SettledAt returns the time from which, at or after from, every point
// satisfies ok: the first of the last unbroken run of such points.
func (s *Series) SettledAt(from time.Duration, ok func(float64) bool) (time.Duration, bool) {
	if s == nil {
		return 0, false
	}
	var at time.Duration
	settled := false
	for _, p := range s.Points {
		if p.At < from {
			continue
		}
		switch {
		case !ok(p.V):
			settled = false
		case !settled:
			at, settled = p.At, true
		}
	}
	return at, settled
}

// Max returns the largest value in w, and whether w holds any point.
func (s *Series) Max(w Window) (float64, bool) {
	found, m := false, 0.0
	for _, p := range s.pointsIn(w) {
		if !found || p.V > m {
			m, found = p.V, true
		}
	}
	return m, found
}

// Min returns the smallest value in w, and whether w holds any point.
func (s *Series) Min(w Window) (float64, bool) {
	found, m := false, 0.0
	for _, p := range s.pointsIn(w) {
		if !found || p.V < m {
			m, found = p.V, true
		}
	}
	return m, found
}

// Mean returns the average value in w, and whether w holds any point.
func (s *Series) Mean(w Window) (float64, bool) {
	ps := s.pointsIn(w)
	if len(ps) == 0 {
		return 0, false
	}
	sum := 0.0
	for _, p := range ps {
		sum += p.V
	}
	return sum / float64(len(ps)), true
}

// Last returns the last value in w, and whether w holds any point.
func (s *Series) Last(w Window) (float64, bool) {
	ps := s.pointsIn(w)
	if len(ps) == 0 {
		return 0, false
	}
	return ps[len(ps)-1].V, true
}

// Increase is how much a counter grew over w: the last value in w minus
// the last one before it (or the first in w). A counter that restarted
// from zero counts from there.
func (s *Series) Increase(w Window) float64 {
	if s == nil {
		return 0
	}
	prev, have, total := 0.0, false, 0.0
	for _, p := range s.Points {
		if p.At >= w.To {
			break
		}
		if have && p.At >= w.From {
			if p.V >= prev {
				total += p.V - prev
			} else {
				total += p.V // restarted
			}
		}
		prev, have = p.V, true
	}
	return total
}

func (s *Series) pointsIn(w Window) []Point {
	if s == nil {
		return nil
	}
	var out []Point
	for _, p := range s.Points {
		if w.Contains(p.At) {
			out = append(out, p)
		}
	}
	return out
}

// latencyPercentile returns the p-th percentile (0–100) of the requests'
// latencies by nearest rank, and how many there were.
func latencyPercentile(reqs []Request, p float64) (time.Duration, int) {
	if len(reqs) == 0 {
		return 0, 0
	}
	ls := make([]time.Duration, len(reqs))
	for i, r := range reqs {
		ls[i] = r.Latency
	}
	slices.Sort(ls)
	rank := int(p/100*float64(len(ls)) + 0.5)
	return ls[min(max(rank-1, 0), len(ls)-1)], len(ls)
}

// requests returns the stream's requests of op sent in w that match keep.
func (s *StreamRun) requests(op loadgen.Op, w Window, keep func(Request) bool) []Request {
	var out []Request
	for _, r := range s.Requests {
		if r.Op == op && w.Contains(r.At) && (keep == nil || keep(r)) {
			out = append(out, r)
		}
	}
	return out
}

// ms writes d in milliseconds, to three significant digits.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}
