package chaos

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
)

// The timeline plot: one SVG per experiment, drawn with nothing but the
// standard library so the report opens anywhere. Panels share the time
// axis (seconds since the main stream started): request rate, error ratio
// and p99 latency from the load generator's timeline, then one panel per
// group of probes, with circuit breakers as coloured bands. The fault is
// shaded and every step of the schedule is a labelled dashed line.

// Geometry, in SVG user units (pixels at 100%).
const (
	plotWidth    = 1100
	plotLeft     = 80  // room for y tick labels
	plotRight    = 280 // room for the legend
	plotTop      = 78  // title, verdict, step labels
	panelHeight  = 150
	panelGap     = 58 // panel title and x tick labels
	bandHeight   = 16
	bandGap      = 4
	legendLine   = 16
	plotFontSize = 12
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// Breaker state colours: closed, half-open, open.
var breakerColours = [3]string{"#2ca02c", "#ff7f0e", "#d62728"}

// A line is one plotted series: points in seconds and panel units; NaN
// values break the line.
type line struct {
	name   string
	colour string
	dashed bool
	xs, ys []float64
}

// A panel is a chart (lines) or a set of breaker bands (bands).
type panel struct {
	title string
	unit  string // y axis label
	log   bool   // logarithmic y axis (latency)
	// layered lines often share values (two callers seeing the same
	// instance count): earlier ones are drawn wider, so a later one drawn
	// over them leaves them visible.
	layered bool
	lines   []line
	bands   []*Series
}

func (p panel) height() float64 {
	if len(p.bands) > 0 {
		return float64(len(p.bands)*(bandHeight+bandGap) + bandGap)
	}
	return panelHeight
}

// Plot draws the run of res as an SVG document.
func Plot(w io.Writer, res Result) error {
	run := res.Run
	if run == nil {
		run = &Run{}
	}
	panels := loadPanels(run)
	panels = append(panels, probePanels(run)...)

	xmax := math.Max(run.end().Seconds(), 1)
	for _, s := range run.Streams {
		xmax = math.Max(xmax, (s.Offset + time.Duration(len(s.Report.Timeline))*time.Second).Seconds())
	}
	for _, p := range panels {
		for _, l := range p.lines {
			for _, x := range l.xs {
				xmax = math.Max(xmax, x)
			}
		}
	}
	xmax = math.Ceil(xmax/5) * 5
	innerWidth := float64(plotWidth - plotLeft - plotRight)
	xOf := func(sec float64) float64 { return plotLeft + sec/xmax*innerWidth }

	height := float64(plotTop)
	for _, p := range panels {
		height += p.height() + panelGap
	}
	height += 20

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" font-family="Helvetica, Arial, sans-serif" font-size="%d">`+"\n",
		plotWidth, height, plotWidth, height, plotFontSize)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	verdictColour := "#2ca02c"
	if !res.Passed() {
		verdictColour = "#d62728"
	}
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="17" font-weight="bold">%s</text>`+"\n", plotLeft, esc(res.Experiment.Title))
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="17" font-weight="bold" text-anchor="end" fill="%s">%s</text>`+"\n",
		plotWidth-20, verdictColour, res.Verdict())
	fault := run.FaultWindow()
	_, hasFault := run.Mark(MarkFault)

	y := float64(plotTop)
	for _, p := range panels {
		top, h := y+22, p.height()
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-weight="bold">%s</text>`+"\n", plotLeft, top-8, esc(p.title))
		// The fault, shaded, under everything else.
		if hasFault && fault.Len() > 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d62728" fill-opacity="0.08"/>`+"\n",
				xOf(fault.From.Seconds()), top, xOf(fault.To.Seconds())-xOf(fault.From.Seconds()), h)
		}
		drawXAxis(&b, xOf, xmax, top, h)
		if len(p.bands) > 0 {
			drawBands(&b, p, xOf, xmax, top)
		} else {
			drawChart(&b, p, xOf, top)
		}
		for _, m := range run.Marks {
			x := xOf(m.At.Seconds())
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#444" stroke-dasharray="4 3"/>`+"\n", x, top, x, top+h)
		}
		y = top + h + panelGap - 22
	}
	// Step labels above the first panel, staggered so neighbours never
	// overlap.
	for i, m := range run.Marks {
		x := xOf(m.At.Seconds())
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" fill="#444">▼ t=%s %s</text>`+"\n",
			x-4, 44+14*(i%2), seconds(m.At), esc(m.Label))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">seconds since the load started</text>`+"\n",
		plotLeft+innerWidth/2, height-8)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// loadPanels are the panels drawn from the load generator's timelines.
