package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
)

// Files of a report directory.
const (
	ReportFile  = "report.md"    // the summary, for people
	ResultsFile = "results.json" // the same verdicts and figures, for machines
	tracesDir   = "traces"       // waterfalls of failed requests' traces
)

// WriteReport writes the suite's report into dir: ReportFile, one SVG
// timeline per experiment, ResultsFile, and the waterfalls of example
// failed requests under traces/.
func WriteReport(dir string, suite *Suite) error {
	if err := os.MkdirAll(filepath.Join(dir, tracesDir), 0o755); err != nil {
		return err
	}
	var errs []error
	for i, res := range suite.Results {
		var svg bytes.Buffer
		if err := Plot(&svg, res); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, os.WriteFile(filepath.Join(dir, plotFile(i, res)), svg.Bytes(), 0o644))
		for _, ex := range res.Run.Examples {
			if ex.Waterfall != "" {
				errs = append(errs, os.WriteFile(filepath.Join(dir, tracesDir, ex.TraceID+".txt"), []byte(ex.Waterfall), 0o644))
			}
		}
	}
	var md bytes.Buffer
	writeMarkdown(&md, suite)
	errs = append(errs, os.WriteFile(filepath.Join(dir, ReportFile), md.Bytes(), 0o644))
	js, err := json.MarshalIndent(resultsJSON(suite), "", "  ")
	errs = append(errs, err, os.WriteFile(filepath.Join(dir, ResultsFile), append(js, '\n'), 0o644))
	return errors.Join(errs...)
}

func plotFile(i int, res Result) string { return fmt.Sprintf("%02d-%s.svg", i+1, res.Experiment.Name) }

// writeMarkdown writes the summary: the verdicts first, then each
// experiment's hypothesis, schedule, checks, timeline, what its customers
// saw, and traces of its failed requests.
func writeMarkdown(w io.Writer, suite *Suite) {
	passed := len(suite.Results) - len(suite.Failed())
	fmt.Fprintf(w, "# Chaos report\n\n")
	fmt.Fprintf(w, "Run %s: %d experiments in %s; **%d passed, %d failed**.\n\n",
		suite.Started.UTC().Format("2006-01-02 15:04 MST"), len(suite.Results), suite.Took.Round(time.Second), passed, len(suite.Failed()))
	fmt.Fprintf(w, "The experiments ran one after the other on one local stack of their own (started in %s, random ports; "+
		"gateway %s, Jaeger %s), brought back to full health before each. Services ran with these settings on top of their defaults: %s.\n\n",
		suite.StackStartedIn.Round(100*time.Millisecond), suite.GatewayURL, suite.JaegerURL, inlineCode(describeSettings(suite.Settings)))
	fmt.Fprintf(w, "Every verdict is computed from the measurements beside it: the load generator's per-second timeline "+
		"(requests are filed by when they were due, so a stall shows in every request it delayed), each request as the load's "+
		"HTTP client saw it, the services' `/metrics` sampled every %s, their SQLite stores, and traces read back from Jaeger. "+
		"A \"worst second's p99\" is the highest per-second p99 in a window, an upper bound of the window's own p99. "+
		"Sold-out and declined answers are correct answers, not failures, and are counted apart.\n\n", SampleEvery)

	fmt.Fprintln(w, "| # | experiment | verdict | checks | took |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for i, res := range suite.Results {
		ok := 0
		for _, c := range res.Checks {
			if c.Pass {
				ok++
			}
		}
		fmt.Fprintf(w, "| %d | [%s](#%s) | %s | %d/%d | %s |\n", i+1, cell(res.Experiment.Title), res.Experiment.Name,
			verdictBadge(res.Passed()), ok, len(res.Checks), res.Took.Round(100*time.Millisecond))
	}
	for i, res := range suite.Results {
		writeExperiment(w, i, res, suite.JaegerURL)
	}
}

