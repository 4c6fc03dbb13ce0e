package loadgen

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// A Report is what a run's customers saw.
type Report struct {
	Target string  // the gateway's base URL
	Rate   float64 // the requests per second asked for; 0 in a closed loop
	// Connections is a closed loop's workers (Config.Connections), else 0.
	Connections int
	// Started is when the first request was due; every offset in the
	// report counts from it.
	Started time.Time
	// Duration is how long requests were sent for: the configured duration,
	// or less when the run was interrupted.
	Duration    time.Duration
	Interrupted bool // the run's context was cancelled before the end
	// Throughput is the requests sent per second of Duration. In an open
	// loop it stays at Rate whatever the answers, unless requests were
	// skipped or this machine could not keep up.
	Throughput float64

	Total Stats        // every request of the run
	ByOp  map[Op]Stats // the same, by operation
	// ErrorTraces holds, for each error code, the trace IDs (X-Trace-Id) of
	// the first few requests that failed with it, to open in Jaeger. A
	// transport error has no answer, so no trace ID.
	ErrorTraces map[string][]string
	// Timeline splits the run into seconds, by when requests were due, to
	// plot request rate, error ratio and latency over time.
	Timeline []Second
}

// Stats summarise a set of requests: a run's, an operation's, a second's.
type Stats struct {
	Requests int            // sent
	OK       int            // answered 2xx
	Errors   map[string]int // failed, by problem code, http_<status>, CodeTransport or CodeInvalidResponse
	Skipped  int            // due, but not sent: MaxInFlight requests were awaiting answers
	// Latency covers every answered request, failed or not: a fast 503 is
	// what its customer saw too. It runs from when the request was due.
	Latency Latency
}

// Failed is how many requests failed, whatever the code.
func (s Stats) Failed() int {
	n := 0
	for _, c := range s.Errors {
		n += c
	}
	return n
}

// Latency is a latency distribution, within 0.1%.
type Latency struct {
	P50, P90, P99, P999, Max time.Duration
}

// A Second is one second of a run: the requests due in it, however late
// they were answered.
type Second struct {
	Start time.Duration // since Report.Started
	Total Stats
	ByOp  map[Op]Stats
}

// WriteText writes the end-of-run summary: totals, latency by operation,
// and errors by code with traces to look at.
func (r *Report) WriteText(w io.Writer) {
	if r.Connections > 0 {
		fmt.Fprintf(w, "\n%s, closed loop over %d connections, for %s", r.Target, r.Connections, r.Duration.Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "\n%s at %g req/s for %s", r.Target, r.Rate, r.Duration.Round(time.Millisecond))
	}
	if r.Interrupted {
		fmt.Fprint(w, " (interrupted)")
	}
	fmt.Fprintf(w, "\nsent %d (%.1f/s)  ok %d (%s)  failed %d  skipped %d\n\n",
		r.Total.Requests, r.Throughput, r.Total.OK, percent(r.Total.OK, r.Total.Requests), r.Total.Failed(), r.Total.Skipped)

	const columns = "%-8s %8v %8v %8v %8v %8v %8v %8v %8v %8v\n"
	fmt.Fprintf(w, columns, "", "sent", "ok", "failed", "skipped", "p50", "p90", "p99", "p99.9", "max")
	row := func(name string, s Stats) {
		p50, p90, p99, p999, most := "-", "-", "-", "-", "-"
		if s.OK+s.Failed() > 0 {
			l := s.Latency
			p50, p90, p99, p999, most = short(l.P50), short(l.P90), short(l.P99), short(l.P999), short(l.Max)
		}
		fmt.Fprintf(w, columns, name, s.Requests, s.OK, s.Failed(), s.Skipped, p50, p90, p99, p999, most)
	}
	for _, op := range Ops() {
		row(string(op), r.ByOp[op])
	}
	row("all", r.Total)

	if len(r.Total.Errors) == 0 {
		return
	}
	codes := make([]string, 0, len(r.Total.Errors))
	for code := range r.Total.Errors {
		codes = append(codes, code)
	}
	slices.SortFunc(codes, func(a, b string) int {
		return cmp.Or(cmp.Compare(r.Total.Errors[b], r.Total.Errors[a]), cmp.Compare(a, b))
	})
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "error\tcount\tby operation\ttraces")
	for _, code := range codes {
		var byOp []string
		for _, op := range Ops() {
			if n := r.ByOp[op].Errors[code]; n > 0 {
				byOp = append(byOp, fmt.Sprintf("%s %d", op, n))
			}
		}
		traces := strings.Join(r.ErrorTraces[code], " ")
		if traces == "" {
			traces = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", code, r.Total.Errors[code], strings.Join(byOp, ", "), traces)
	}
	tw.Flush()
}

func percent(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

// short rounds d to three significant digits, the histogram's precision:
// 41.2ms, 950µs, 1.23s.
func short(d time.Duration) string {
	unit := time.Duration(1)
	for d >= 1000*unit {
		unit *= 10
	}
	return d.Round(unit).String()
}