func loadPanels(run *Run) []panel {
	rate := panel{title: "Requests per second (by when they were due)", unit: "req/s"}
	errs := panel{title: "Error ratio per second (business answers excepted)", unit: "% failed"}
	lat := panel{title: "p99 latency per second (log scale)", unit: "ms", log: true}
	colour := 0
	next := func() string { c := palette[colour%len(palette)]; colour++; return c }
	for _, s := range run.Streams {
		ops := []loadgen.Op{""}
		if s.Stream.Load.Mix[loadgen.Checkout] > 0 && len(s.Stream.Load.Mix) > 1 {
			ops = append(ops, loadgen.Checkout)
		}
		for _, op := range ops {
			name := s.Stream.Name
			if len(run.Streams) == 1 {
				name = ""
			}
			what := opLabel(op)
			if op == "" && len(s.Stream.Load.Mix) == 1 {
				for only := range s.Stream.Load.Mix {
					what = string(only) // a stream of one operation
				}
			}
			label := strings.TrimSpace(name + " " + what)
			c := next()
			sent, failed := line{name: label + " sent", colour: c}, line{name: label + " failed", colour: c, dashed: true}
			ratio := line{name: label, colour: c}
			p99 := line{name: label, colour: c}
			for _, sec := range s.Report.Timeline {
				x := (s.Offset + sec.Start).Seconds() + 0.5
				st := sec.Total
				if op != "" {
					st = sec.ByOp[op]
				}
				t := Count([]loadgen.Second{sec}, op, Window{sec.Start, sec.Start + time.Second})
				sent.xs, sent.ys = append(sent.xs, x), append(sent.ys, float64(t.Due()))
				failed.xs, failed.ys = append(failed.xs, x), append(failed.ys, float64(t.Unserved()))
				ratio.xs, p99.xs = append(ratio.xs, x), append(p99.xs, x)
				if t.Due() == 0 {
					ratio.ys = append(ratio.ys, math.NaN())
				} else {
					ratio.ys = append(ratio.ys, 100*t.ErrorRatio())
				}
				if st.OK+st.Failed() == 0 {
					p99.ys = append(p99.ys, math.NaN())
				} else {
					p99.ys = append(p99.ys, float64(st.Latency.P99)/float64(time.Millisecond))
				}
			}
			rate.lines = append(rate.lines, sent, failed)
			errs.lines = append(errs.lines, ratio)
			lat.lines = append(lat.lines, p99)
		}
	}
	return []panel{rate, errs, lat}
}

func opLabel(op loadgen.Op) string {
	if op == "" {
		return "all requests"
	}
	return string(op)
}

// probePanels are the panels of the sampled series, in order of first
// appearance.
func probePanels(run *Run) []panel {
	var (
		order []string
		byKey = map[string]*panel{}
	)
	for _, s := range run.Series {
		p := byKey[s.Panel]
		if p == nil {
			p = &panel{title: s.Panel, layered: s.Kind == Gauge}
			switch s.Kind {
			case Counter:
				p.unit = "per second"
			case Bytes:
				p.unit = "MiB"
			default:
				p.unit = "count"
			}
			byKey[s.Panel] = p
			order = append(order, s.Panel)
		}
		if s.Kind == Breaker {
			p.bands = append(p.bands, s)
			continue
		}
		p.lines = append(p.lines, seriesLine(s, palette[len(p.lines)%len(palette)]))
	}
	var out []panel
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out
}

