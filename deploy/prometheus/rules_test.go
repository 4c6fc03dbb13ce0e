// Package prometheus holds no Go code, only the Prometheus configuration
// and rule files; these tests check them with the pinned promtool, so a
// broken rule fails `go test` rather than a Prometheus at start-up.
package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/stack"
)

// promtool finds the pinned promtool: $PROMTOOL_BIN (the Makefile sets it),
// else the build in bin/tools/. Debian's promtool will not do: it is built
// without Consul service discovery and rejects prometheus.yml.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL_BIN"); p != "" {
		return p
	}
	p := filepath.Join(testenv.RepoRoot(t), "bin", "tools", "promtool-"+stack.PrometheusVersion)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no promtool: run `make prometheus` (builds %s from source) or set PROMTOOL_BIN", stack.PrometheusVersion)
	}
	return p
}

// run runs promtool and returns its output; a failure fails the test
// with that output, which names the offending rule and line.
func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.rules.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.rules.yml next to prometheus.yml (%v)", err)
	}
	return files
}

// check config reads prometheus.yml as Prometheus does and checks every
// rule file its rule_files names, each under a "Checking <file>" line.
// Every *.rules.yml must be among them: the local stack copies them all
// beside its config and compose mounts this directory, but Prometheus
// loads only what rule_files names, so a file left out would pass
// "check rules" here and be silently ignored there.
func TestConfigAndRulesAreValid(t *testing.T) {
	out := run(t, "check", "config", "prometheus.yml")
	for _, f := range ruleFiles(t) {
		if !strings.Contains(out, "Checking "+f+"\n") {
			t.Errorf("prometheus.yml does not load %s: add it to rule_files\n%s", f, out)
		}
	}
	run(t, append([]string{"check", "rules"}, ruleFiles(t)...)...)
}

// The rules' unit tests: input series in, recorded series and alerts out
// (https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/).
// Every rule file has one.
func TestRulesBehave(t *testing.T) {
	for _, rules := range ruleFiles(t) {
		test := filepath.Join("testdata", rules[:len(rules)-len(".rules.yml")]+"_test.yml")
		t.Run(test, func(t *testing.T) {
			if _, err := os.Stat(test); err != nil {
				t.Fatalf("%s has no unit tests: write %s", rules, test)
			}
			run(t, "test", "rules", test)
		})
	}
}
