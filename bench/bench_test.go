package bench

import (
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildChain builds bench/chain into a directory of the test's own.
func buildChain(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "benchchain")
	if out, err := exec.Command("go", "build", "-o", bin, "./chain").CombinedOutput(); err != nil {
		t.Fatalf("go build ./chain: %v\n%s", err, out)
	}
	return bin
}

// The bare chain, really running, measured as make bench measures it:
// every checkout succeeds, each of the four processes is charged CPU and
// memory, the report says so, and Stop leaves no process behind.
func TestMeasureTheBareChain(t *testing.T) {
	chain, err := StartChain(t.Context(), buildChain(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	procs := chain.Processes()
	t.Cleanup(func() { _ = chain.Stop() })

	res, err := Measure(t.Context(), Config{Name: "bare chain", GatewayURL: chain.GatewayURL, Processes: procs,
		Connections: 4, Warmup: 200 * time.Millisecond, Duration: time.Second, HalfLoad: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The open loop asks for half the closed loop's rate and gets it: the
	// chain is far from saturated there.
	if h := res.HalfLoad; h == nil {
		t.Fatal("no open loop at half of saturation")
	} else if h.Rate != res.PerSecond()/2 || h.Failed != 0 || h.Skipped != 0 || h.P50 <= 0 || h.P99 < h.P50 ||
		float64(h.Checkouts) < 0.9*h.Rate*h.Duration.Seconds() {
		t.Errorf("open loop at half of %.0f/s: %+v; want %.0f/s, all sent and answered", res.PerSecond(), *h, res.PerSecond()/2)
	}
	if res.Checkouts < 50 || res.Failed != 0 {
		t.Fatalf("%d checkouts, %d failed (%v) in a second over 4 connections; want at least 50, none failed", res.Checkouts, res.Failed, res.Errors)
	}
	if len(res.Usage) != 4 {
		t.Fatalf("usage of %d processes, want the chain's 4: %+v", len(res.Usage), res.Usage)
	}
	for _, u := range res.Usage {
		if u.PeakRSS < 1<<20 || u.PeakRSS > 1<<30 {
			t.Errorf("%s: peak RSS %d bytes; want a Go process's few MiB", u.Name, u.PeakRSS)
		}
	}
	if total := res.CPUPerCheckout(nil); total <= 0 || total > 50*time.Millisecond {
		t.Errorf("%s of CPU per checkout; want some, and less than 50ms for four JSON hops", total)
	}
	if res.P50 <= 0 || res.P99 < res.P50 {
		t.Errorf("p50 %s, p99 %s", res.P50, res.P99)
	}

	rep := Report{Machine: Machine(), Started: time.Now(), Results: []Result{res, res}}
	var md, svg strings.Builder
	rep.WriteMarkdown(&md)
	rep.WriteSVG(&svg)
	for _, want := range []string{"| bare chain |", "| 1.000 |", "| orders |", "| gateway |", rep.Machine, "## At half of saturation, open loop"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("the Markdown report lacks %q:\n%s", want, md.String())
		}
	}
	if err := xml.Unmarshal([]byte(svg.String()), new(struct{})); err != nil {
		t.Errorf("the SVG is not XML: %v\n%s", err, svg.String())
	}

	if err := chain.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	for _, p := range procs {
		if err := syscall.Kill(p.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still there after Stop: %v", p.Name, p.PID, err)
		}
	}
}

// cpuTimes reads /proc as Linux writes it: a process that burnt CPU has
// used some, and a process that is gone is an error naming it.
func TestCPUTimesFromProc(t *testing.T) {
	self := []Process{{Name: "test", PID: os.Getpid()}}
	before, err := cpuTimes(self)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); {
	}
	after, err := cpuTimes(self)
	if err != nil {
		t.Fatal(err)
	}
	if d := after[0] - before[0]; d < 50*time.Millisecond {
		t.Errorf("200ms of spinning counted as %s of CPU", d)
	}
	if _, err := cpuTimes([]Process{{Name: "ghost", PID: 1 << 30}}); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("cpuTimes of a missing process = %v; want an error naming it", err)
	}
}

func TestTheReportComparesWithTheFirstResultAndPricesTracing(t *testing.T) {
	rep := Report{
		Results: []Result{
			{Name: "bare", Duration: time.Second, Checkouts: 2000},
			{Name: "on", Duration: time.Second, Checkouts: 170, Usage: []Usage{{Name: "a", CPU: 850 * time.Millisecond}, {Name: "b", CPU: 850 * time.Millisecond}}},
			{Name: "off", Duration: time.Second, Checkouts: 200},
		},
		TracingOn: "on", TracingOff: "off",
	}
	if got := rep.Ratio(rep.Results[1]); got != 0.085 {
		t.Errorf("ratio %g, want 170/2000 = 0.085", got)
	}
	if cost, ok := rep.TracingCost(); !ok || cost < 0.1499 || cost > 0.1501 {
		t.Errorf("tracing cost %g (%v), want 1 - 170/200 = 15%%", cost, ok)
	}
	if got := rep.Results[1].CPUPerCheckout(nil); got != 10*time.Millisecond {
		t.Errorf("CPU per checkout %s, want 1.7s / 170 = 10ms", got)
	}
	rep.TracingOff = "missing"
	if _, ok := rep.TracingCost(); ok {
		t.Error("a tracing cost without the untraced run")
	}
}
