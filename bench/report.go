package bench

import (
	"fmt"
	"html"
	"io"
	"time"
)

// Report is one `make bench` run: its targets measured one after the
// other on one machine, the first the reference the others are compared
// with.
type Report struct {
	Machine string
	Started time.Time
	Results []Result
	// Tracing names the result with tracing on and the one with it off
	// whose throughputs give what tracing costs; either may be empty.
	TracingOn, TracingOff string
}

// Ratio is r's throughput over the reference's (the first result's).
func (rep Report) Ratio(r Result) float64 {
	if len(rep.Results) == 0 || rep.Results[0].PerSecond() == 0 {
		return 0
	}
	return r.PerSecond() / rep.Results[0].PerSecond()
}

// TracingCost is the share of throughput tracing costs, and whether both
// runs are in the report.
func (rep Report) TracingCost() (float64, bool) {
	on, off := rep.find(rep.TracingOn), rep.find(rep.TracingOff)
	if on == nil || off == nil || off.PerSecond() == 0 {
		return 0, false
	}
	return 1 - on.PerSecond()/off.PerSecond(), true
}

func (rep Report) find(name string) *Result {
	for i := range rep.Results {
		if rep.Results[i].Name == name {
			return &rep.Results[i]
		}
	}
	return nil
}

// WriteText writes the summary table for the terminal.
func (rep Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%-28s %12s %8s %9s %9s %7s %12s %10s\n", "", "checkouts/s", "× ref", "p50", "p99", "failed", "CPU/checkout", "peak RSS")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%-28s %12.0f %8.3f %9s %9s %7d %10.2fms %7.0f MiB\n", r.Name, r.PerSecond(), rep.Ratio(r),
			ms(r.P50), ms(r.P99), r.Failed, millis(r.CPUPerCheckout(nil)), mib(r.PeakRSS()))
	}
	if cost, ok := rep.TracingCost(); ok {
		fmt.Fprintf(w, "tracing every request costs %.0f%% of throughput\n", 100*cost)
	}
	if !rep.hasHalfLoad() {
		return
	}
	fmt.Fprintf(w, "\nat half of saturation, open loop:\n%-28s %12s %9s %9s %9s %7s %8s\n", "", "checkouts/s", "p50", "p99", "max", "failed", "skipped")
	for _, r := range rep.Results {
		if h := r.HalfLoad; h != nil {
			fmt.Fprintf(w, "%-28s %12.0f %9s %9s %9s %7d %8d\n", r.Name, h.Rate, ms(h.P50), ms(h.P99), ms(h.Max), h.Failed, h.Skipped)
		}
	}
}

func (rep Report) hasHalfLoad() bool {
	for _, r := range rep.Results {
		if r.HalfLoad != nil {
			return true
		}
	}
	return false
}

