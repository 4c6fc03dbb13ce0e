package chaos

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
)

// plottedRun is a run with every kind of thing a plot draws.
func plottedRun() Result {
	run := newRun(shop(25).fail(8, 10, loadgen.Checkout, 4, "unavailable").slow(8, 10, loadgen.Checkout, 2*time.Second).report(), 8*sec, 18*sec)
	run.Marks[0].Label = "SIGKILL inventory/2"
	run.Marks[1].Label = "restart inventory/2"
	run.addSeries(InstancesSeries("gateway/1", "inventory"), PanelCallers, Gauge, 25*sec, func(t time.Duration) (float64, bool) {
		return 2, t < 10*sec || t > 12*sec // a gap: the target could not be read
	})
	run.addSeries(BreakerSeries("orders/1", "payments/1"), PanelBreakers, Breaker, 25*sec,
		steps([]time.Duration{0, 9 * sec, 14 * sec, 15 * sec}, []float64{0, 2, 1, 0}))
	run.addSeries(SpansSeries("gateway/1", "success"), PanelSpans, Counter, 25*sec, func(t time.Duration) (float64, bool) {
		return 100 * t.Seconds(), true
	})
	run.addSeries(MemorySeries("gateway/1", "heap in use"), PanelMemory, Bytes, 25*sec, step(0, 8<<20, 8<<20))
	return Result{
		Experiment: Experiment{Name: "kill-inventory-replica", Title: `Kill <one> "replica" & see`},
		Run:        run,
		Checks:     []Check{{Claim: "c", Measured: "m", Pass: true}},
	}
}

func TestPlotIsAWellFormedSVGWithAxesLabelsAndLegends(t *testing.T) {
	var b bytes.Buffer
	if err := Plot(&b, plottedRun()); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	texts := svgTexts(t, svg)
	for _, want := range []string{
		`Kill <one> "replica" & see`, // escaped in the file, whole once parsed
		"PASS",
		"Requests per second (by when they were due)",
		"Error ratio per second (business answers excepted)",
		"p99 latency per second (log scale)",
		PanelCallers, PanelBreakers, PanelSpans, PanelMemory,
		"all requests sent", "checkout failed", "gateway/1 knows inventory instances", "orders/1 → payments/1",
		"closed", "half-open", "open", "no breaker",
		"▼ t=8.0s SIGKILL inventory/2", "▼ t=18.0s restart inventory/2",
		"seconds since the load started", "req/s", "% failed", "ms", "MiB",
		"0s", "25s", "1 s", "10 ms",
	} {
		if !texts[want] {
			t.Errorf("no text %q in the plot", want)
		}
	}
	if !strings.Contains(svg, `fill="#d62728" fill-opacity="0.08"`) {
		t.Error("the fault is not shaded")
	}
	if n := strings.Count(svg, `stroke-dasharray="4 3"`); n != 2*7 {
		t.Errorf("%d dashed step lines, want 2 steps × 7 panels", n)
	}
	for _, c := range breakerColours {
		if !strings.Contains(svg, `fill="`+c+`"`) {
			t.Errorf("no breaker band coloured %s", c)
		}
	}
}

func TestPlotFailedRunSaysFail(t *testing.T) {
	res := plottedRun()
	res.Checks[0].Pass = false
	var b bytes.Buffer
	if err := Plot(&b, res); err != nil {
		t.Fatal(err)
	}
	if !svgTexts(t, b.String())["FAIL"] {
		t.Error("a failed run's plot does not say FAIL")
	}
}

func TestPlotOfARunThatNeverStarted(t *testing.T) {
	var b bytes.Buffer
	if err := Plot(&b, Result{Experiment: Experiment{Title: "nothing"}, Err: errors.New("setup failed")}); err != nil {
		t.Fatal(err)
	}
	svgTexts(t, b.String())
}

// svgTexts parses svg, failing the test if it is not well-formed XML with
// an svg root, and returns the text of its text elements.
func svgTexts(t *testing.T, svg string) map[string]bool {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(svg))
	texts := map[string]bool{}
	var inText, root bool
	var cur strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if !root {
				if tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root element %v, want svg", tok.Name)
				}
				root = true
			}
			if tok.Name.Local == "text" {
				inText = true
				cur.Reset()
			}
		case xml.CharData:
			if inText {
				cur.Write(tok)
			}
		case xml.EndElement:
			if tok.Name.Local == "text" {
				texts[cur.String()] = true
				inText = false
			}
		}
	}
	return texts
}

func TestSeriesLine(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	t.Run("a gauge is drawn as steps and breaks at a gap", func(t *testing.T) {
		l := seriesLine(&Series{Kind: Gauge, Points: []Point{{-ms(200), 9}, {0, 2}, {ms(200), 1}, {ms(2000), 1}}}, "#000")
		want := []float64{2, 2, 1, math.NaN(), 1}
		if !sameFloats(l.ys, want) {
			t.Errorf("ys = %v, want %v (no sample before 0; a step at 200ms; a gap before 2s)", l.ys, want)
		}
	})
	t.Run("a counter is drawn as its rate over the last second", func(t *testing.T) {
		var pts []Point
		for i := range 11 {
			pts = append(pts, Point{ms(200 * i), float64(50 * i)}) // 250 a second
		}
		pts = append(pts, Point{ms(2200), 50}) // restarted from 0
		l := seriesLine(&Series{Kind: Counter, Points: pts}, "#000")
		for i, y := range l.ys[:len(l.ys)-1] {
			if math.Abs(y-250) > 1e-9 {
				t.Errorf("rate %d = %v, want 250", i, y)
			}
		}
		if last := l.ys[len(l.ys)-1]; math.Abs(last-250) > 1e-9 {
			t.Errorf("rate across the restart = %v, want 250", last)
		}
	})
	t.Run("bytes are drawn in MiB", func(t *testing.T) {
		l := seriesLine(&Series{Kind: Bytes, Points: []Point{{0, 3 << 20}}}, "#000")
		if l.ys[0] != 3 {
			t.Errorf("ys = %v, want [3]", l.ys)
		}
	})
}

func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			return false
		}
	}
	return true
}

func TestNiceScale(t *testing.T) {
	for _, tt := range []struct{ hi, top, step float64 }{
		{0, 1, 0.25},
		{0.3, 0.3, 0.1},
		{40, 40, 10},
		{41, 50, 10},
		{100, 100, 20},
		{7.3, 8, 2},
		{1234, 1250, 250},
	} {
		top, step := niceScale(tt.hi)
		if math.Abs(top-tt.top) > 1e-9 || math.Abs(step-tt.step) > 1e-9 {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", tt.hi, top, step, tt.top, tt.step)
		}
	}
}
