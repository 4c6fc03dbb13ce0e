package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/stack"
)

// A Suite is a set of experiments run on one stack of their own.
type Suite struct {
	Started time.Time
	Took    time.Duration
	// StackStartedIn is how long the stack took to come up.
	StackStartedIn time.Duration
	// Settings are the services' settings on top of their defaults
	// (StackEnv and any extra), by service.
	Settings map[string][]string
	// URLs of the stack's entry points while it ran.
	GatewayURL, JaegerURL, PrometheusURL, ConsulURL string

	Results []Result
}

// Passed reports whether every experiment passed.
func (s *Suite) Passed() bool {
	for _, r := range s.Results {
		if !r.Passed() {
			return false
		}
	}
	return len(s.Results) > 0
}

// Failed names the experiments that did not pass.
func (s *Suite) Failed() []string {
	var names []string
	for _, r := range s.Results {
		if !r.Passed() {
			names = append(names, r.Experiment.Name)
		}
	}
	return names
}

// SuiteConfig describes a suite run.
type SuiteConfig struct {
	// Stack says where the stack runs: Root, RunDir, BinDir, ToolsDir.
	// Its ports are always random, so it never disturbs a stack already
	// running, and its services' settings are StackEnv(Extra).
	Stack stack.Config
	// Extra settings for the services, by service ("*" for all), after
	// the suite's own: the way to break a mechanism on purpose.
	Extra       map[string][]string
	Experiments []Experiment
	// QuietWithin overrides DefaultQuietWithin (see Runner).
	QuietWithin time.Duration
	// Progress receives the stack's and the runner's progress lines.
	Progress io.Writer
}

// RunSuite starts a stack of its own, runs the experiments on it, and
// stops it. A stack that cannot start is an error; experiments that fail
// are in the Suite.
func RunSuite(ctx context.Context, cfg SuiteConfig) (suite *Suite, err error) {
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	suite = &Suite{Started: time.Now(), Settings: StackEnv(cfg.Extra)}
	sc := cfg.Stack
	sc.RandomPorts = true
	sc.GatewayPort, sc.ConsulPort, sc.JaegerPort, sc.OTLPPort, sc.PrometheusPort = 0, 0, 0, 0, 0
	// Faults asked for in baggage pass the gateway only with its fault
	// token: a secret of this run, known to its streams and no one else
	// (and left out of the settings the report shows).
	faultToken := randomHex(16)
	sc.Env = maps.Clone(suite.Settings)
	sc.Env["gateway"] = append(slices.Clone(sc.Env["gateway"]), "FAULT_INJECTION_TOKEN="+faultToken)
	if sc.Progress == nil {
		sc.Progress = progress
	}

	fmt.Fprintf(progress, "chaos: starting a stack of its own (random ports) with %s\n", describeSettings(suite.Settings))
	s, err := stack.Up(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("start the stack: %w", err)
	}
	defer func() {
		fmt.Fprintln(progress)
		fmt.Fprintln(progress, "chaos: stopping the stack")
		if derr := s.Down(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, fmt.Errorf("stop the stack: %w", derr))
		}
	}()
	suite.StackStartedIn = s.StartedIn
	suite.GatewayURL, suite.JaegerURL, suite.PrometheusURL, suite.ConsulURL = s.GatewayURL, s.JaegerURL, s.PrometheusURL, s.ConsulURL

	runner, err := NewRunner(ctx, s, progress)
	if err != nil {
		return nil, err
	}
	runner.faultToken = faultToken
	if cfg.QuietWithin > 0 {
		runner.QuietWithin = cfg.QuietWithin
	}
	suite.Results = runner.RunAll(ctx, cfg.Experiments)
	suite.Took = time.Since(suite.Started)
	return suite, nil
}

// describeSettings writes settings as "orders: A=1 B=2; *: C=3".
func describeSettings(settings map[string][]string) string {
	var parts []string
	for _, svc := range slices.Sorted(maps.Keys(settings)) {
		parts = append(parts, svc+": "+strings.Join(settings[svc], " "))
	}
	return strings.Join(parts, "; ")
}

// Select returns the experiments whose name matches match.
func Select(exps []Experiment, match func(name string) bool) []Experiment {
	var out []Experiment
	for _, e := range exps {
		if match(e.Name) {
			out = append(out, e)
		}
	}
	return out
}
