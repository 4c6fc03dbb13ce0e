package traces

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// MinWidth is the narrowest timeline Waterfall draws.
const MinWidth = 10

// Column limits that keep a line on a wide terminal: labels deeper than
// maxLabel runes and details longer than maxDetail are cut with "…".
const (
	maxLabel     = 64
	maxDetail    = 120
	maxStatement = 60
)

// Waterfall draws the trace as a tree in start order, one line per span:
// a ✗ on failed spans, the service, the operation indented under its
// parent, the duration, a bar placed and scaled on the trace's timeline
// (width columns), and what is worth knowing about the span (its error,
// the instance an HTTP call went to and its status, the SQL statement).
//
// The span's events that tell the resilience story (retries, breaker
// rejections and state changes, injected faults, saga steps) are drawn
// among its children at the moment they happened, with a ◆ on the
// timeline, so an attempt, the retry it caused and the next attempt read
// in order. Spans whose parent is missing are drawn at the top level and
// announced in the header.
//
// The output is plain text: no colour, nothing that needs a terminal.
func Waterfall(w io.Writer, t *Trace, width int) error {
	if width < MinWidth {
		return fmt.Errorf("waterfall: width %d is too narrow (at least %d columns)", width, MinWidth)
	}
	if t == nil || len(t.Spans) == 0 {
		return errors.New("waterfall: the trace has no spans")
	}
	d := newDrawing(t, width)
	d.drawAll()

	var b strings.Builder
	d.header(&b)
	d.table(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

// A row is one line of the table.
type row struct {
	failed   bool
	service  string
	label    string
	duration string
	bar      string
	detail   string
}

type drawing struct {
	t        *Trace
	timeline timeline
	children map[string][]Span
	orphans  []Span
	drawn    map[string]bool
	rows     []row
}

func newDrawing(t *Trace, width int) *drawing {
	d := &drawing{
		t:        t,
		timeline: newTimeline(t, width),
		children: map[string][]Span{},
		orphans:  t.Orphans(),
		drawn:    map[string]bool{},
	}
	for _, s := range t.Spans {
		if s.ParentID != "" {
			d.children[s.ParentID] = append(d.children[s.ParentID], s)
		}
	}
	return d
}

// drawAll draws each root and orphan as a tree of its own. A span still
// undrawn after that sits on a cycle of parents (a broken trace): it is
// drawn at the top level too, so that nothing Jaeger returned is hidden.
func (d *drawing) drawAll() {
	tops := append(d.t.Roots(), d.orphans...)
	slices.SortStableFunc(tops, func(a, b Span) int { return a.Start.Compare(b.Start) })
	for _, s := range tops {
		d.span(s, "", "")
	}
	for _, s := range d.t.Spans {
		if !d.drawn[s.ID] {
			d.span(s, "", "")
		}
	}
}

// span draws s after connector (its branch of the tree), then its
// children and events, each line starting with indent.
func (d *drawing) span(s Span, connector, indent string) {
	d.drawn[s.ID] = true
	detail := spanDetail(s)
	if slices.ContainsFunc(d.orphans, func(o Span) bool { return o.ID == s.ID }) {
		detail = join(detail, "(parent "+s.ParentID+" not in the trace)")
	}
	d.rows = append(d.rows, row{
		failed:   s.Error,
		service:  s.Service,
		label:    connector + s.Operation,
		duration: formatDuration(s.Duration),
		bar:      d.timeline.bar(s.Start, s.End()),
		detail:   detail,
	})

	items := d.items(s)
	for i, it := range items {
		branch, next := "├─ ", "│  "
		if i == len(items)-1 {
			branch, next = "└─ ", "   "
		}
		if it.span != nil {
			d.span(*it.span, indent+branch, indent+next)
			continue
		}
		d.rows = append(d.rows, row{
			label:  indent + branch + "· " + it.label,
			bar:    d.timeline.mark(it.at, "◆"),
			detail: it.detail,
		})
	}
}

// An item is what is drawn under a span: a child span or an event.
type item struct {
	at            time.Time
	span          *Span
	label, detail string
}

// items merges s's undrawn children and notable events in time order. On
// a tie the event comes first (the sort is stable and events go in
// first): the event, a saga step or a retry, is what led to the child.
func (d *drawing) items(s Span) []item {
	var items []item
	for _, e := range s.Events {
		if label, detail, ok := describeEvent(e); ok {
			items = append(items, item{at: e.Time, label: label, detail: detail})
		}
	}
	for _, c := range d.children[s.ID] {
		if !d.drawn[c.ID] {
			items = append(items, item{at: c.Start, span: &c})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int { return a.at.Compare(b.at) })
	// Claim the children now, so a span that is its own ancestor in a
	// broken trace is drawn once instead of forever.
	for _, it := range items {
		if it.span != nil {
			d.drawn[it.span.ID] = true
		}
	}
	return items
}

func (d *drawing) header(b *strings.Builder) {
	errs := len(d.t.Find(func(s Span) bool { return s.Error }))
	services := d.t.Services()
	fmt.Fprintf(b, "trace %s: %s, %s, %s (%s), %s\n", d.t.ID,
		formatDuration(d.timeline.total), plural(len(d.t.Spans), "span"),
		plural(len(services), "service"), strings.Join(services, ", "), plural(errs, "error"))
	if n := len(d.orphans); n > 0 {
		fmt.Fprintf(b, "warning: %s whose parent is not in the trace, drawn at the top level: the parent is not exported yet, was lost with its process, or belongs to a caller outside the platform\n",
			plural(n, "span"))
	}
	b.WriteString("\n")
}

func (d *drawing) table(b *strings.Builder) {
	var serviceW, labelW, durationW int
	for i, r := range d.rows {
		d.rows[i].label = truncate(r.label, maxLabel)
		d.rows[i].detail = truncate(r.detail, maxDetail)
		serviceW = max(serviceW, utf8.RuneCountInString(r.service))
		labelW = max(labelW, utf8.RuneCountInString(d.rows[i].label))
		durationW = max(durationW, utf8.RuneCountInString(r.duration))
	}

	// The scale sits above the bars: the trace starts at 0 and lasts
	// total.
	indent := 2 + serviceW + 2 + labelW + 2 + durationW + 2
	total := formatDuration(d.timeline.total)
	gap := max(d.timeline.width-1-utf8.RuneCountInString(total), 1)
	fmt.Fprintf(b, "%s0%s%s\n", strings.Repeat(" ", indent), strings.Repeat(" ", gap), total)

	for _, r := range d.rows {
		mark := ""
		if r.failed {
			mark = "✗"
		}
		line := fmt.Sprintf("%-2s%-*s  %-*s  %*s │%s│ %s", mark, serviceW, r.service, labelW, r.label, durationW, r.duration, r.bar, r.detail)
		b.WriteString(strings.TrimRight(line, " "))
		b.WriteString("\n")
	}
}

// describeEvent turns the events the platform records into a short label
// and a detail. Recorded errors are left out: the span's line already
// carries the message.
func describeEvent(e Event) (label, detail string, ok bool) {
	a := e.Attrs
	switch {
	case e.Name == "exception":
		return "", "", false
	case e.Name == "retry":
		return "retry #" + a["glasshouse.retry.attempt"], a["glasshouse.retry.reason"], true
	case e.Name == "breaker.rejected":
		return "breaker rejected", a["glasshouse.instance"] + " is " + a["glasshouse.breaker.state"], true
	case e.Name == "breaker.state_change":
		return "breaker " + a["glasshouse.breaker.from"] + "→" + a["glasshouse.breaker.to"], a["glasshouse.instance"], true
	case e.Name == "fault.injected":
		label = "fault " + a["glasshouse.fault.type"]
		if ms := a["glasshouse.fault.latency_ms"]; ms != "" {
			label += " " + ms + "ms"
		}
		return label, "", true
	case e.Name == "sql.exec" || e.Name == "sql.query":
		// A statement of a transaction (storage's sql.tx span): its SQL
		// on one line, and its error if it failed.
		label = e.Name
		if ms := a["glasshouse.db.duration_ms"]; ms != "" {
			label += " " + ms + "ms"
		}
		detail = strings.Join(strings.Fields(a["db.query.text"]), " ")
		if msg := a["glasshouse.db.error"]; msg != "" {
			detail = "failed: " + msg + ": " + detail
		}
		return label, detail, true
	case strings.HasPrefix(e.Name, "saga."):
		return "saga " + strings.TrimPrefix(e.Name, "saga."), attrList(a, "glasshouse.saga.", "glasshouse.order."), true
	case e.Name == "":
		return "log", attrList(a), true
	}
	return e.Name, attrList(a), true
}

// attrList renders attributes as sorted "key=value" pairs, dropping the
// first of prefixes that a key starts with.
func attrList(attrs map[string]string, prefixes ...string) string {
	var parts []string
	for k, v := range attrs {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				k = strings.TrimPrefix(k, p)
				break
			}
		}
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// spanDetail is what the line says after the bar: for an HTTP call the
// instance it went to and the status it got, for a database call the
// statement, and for a failed span why it failed.
func spanDetail(s Span) string {
	var peer, statement string
	if s.Kind == "client" && s.Tags["server.address"] != "" && s.Tags["http.request.method"] != "" {
		peer = "→ " + s.Tags["server.address"]
		if port := s.Tags["server.port"]; port != "" {
			peer += ":" + port
		}
	}
	if q := s.Tags["db.query.text"]; q != "" {
		statement = truncate(strings.Join(strings.Fields(q), " "), maxStatement)
	}
	var links []string
	for _, l := range s.Links {
		links = append(links, "↩ linked from trace "+l.TraceID+" span "+l.SpanID)
	}
	return join(peer, s.Tags["http.response.status_code"], statement, s.ErrorMessage(), strings.Join(links, ", "))
}

// join joins the non-empty parts with a space.
func join(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), " ")
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// A timeline maps instants of the trace to columns of the bar.
type timeline struct {
	start time.Time
	total time.Duration
	width int
}

func newTimeline(t *Trace, width int) timeline {
	start, end := t.Spans[0].Start, t.Spans[0].End()
	for _, s := range t.Spans {
		start = minTime(start, s.Start)
		end = maxTime(end, s.End())
	}
	return timeline{start: start, total: end.Sub(start), width: width}
}

// col returns the column boundary nearest to at, from 0 (the trace's
// start) to width (its end).
func (tl timeline) col(at time.Time) int {
	if tl.total <= 0 {
		return 0
	}
	c := int(math.Round(float64(at.Sub(tl.start)) / float64(tl.total) * float64(tl.width)))
	return min(max(c, 0), tl.width)
}

// bar fills the columns between from and to. An interval narrower than
// half a column still shows, as a thin ▏, so short spans are not lost.
func (tl timeline) bar(from, to time.Time) string {
	a, b := tl.col(from), tl.col(to)
	if b <= a {
		return tl.mark(from, "▏")
	}
	return strings.Repeat(" ", a) + strings.Repeat("█", b-a) + strings.Repeat(" ", tl.width-b)
}

// mark puts glyph in the column of at.
func (tl timeline) mark(at time.Time, glyph string) string {
	c := min(tl.col(at), tl.width-1)
	return strings.Repeat(" ", c) + glyph + strings.Repeat(" ", tl.width-c-1)
}

// formatDuration prints a duration to three significant digits in the
// unit a reader expects: 183µs, 8.45ms, 48.2ms, 1.25s.
func formatDuration(d time.Duration) string {
	switch {
	case d < 999500*time.Nanosecond:
		return fmt.Sprintf("%dµs", (d + 500*time.Nanosecond).Microseconds())
	case d < 999500*time.Microsecond:
		return significant(float64(d)/float64(time.Millisecond), "ms")
	case d < time.Minute:
		return significant(d.Seconds(), "s")
	}
	return d.Round(100 * time.Millisecond).String()
}

func significant(v float64, unit string) string {
	switch {
	case v < 9.995:
		return fmt.Sprintf("%.2f%s", v, unit)
	case v < 99.95:
		return fmt.Sprintf("%.1f%s", v, unit)
	}
	return fmt.Sprintf("%.0f%s", v, unit)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
