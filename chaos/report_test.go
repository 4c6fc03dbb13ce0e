package chaos

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/stack"
)

func TestWriteReport(t *testing.T) {
	passed := plottedRun()
	passed.Took = 25 * time.Second
	const failedTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	failed := Result{
		Experiment: KillOrdersMidCheckout(),
		Run:        newRun(shop(20).fail(6, 9, loadgen.Checkout, 8, "unavailable").report(), 6*sec, 9*sec),
		Err:        errors.New("restart orders/1: exited while starting"),
		Took:       20 * time.Second,
	}
	failed.Run.Main().Report.ErrorTraces = map[string][]string{"unavailable": {failedTrace, "0af7651916cd43dd8448eb211c80319c"}}
	failed.Run.Examples = []Example{{Stream: "main", Code: "unavailable", TraceID: failedTrace, Waterfall: "gateway POST /api/orders ████\n"}}
	failed.Run.SetValue(ValuePendingAtKill, 4)
	failed.Checks = failed.Experiment.Judge(failed.Run)
	suite := &Suite{
		Started: time.Date(2026, 11, 27, 5, 12, 0, 0, time.UTC), Took: 3 * time.Minute,
		Settings:   StackEnv(map[string][]string{"orders": {"SAGA_STALE_AFTER=1h"}}),
		GatewayURL: "http://127.0.0.1:1", JaegerURL: "http://127.0.0.1:2",
		Results: []Result{passed, failed},
	}

	dir := t.TempDir()
	if err := WriteReport(dir, suite); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	report := string(md)
	for _, want := range []string{
		"**1 passed, 1 failed**",
		"| 1 | [Kill <one> \"replica\" & see](#kill-inventory-replica) | ✅ PASS | 1/1 | 25s |",
		"## 2. Kill orders while checkouts are in flight, then restart it — FAIL",
		"**Hypothesis.** A checkout's saga records each step",
		"- main: 20 req/s for 20s (browse=30,checkout=60,orders=10; 10 customers)",
		"- t=6.0s fault (took 10ms)",
		"**The experiment could not be carried out as designed:** restart orders/1: exited while starting",
		"| ✅ PASS | the kill catches checkouts mid-saga |",
		"orders: SAGA_TIMEOUT=5s SAGA_STALE_AFTER=6s RECOVERY_INTERVAL=500ms INVENTORY_TRANSPORT=grpc PAYMENTS_TRANSPORT=grpc SAGA_STALE_AFTER=1h",
		"- main, `unavailable`: [`" + failedTrace + "`](traces/" + failedTrace + ".txt), `0af7651916cd43dd8448eb211c80319c`",
		"| main | checkout |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	// Every image and link in the report points at a file written.
	for _, m := range regexp.MustCompile(`\]\(([^)#]+)\)`).FindAllStringSubmatch(report, -1) {
		if _, err := os.Stat(filepath.Join(dir, m[1])); err != nil {
			t.Errorf("the report links %s: %v", m[1], err)
		}
	}
	for _, f := range []string{"01-kill-inventory-replica.svg", "02-kill-orders-mid-checkout.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		svgTexts(t, string(b))
	}

	b, err := os.ReadFile(filepath.Join(dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var results struct {
		Passed      bool `json:"passed"`
		Experiments []struct {
			Name    string  `json:"name"`
			Verdict string  `json:"verdict"`
			Error   string  `json:"error"`
			Checks  []Check `json:"checks"`
			Marks   []struct {
				AtSeconds float64 `json:"at_seconds"`
			} `json:"marks"`
		} `json:"experiments"`
	}
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatal(err)
	}
	if results.Passed || len(results.Experiments) != 2 || results.Experiments[0].Verdict != "PASS" ||
		results.Experiments[1].Verdict != "FAIL" || results.Experiments[1].Error == "" || results.Experiments[1].Marks[0].AtSeconds != 6 {
		t.Errorf("results.json: %s", b)
	}
}

func TestResultPassedOnlyWhenEveryCheckHeldAndNothingWentWrong(t *testing.T) {
	ok := []Check{{Pass: true}, {Pass: true}}
	for _, tt := range []struct {
		name string
		res  Result
		want bool
	}{
		{"every check held", Result{Checks: ok}, true},
		{"one check failed", Result{Checks: []Check{{Pass: true}, {Pass: false}}}, false},
		{"no checks: nothing was proved", Result{}, false},
		{"could not be carried out", Result{Checks: ok, Err: errors.New("kill failed")}, false},
	} {
		if got := tt.res.Passed(); got != tt.want {
			t.Errorf("%s: Passed() = %v", tt.name, got)
		}
	}
}

func TestAllExperimentsAreDeclaredCompletely(t *testing.T) {
	names := map[string]bool{}
	for _, e := range All(stack.StorePostgres) {
		if names[e.Name] || !regexp.MustCompile(`^[a-z][a-z-]*$`).MatchString(e.Name) {
			t.Errorf("experiment name %q is not unique lower-case-with-dashes", e.Name)
		}
		names[e.Name] = true
		if e.Title == "" || e.Hypothesis == "" || len(e.Streams) == 0 || e.Judge == nil {
			t.Errorf("%s: needs a title, a hypothesis, a load and a judge", e.Name)
		}
		var last time.Duration
		for _, s := range e.Steps {
			if s.At < last || s.At >= e.Streams[0].Load.Duration {
				t.Errorf("%s: step %q at %s is out of order or after the load (%s)", e.Name, s.Action.Name, s.At, e.Streams[0].Load.Duration)
			}
			last = s.At
		}
	}
	if len(names) != 11 {
		t.Errorf("%d experiments, want 11", len(names))
	}
	// On SQLite there is no database server to kill.
	for _, e := range All(stack.StoreSQLite) {
		if e.Name == "kill-orders-database" {
			t.Errorf("kill-orders-database is among the experiments of a SQLite stack")
		}
	}
	if n := len(All(stack.StoreSQLite)); n != 10 {
		t.Errorf("%d experiments on SQLite, want 10", n)
	}
}