// seriesLine turns a sampled series into a line: gauges as steps (a
// value holds until the next sample), counters as their rate over the
// last second, bytes in MiB. A gap in the sampling (the target could not
// be read) breaks the line rather than bridging it, and samples taken
// before the load started are left out.
func seriesLine(s *Series, colour string) line {
	l := line{name: s.Name, colour: colour}
	gap := func(x float64) { l.xs, l.ys = append(l.xs, x), append(l.ys, math.NaN()) }
	// For counters: the increase since the first point, through restarts.
	var increase []float64
	if s.Kind == Counter {
		total := 0.0
		for i, pt := range s.Points {
			if i > 0 {
				d := pt.V - s.Points[i-1].V
				if d < 0 {
					d = pt.V // the process restarted
				}
				total += d
			}
			increase = append(increase, total)
		}
	}
	from := 0 // counters: the first point within the last second
	for i, pt := range s.Points {
		if pt.At < 0 {
			continue
		}
		x := pt.At.Seconds()
		if i > 0 && pt.At-s.Points[i-1].At > 3*SampleEvery && s.Points[i-1].At >= 0 {
			gap(x)
		}
		switch s.Kind {
		case Counter:
			for pt.At-s.Points[from].At > time.Second {
				from++
			}
			dt := (pt.At - s.Points[from].At).Seconds()
			if dt <= 0 {
				continue
			}
			l.xs, l.ys = append(l.xs, x), append(l.ys, (increase[i]-increase[from])/dt)
		case Bytes:
			l.xs, l.ys = append(l.xs, x), append(l.ys, pt.V/(1<<20))
		default:
			if n := len(l.ys); n > 0 && !math.IsNaN(l.ys[n-1]) {
				l.xs, l.ys = append(l.xs, x), append(l.ys, l.ys[n-1]) // the step
			}
			l.xs, l.ys = append(l.xs, x), append(l.ys, pt.V)
		}
	}
	return l
}

