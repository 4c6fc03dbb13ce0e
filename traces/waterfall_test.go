package traces_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/traces"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// The golden files are the renderer's spec: review a change to one as
// you would a change to the code.
func TestWaterfallGolden(t *testing.T) {
	cases := []struct {
		fixture string
		width   int
	}{
		{"checkout.json", 60},
		{"breaker_open.json", 40},
		{"orphans.json", 60},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			var out bytes.Buffer
			if err := traces.Waterfall(&out, load(t, c.fixture), c.width); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(c.fixture, ".json")+".golden")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./traces -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("Waterfall differs from %s (rerun with -update if the change is intended):\n%s", golden, out.String())
			}
		})
	}
}

func TestWaterfallPlacesBarsOnTheTimeline(t *testing.T) {
	// Over 10 columns, each is 10ms of a 100ms trace.
	tr := &traces.Trace{ID: "t", Spans: []traces.Span{
		at("root", "", "gateway", "root", 0, 100),
		at("first", "root", "gateway", "first", 0, 50),
		at("second", "root", "orders", "second", 50, 50),
		at("blip", "root", "orders", "blip", 70, 0),
	}}
	tr.Spans[3].Events = []traces.Event{{Name: "retry", Time: fixtureStart.Add(90 * time.Millisecond),
		Attrs: map[string]string{"glasshouse.retry.attempt": "2", "glasshouse.retry.reason": "connection refused"}}}

	var out bytes.Buffer
	if err := traces.Waterfall(&out, tr, 10); err != nil {
		t.Fatal(err)
	}
	bars := map[string]string{
		"root":       "│██████████│",
		"├─ first":   "│█████     │",
		"├─ second":  "│     █████│",
		"└─ blip":    "│       ▏  │",
		"· retry #2": "│         ◆│ connection refused",
	}
	for label, bar := range bars {
		if !hasLine(out.String(), label, bar) {
			t.Errorf("no line with %q then %q in:\n%s", label, bar, out.String())
		}
	}
	// The scale spans the bar: 0 over its first column, the total ending
	// over its last.
	lines := strings.Split(out.String(), "\n")
	scale, root := []rune(lines[2]), []rune(lines[3])
	barStart := slices.Index(root, '│') + 1
	if got := string(scale[barStart:]); got != "0    100ms" {
		t.Errorf("scale over the bar reads %q, want %q:\n%s", got, "0    100ms", out.String())
	}
}

// A transaction's statements are events of its sql.tx span: each is a
// line with its duration and its SQL on one line, a failed one with its
// error first.
func TestWaterfallShowsATransactionsStatements(t *testing.T) {
	tr := &traces.Trace{ID: "t", Spans: []traces.Span{at("tx", "", "inventory", "sql.tx", 0, 100)}}
	tr.Spans[0].Events = []traces.Event{
		{Name: "sql.query", Time: fixtureStart.Add(10 * time.Millisecond),
			Attrs: map[string]string{"db.query.text": "SELECT available\n\t\tFROM products WHERE sku = $1", "glasshouse.db.duration_ms": "0.05"}},
		{Name: "sql.exec", Time: fixtureStart.Add(60 * time.Millisecond),
			Attrs: map[string]string{"db.query.text": "UPDATE products SET available = available - $1", "glasshouse.db.duration_ms": "0.2",
				"glasshouse.db.error": "database is locked"}},
	}
	var out bytes.Buffer
	if err := traces.Waterfall(&out, tr, 10); err != nil {
		t.Fatal(err)
	}
	for label, rest := range map[string]string{
		"· sql.query 0.05ms": "SELECT available FROM products WHERE sku = $1",
		"· sql.exec 0.2ms":   "failed: database is locked: UPDATE products SET available = available - $1",
	} {
		if !hasLine(out.String(), label, rest) {
			t.Errorf("no line with %q then %q in:\n%s", label, rest, out.String())
		}
	}
}

// hasLine reports whether some line of text contains a, then later b.
func hasLine(text, a, b string) bool {
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, a); i >= 0 && strings.Contains(line[i+len(a):], b) {
			return true
		}
	}
	return false
}

func TestWaterfallDrawsASpanCycleOnce(t *testing.T) {
	// A broken trace where two spans claim each other as parent: no root,
	// no orphan. Both must still be drawn, once.
	tr := &traces.Trace{ID: "t", Spans: []traces.Span{
		at("a", "b", "orders", "first", 0, 10),
		at("b", "a", "orders", "second", 1, 5),
	}}
	var out bytes.Buffer
	if err := traces.Waterfall(&out, tr, 20); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"first", "second"} {
		if n := strings.Count(out.String(), op); n != 1 {
			t.Errorf("%q drawn %d times:\n%s", op, n, out.String())
		}
	}
}

func TestWaterfallRefusesWhatItCannotDraw(t *testing.T) {
	tr := &traces.Trace{ID: "t", Spans: []traces.Span{at("a", "", "orders", "op", 0, 1)}}
	if err := traces.Waterfall(&bytes.Buffer{}, tr, traces.MinWidth-1); err == nil {
		t.Error("drew a timeline narrower than MinWidth")
	}
	if err := traces.Waterfall(&bytes.Buffer{}, &traces.Trace{ID: "t"}, 60); err == nil {
		t.Error("drew a trace without spans")
	}
	if err := traces.Waterfall(&bytes.Buffer{}, nil, 60); err == nil {
		t.Error("drew a nil trace")
	}
}