func writeExperiment(w io.Writer, i int, res Result, jaegerURL string) {
	e, run := res.Experiment, res.Run
	fmt.Fprintf(w, "\n<a id=\"%s\"></a>\n\n## %d. %s — %s\n\n", e.Name, i+1, e.Title, res.Verdict())
	fmt.Fprintf(w, "`%s` · took %s\n\n", e.Name, res.Took.Round(100*time.Millisecond))
	fmt.Fprintf(w, "**Hypothesis.** %s\n\n", e.Hypothesis)
	fmt.Fprintln(w, "**Load.**")
	for _, s := range e.Streams {
		fmt.Fprintf(w, "- %s: %s", s.Name, s.Load)
		if s.Baggage != "" {
			fmt.Fprintf(w, ", every request with `baggage: %s`", s.Baggage)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	if len(run.Marks) > 0 {
		fmt.Fprintln(w, "**Schedule, as carried out** (seconds since the load started).")
		for _, m := range run.Marks {
			fmt.Fprintf(w, "- t=%s %s (took %s)", seconds(m.At), m.Label, m.Took.Round(time.Millisecond))
			if m.Err != "" {
				fmt.Fprintf(w, ": **%s**", m.Err)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	if res.Err != nil {
		fmt.Fprintf(w, "**The experiment could not be carried out as designed:** %s\n\n", cell(res.Err.Error()))
	}
	if len(res.Checks) > 0 {
		fmt.Fprintln(w, "| verdict | claim | measured |")
		fmt.Fprintln(w, "|---|---|---|")
		for _, c := range res.Checks {
			fmt.Fprintf(w, "| %s | %s | %s |\n", verdictBadge(c.Pass), cell(c.Claim), cell(c.Measured))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "![Timeline of %s](%s)\n\n", e.Name, plotFile(i, res))
	if len(run.Streams) > 0 {
		fmt.Fprintln(w, "**What the customers saw**, over the whole run (latency from when each request was due).")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| stream | operation | sent | ok | failed | skipped | p50 | p99 | max | errors |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
		for _, s := range run.Streams {
			for _, op := range append(loadgen.Ops(), "") {
				if op == "" && len(s.Stream.Load.Mix) == 1 {
					continue // the one operation's row says it all
				}
				st := s.Report.Total
				if op != "" {
					st = s.Report.ByOp[op]
				}
				if st.Requests+st.Skipped == 0 {
					continue
				}
				l := st.Latency
				fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %d | %s | %s | %s | %s |\n", s.Stream.Name, opLabel(op),
					st.Requests, st.OK, st.Failed(), st.Skipped, ms(l.P50), ms(l.P99), ms(l.Max), cell(codes(st.Errors)))
			}
		}
		fmt.Fprintln(w)
	}
	writeTraces(w, run, jaegerURL)
}

// writeTraces lists the trace IDs of failed requests by stream and code,
// with the first one's waterfall, and the traces read as evidence.
func writeTraces(w io.Writer, run *Run, jaegerURL string) {
	type key struct{ stream, code string }
	drawn := map[key]Example{}
	for _, ex := range run.Examples {
		drawn[key{ex.Stream, ex.Code}] = ex
	}
	var lines []string
	for _, s := range run.Streams {
		for _, code := range slices.Sorted(maps.Keys(s.Report.ErrorTraces)) {
			var ids []string
			for j, id := range s.Report.ErrorTraces[code] {
				ref := "`" + id + "`"
				if ex, ok := drawn[key{s.Stream.Name, code}]; ok && j == 0 && ex.TraceID == id && ex.Waterfall != "" {
					ref = fmt.Sprintf("[`%s`](%s/%s.txt)", id, tracesDir, id)
				}
				ids = append(ids, ref)
			}
			lines = append(lines, fmt.Sprintf("- %s, `%s`: %s", s.Stream.Name, code, strings.Join(ids, ", ")))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "**Failed requests in Jaeger** (trace IDs, from each response's `X-Trace-Id`; "+
			"`glasshouse trace ID` draws one from a running stack, `%s/api/traces/ID` served them during this run; "+
			"linked ones were saved as waterfalls).\n\n", jaegerURL)
		fmt.Fprintln(w, strings.Join(lines, "\n"))
		fmt.Fprintln(w)
	}
	if len(run.Traces) > 0 {
		fmt.Fprintln(w, "**Traces read as evidence.**")
		fmt.Fprintln(w)
		for _, t := range run.Traces {
			fmt.Fprintf(w, "- %s: %s\n", t.Purpose, describeTrace(t))
		}
		fmt.Fprintln(w)
	}
}

func verdictBadge(pass bool) string {
	if pass {
		return "✅ PASS"
	}
	return "❌ FAIL"
}

// cell makes text safe in a markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func inlineCode(s string) string { return "`" + strings.ReplaceAll(s, "`", "'") + "`" }

// The machine-readable results.
type (
	suiteJSON struct {
		Started     time.Time    `json:"started"`
		TookSeconds float64      `json:"took_seconds"`
		Passed      bool         `json:"passed"`
		Experiments []resultJSON `json:"experiments"`
	}
	resultJSON struct {
		Name        string             `json:"name"`
		Title       string             `json:"title"`
		Verdict     string             `json:"verdict"`
		Error       string             `json:"error,omitempty"`
		TookSeconds float64            `json:"took_seconds"`
		Checks      []Check            `json:"checks"`
		Marks       []markJSON         `json:"marks"`
		Values      map[string]float64 `json:"values,omitempty"`
		Traces      []TraceEvidence    `json:"traces,omitempty"`
	}
	markJSON struct {
		Key         string  `json:"key"`
		Label       string  `json:"label"`
		AtSeconds   float64 `json:"at_seconds"`
		TookSeconds float64 `json:"took_seconds"`
		Error       string  `json:"error,omitempty"`
	}
)

func resultsJSON(suite *Suite) suiteJSON {
	out := suiteJSON{Started: suite.Started, TookSeconds: suite.Took.Seconds(), Passed: suite.Passed()}
	for _, res := range suite.Results {
		r := resultJSON{
			Name: res.Experiment.Name, Title: res.Experiment.Title, Verdict: res.Verdict(),
			TookSeconds: res.Took.Seconds(), Checks: res.Checks, Values: res.Run.Values, Traces: res.Run.Traces,
		}
		if res.Err != nil {
			r.Error = res.Err.Error()
		}
		for _, m := range res.Run.Marks {
			r.Marks = append(r.Marks, markJSON{Key: m.Key, Label: m.Label, AtSeconds: m.At.Seconds(), TookSeconds: m.Took.Seconds(), Error: m.Err})
		}
		out.Experiments = append(out.Experiments, r)
	}
	return out
}