// WriteMarkdown writes the report: the comparison, then each target's
// processes.
func (rep Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "# make bench, %s\n\n", rep.Started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Machine: %s.\n\n", rep.Machine)
	if len(rep.Results) > 0 {
		r := rep.Results[0]
		fmt.Fprintf(w, "Each target driven by a closed loop over %d connections for %s after a warm-up: "+
			"checkouts of one item by one logged-in customer, each with a fresh Idempotency-Key. "+
			"CPU is user plus system time from /proc over the measured window, per completed checkout; "+
			"peak RSS is each process's VmHWM. × ref is the throughput over %s's.\n\n", r.Connections, r.Duration.Round(time.Second), r.Name)
	}
	fmt.Fprintln(w, "| target | checkouts/s | × ref | p50 | p99 | failed | CPU ms per checkout | peak RSS MiB |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "| %s | %.0f | %.3f | %s | %s | %d | %.2f | %.0f |\n", r.Name, r.PerSecond(), rep.Ratio(r),
			ms(r.P50), ms(r.P99), r.Failed, millis(r.CPUPerCheckout(nil)), mib(r.PeakRSS()))
	}
	if cost, ok := rep.TracingCost(); ok {
		fmt.Fprintf(w, "\nTracing every request (%s against %s) costs %.0f%% of throughput.\n", rep.TracingOn, rep.TracingOff, 100*cost)
	}
	if rep.hasHalfLoad() {
		fmt.Fprint(w, "\n## At half of saturation, open loop\n\n")
		fmt.Fprint(w, "Then each target gets an open loop at half the rate its closed loop reached: checkouts sent on schedule "+
			"whatever the answers, so a stall shows as latency (latency counts from when a request was due).\n\n")
		fmt.Fprintln(w, "| target | checkouts/s | for | p50 | p99 | max | failed | skipped |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range rep.Results {
			if h := r.HalfLoad; h != nil {
				fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %d | %d |\n", r.Name, h.Rate, h.Duration.Round(time.Second),
					ms(h.P50), ms(h.P99), ms(h.Max), h.Failed, h.Skipped)
			}
		}
	}
	for _, r := range rep.Results {
		fmt.Fprintf(w, "\n## %s\n\n", r.Name)
		if len(r.Errors) > 0 {
			fmt.Fprintf(w, "Failed checkouts by code: %v.\n\n", r.Errors)
		}
		fmt.Fprintln(w, "| process | CPU ms per checkout | share | peak RSS MiB |")
		fmt.Fprintln(w, "|---|---:|---:|---:|")
		total := r.CPUPerCheckout(nil)
		for _, u := range byName(r.Usage) {
			share := 0.0
			if total > 0 {
				share = float64(r.CPUPerCheckout(&u)) / float64(total)
			}
			fmt.Fprintf(w, "| %s | %.3f | %.0f%% | %.0f |\n", u.Name, millis(r.CPUPerCheckout(&u)), 100*share, mib(u.PeakRSS))
		}
	}
}

// WriteSVG draws two bar charts: checkouts per second, and CPU
// milliseconds per checkout, one bar per target.
func (rep Report) WriteSVG(w io.Writer) {
	const width, left, barH, gap, chartGap = 760, 230, 22, 8, 48
	rows := len(rep.Results)
	chartH := rows*(barH+gap) + 30
	height := 2*chartH + chartGap + 20
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="13">`+"\n", width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	chart := func(top int, title string, value func(Result) float64, label func(Result) string) {
		most := 0.0
		for _, r := range rep.Results {
			most = max(most, value(r))
		}
		fmt.Fprintf(w, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", top+16, html.EscapeString(title))
		for i, r := range rep.Results {
			y := top + 26 + i*(barH+gap)
			bar := 0.0
			if most > 0 {
				bar = value(r) / most * float64(width-left-120)
			}
			fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+barH-6, html.EscapeString(r.Name))
			fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, max(bar, 1), barH, colour(i))
			fmt.Fprintf(w, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(left)+max(bar, 1)+6, y+barH-6, html.EscapeString(label(r)))
		}
	}
	chart(0, "Checkouts per second (closed loop, saturation)", Result.PerSecond, func(r Result) string {
		return fmt.Sprintf("%.0f/s (%.3f×)", r.PerSecond(), rep.Ratio(r))
	})
	chart(chartH+chartGap, "CPU milliseconds per checkout, all processes", func(r Result) float64 {
		return millis(r.CPUPerCheckout(nil))
	}, func(r Result) string { return fmt.Sprintf("%.2f ms", millis(r.CPUPerCheckout(nil))) })
	fmt.Fprintf(w, `<text x="10" y="%d" fill="#555" font-size="11">%s</text>`+"\n", height-6, html.EscapeString(rep.Machine))
	fmt.Fprintln(w, "</svg>")
}

func colour(i int) string {
	palette := []string{"#8c8c8c", "#2e7d32", "#66bb6a", "#1565c0", "#ef6c00"}
	return palette[i%len(palette)]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// ms writes a latency in milliseconds with three significant digits.
func ms(d time.Duration) string {
	v := millis(d)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}
