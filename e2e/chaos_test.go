package e2e

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/chaos"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/stack"
)

// The chaos suite as `glasshouse chaos` runs it: a stack of its own, every
// experiment, a report. GLASSHOUSE_CHAOS_RUN (a regexp of experiment
// names) runs fewer; GLASSHOUSE_CHAOS_REPORT keeps the report in that
// directory instead of a temporary one.
func TestChaosSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos suite runs the whole platform for minutes")
	}
	match := regexp.MustCompile(cmp.Or(os.Getenv("GLASSHOUSE_CHAOS_RUN"), "."))
	exps := chaos.Select(chaos.All(), match.MatchString)
	suite := runChaos(t, nil, exps, 0)

	dir := cmp.Or(os.Getenv("GLASSHOUSE_CHAOS_REPORT"), t.TempDir())
	if err := chaos.WriteReport(dir, suite); err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %s", filepath.Join(dir, chaos.ReportFile))
	if len(suite.Results) != len(exps) {
		t.Fatalf("%d of %d experiments ran", len(suite.Results), len(exps))
	}
	for _, res := range suite.Results {
		if res.Passed() {
			continue
		}
		t.Errorf("%s failed:", res.Experiment.Name)
		if res.Err != nil {
			t.Errorf("  could not be carried out: %v", res.Err)
		}
		for _, c := range res.Checks {
			if !c.Pass {
				t.Errorf("  %s: %s", c.Claim, c.Measured)
			}
		}
	}
}

// A verdict that cannot fail proves nothing. Here two resilience
// mechanisms are switched off through the services' own settings, and the
// experiments that exercise them must fail, on the claims those mechanisms
// answer for:
//
//   - FAULT_INJECTION=false: services ignore the faults requests ask for
//     in their baggage, so request-faults' faulted checkouts succeed, fast,
//     and no trace shows an injected fault.
//   - SAGA_STALE_AFTER=1h: orders' recovery leaves interrupted checkouts
//     alone for an hour, so kill-orders-mid-checkout's interrupted orders
//     stay PENDING with their stock reserved.
//
// (Each experiment's other mechanisms are shown failing their verdicts
// with synthetic measurements in package chaos's tests.)
func TestChaosVerdictsFailWhenTheirMechanismIsBroken(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole platform for minutes")
	}
	broken := map[string][]string{"*": {"FAULT_INJECTION=false"}, "orders": {"SAGA_STALE_AFTER=1h"}}
	// request-faults first: the orders the second leaves PENDING would
	// keep the stack from being healthy for anything after it.
	exps := []chaos.Experiment{chaos.RequestFaults(), chaos.KillOrdersMidCheckout()}
	// The interrupted orders will never end: no need to wait the full
	// minute to see it.
	suite := runChaos(t, broken, exps, 20*time.Second)
	want := map[string][]string{
		"request-faults": {
			"every checkout asking for fault.payments=error fails",
			"charge delay succeeds and takes",
			"fault.payments=error shows fault.injected",
			"charge delay shows fault.injected",
		},
		"kill-orders-mid-checkout": {
			"every order reaches an end",
			"stock is conserved",
		},
	}
	if len(suite.Results) != len(exps) {
		t.Fatalf("%d of %d experiments ran", len(suite.Results), len(exps))
	}
	for _, res := range suite.Results {
		if res.Passed() {
			t.Errorf("%s passed with its mechanism broken", res.Experiment.Name)
		}
		if res.Err != nil {
			t.Errorf("%s could not be carried out, so it proves nothing: %v", res.Experiment.Name, res.Err)
		}
		for _, claim := range want[res.Experiment.Name] {
			found := false
			for _, c := range res.Checks {
				if strings.Contains(c.Claim, claim) {
					found = true
					if c.Pass {
						t.Errorf("%s: %q held with its mechanism broken: %s", res.Experiment.Name, c.Claim, c.Measured)
					} else {
						t.Logf("%s: FAIL as it should: %s: %s", res.Experiment.Name, c.Claim, c.Measured)
					}
				}
			}
			if !found {
				t.Errorf("%s: no check claims %q", res.Experiment.Name, claim)
			}
		}
	}
}

// runChaos runs experiments on a stack of their own, with extra service
// settings, as `glasshouse chaos` does.
func runChaos(t *testing.T, extra map[string][]string, exps []chaos.Experiment, quietWithin time.Duration) *chaos.Suite {
	t.Helper()
	root := testenv.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	suite, err := chaos.RunSuite(ctx, chaos.SuiteConfig{
		Stack: stack.Config{
			Root:     root,
			RunDir:   t.TempDir(),
			BinDir:   t.TempDir(),
			ToolsDir: filepath.Join(root, "bin", "tools"),
		},
		Extra:       extra,
		Experiments: exps,
		QuietWithin: quietWithin,
		Progress:    testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	return suite
}