// drawXAxis draws a panel's vertical grid, tick labels and frame.
func drawXAxis(b *strings.Builder, xOf func(float64) float64, xmax, top, h float64) {
	step := 5.0
	if xmax > 60 {
		step = 10
	}
	for t := 0.0; t <= xmax+1e-9; t += step {
		x := xOf(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", x, top, x, top+h)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11" fill="#555">%gs</text>`+"\n", x, top+h+14, t)
	}
	fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n",
		plotLeft, top, xOf(xmax)-plotLeft, h)
}

// drawChart draws a panel's lines with its y axis and legend.
func drawChart(b *strings.Builder, p panel, xOf func(float64) float64, top float64) {
	h := p.height()
	var yOf func(float64) float64
	var ticks []float64
	var label func(float64) string
	if p.log {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, l := range p.lines {
			for _, v := range l.ys {
				if !math.IsNaN(v) && v > 0 {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
		if math.IsInf(lo, 1) {
			lo, hi = 1, 1000
		}
		dlo, dhi := math.Floor(math.Log10(math.Max(lo, 0.1))), math.Ceil(math.Log10(math.Max(hi, 1)))
		if dhi <= dlo {
			dhi = dlo + 1
		}
		yOf = func(v float64) float64 {
			v = math.Max(v, math.Pow(10, dlo))
			return top + h - (math.Log10(v)-dlo)/(dhi-dlo)*h
		}
		for d := dlo; d <= dhi; d++ {
			ticks = append(ticks, math.Pow(10, d))
		}
		label = func(v float64) string {
			if v >= 1000 {
				return fmt.Sprintf("%g s", v/1000)
			}
			return fmt.Sprintf("%g ms", v)
		}
	} else {
		hi := 0.0
		for _, l := range p.lines {
			for _, v := range l.ys {
				if !math.IsNaN(v) {
					hi = math.Max(hi, v)
				}
			}
		}
		top2, step := niceScale(hi)
		if top2-hi < step/4 {
			top2 += step // room above a line at the maximum, so the frame does not hide it
		}
		yOf = func(v float64) float64 { return top + h - v/top2*h }
		for v := 0.0; v <= top2+step/2; v += step {
			ticks = append(ticks, v)
		}
		label = func(v float64) string { return trimFloat(v) }
	}
	for _, t := range ticks {
		y := yOf(t)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", plotLeft, y, xOf(0)+float64(plotWidth-plotLeft-plotRight), y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" font-size="11" fill="#555">%s</text>`+"\n", plotLeft-6, y+4, esc(label(t)))
	}
	fmt.Fprintf(b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle" font-size="11" fill="#555">%s</text>`+"\n", top+h/2, esc(p.unit))
	for i, l := range p.lines {
		width := 1.6
		if p.layered {
			width += 1.2 * float64(min(len(p.lines)-1-i, 4))
		}
		for _, seg := range segments(l, xOf, yOf) {
			dash := ""
			if l.dashed {
				dash = ` stroke-dasharray="5 3"`
			}
			if len(seg) == 1 {
				fmt.Fprintf(b, `<circle cx="%s" r="2" fill="%s"/>`+"\n", strings.Replace(seg[0], ",", `" cy="`, 1), l.colour)
				continue
			}
			fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f" stroke-linejoin="round"%s/>`+"\n",
				strings.Join(seg, " "), l.colour, width, dash)
		}
	}
	legendX := float64(plotWidth-plotRight) + 14
	for i, l := range p.lines {
		ly := top + 10 + float64(i*legendLine)
		dash := ""
		if l.dashed {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", legendX, ly-4, legendX+18, ly-4, l.colour, dash)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11">%s</text>`+"\n", legendX+24, ly, esc(l.name))
	}
}

// segments turns a line into polyline point lists, split at NaN values.
func segments(l line, xOf, yOf func(float64) float64) [][]string {
	var out [][]string
	var cur []string
	for i := range l.xs {
		if math.IsNaN(l.ys[i]) {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, fmt.Sprintf("%.1f,%.1f", xOf(l.xs[i]), yOf(l.ys[i])))
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// drawBands draws each breaker series as a row of state-coloured bands,
// grey where the breaker did not exist (its instance had left discovery).
func drawBands(b *strings.Builder, p panel, xOf func(float64) float64, xmax, top float64) {
	legendX := float64(plotWidth-plotRight) + 14
	for i, s := range p.bands {
		y := top + bandGap + float64(i*(bandHeight+bandGap))
		fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="#eeeeee"/>`+"\n", plotLeft, y, xOf(xmax)-plotLeft, bandHeight)
		for j, pt := range s.Points {
			if pt.At < 0 {
				continue // sampled before the load started
			}
			end := pt.At + SampleEvery
			if j+1 < len(s.Points) {
				// A sample stands for the time until the next one, unless
				// the series paused (a breaker forgotten, then made again).
				end = min(s.Points[j+1].At, pt.At+3*SampleEvery)
			}
			state := min(max(int(pt.V), 0), 2)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"/>`+"\n",
				xOf(pt.At.Seconds()), y, math.Max(xOf(end.Seconds())-xOf(pt.At.Seconds()), 0.5), bandHeight, breakerColours[state])
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11">%s</text>`+"\n", legendX, y+12, esc(s.Name))
	}
	// The states' key, under the panel's title.
	kx := float64(plotLeft) + 260
	for i, name := range []string{"closed", "half-open", "open", "no breaker"} {
		c := "#eeeeee"
		if i < 3 {
			c = breakerColours[i]
		}
		x := kx + float64(i*95)
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="12" height="10" fill="%s" stroke="#999" stroke-width="0.5"/>`+"\n", x, top-18, c)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11">%s</text>`+"\n", x+16, top-9, name)
	}
}

// niceScale returns a round upper bound for values up to hi and a round
// tick step dividing it into four to six steps.
func niceScale(hi float64) (top, step float64) {
	if hi <= 0 || math.IsNaN(hi) {
		return 1, 0.25
	}
	raw := hi / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		step = m * mag
		if step >= raw {
			break
		}
	}
	return math.Ceil(hi/step) * step, step
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

func esc(s string) string { return xmlEscaper.Replace(s) }
