package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/bench"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/stack"
)

// Names of the bench's targets in its report.
const (
	benchBare       = "bare chain"
	benchGlasshouse = "glasshouse"
	benchUntraced   = "glasshouse, tracing off"
)

// cmdBench measures what a checkout costs (see package bench): the bare
// reference chain, then a fresh glasshouse stack with every request
// traced, then one with OTEL_SDK_DISABLED=true, each at saturation under
// the same closed loop, then at half that rate under an open loop. It
// prints the comparison and writes it as Markdown, SVG and JSON.
//
//	glasshouse bench [-chain BIN] [-connections N] [-duration D] [-warmup D] [-half-load D] [-targets bare,traced,untraced] [-env SERVICE:KEY=VALUE]... [-profile] [-report-dir DIR]
func cmdBench(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	flags := config.NewFlags("glasshouse bench", getenv, stdout)
	chainBin := flags.String("chain", "", filepath.Join("bin", "benchchain"), "the bare reference chain's binary (go build -o bin/benchchain ./bench/chain)")
	connections := flags.Int("connections", "", 16, "the closed loop's connections, the same for every target")
	duration := flags.Duration("duration", "", 20*time.Second, "how long each target is measured for")
	warmup := flags.Duration("warmup", "", 5*time.Second, "load before each measurement, not measured")
	halfLoad := flags.Duration("half-load", "", 15*time.Second, "after each closed loop, an open loop this long at half the rate it reached, for latency below saturation (0: none)")
	profile := flags.Bool("profile", "", false, "save a CPU profile of every glasshouse service during the traced run (reports' profiles/)")
	reportDir := flags.String("report-dir", "", "", "where to write the report (default reports/bench-<timestamp>)")
	root := flags.String("root", "", ".", "the repository root: services are built from it, tools found in its bin/tools")
	settings := chaosSettings{}
	flags.Var(settings, "env", "SERVICE:KEY=VALUE to set for a service of both stacks ('*' for all), to measure a setting; repeatable")
	only := flags.String("targets", "", "bare,traced,untraced", "which targets to measure; they run as bare, traced, untraced, and the first of them is the reference the others are compared with")
	if err := flags.Parse(args); err != nil {
		return err
	}
	targets := map[string]bool{}
	for _, t := range strings.Split(*only, ",") {
		if t = strings.TrimSpace(t); t != "bare" && t != "traced" && t != "untraced" {
			return fmt.Errorf("-targets: %q is not bare, traced or untraced", t)
		}
		targets[t] = true
	}
	if *connections < 1 || *duration <= 0 || *warmup < 0 || *halfLoad < 0 {
		return errors.New("-connections and -duration must be positive, -warmup and -half-load not negative")
	}
	started := time.Now()
	if *reportDir == "" {
		*reportDir = filepath.Join("reports", "bench-"+started.Format("20060102-150405"))
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	binDir, err := os.MkdirTemp("", "glasshouse-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)

	rep := bench.Report{Machine: bench.Machine(), Started: started, TracingOn: benchGlasshouse, TracingOff: benchUntraced}
	fmt.Fprintf(stdout, "glasshouse bench on %s; report in %s\n", rep.Machine, *reportDir)
	measure := func(name string, gatewayURL string, procs []bench.Process, profileDir string) error {
		res, err := bench.Measure(ctx, bench.Config{
			Name: name, GatewayURL: gatewayURL, Processes: procs, Connections: *connections,
			Warmup: *warmup, Duration: *duration, HalfLoad: *halfLoad, ProfileDir: profileDir, Progress: stdout,
		})
		if err != nil {
			return err
		}
		rep.Results = append(rep.Results, res)
		fmt.Fprintf(stdout, "  %s: %.0f checkouts/s, p99 %s, %d failed, %.2f ms CPU per checkout\n",
			name, res.PerSecond(), res.P99.Round(100*time.Microsecond), res.Failed, float64(res.CPUPerCheckout(nil))/float64(time.Millisecond))
		if h := res.HalfLoad; h != nil {
			fmt.Fprintf(stdout, "  %s at %.0f checkouts/s, open loop: p99 %s, %d failed, %d skipped\n",
				name, h.Rate, h.P99.Round(100*time.Microsecond), h.Failed, h.Skipped)
		}
		return nil
	}

	if targets["bare"] {
		fmt.Fprintf(stdout, "%s: starting %s\n", benchBare, *chainBin)
		chain, err := bench.StartChain(ctx, *chainBin, filepath.Join(*reportDir, "logs"))
		if err != nil {
			return err
		}
		err = measure(benchBare, chain.GatewayURL, chain.Processes(), "")
		if err = errors.Join(err, chain.Stop()); err != nil {
			return err
		}
	}

	for _, target := range []struct {
		key, name string
		env       []string // for every service
	}{
		{"traced", benchGlasshouse, nil},
		{"untraced", benchUntraced, []string{"OTEL_SDK_DISABLED=true"}},
	} {
		if !targets[target.key] {
			continue
		}
		fmt.Fprintf(stdout, "%s: starting a stack\n", target.name)
		s, err := stack.Up(ctx, stack.Config{
			Root: absRoot, RunDir: filepath.Join(*reportDir, "run-"+slug(target.name)), BinDir: binDir,
			ToolsDir: filepath.Join(absRoot, "bin", "tools"), RandomPorts: true,
			// All the load comes from one client: the per-client limit
			// that protects other customers from a hostile one would
			// measure itself.
			Env: benchEnv(settings, target.env),
		})
		if err != nil {
			return fmt.Errorf("%s: %w", target.name, err)
		}
		var procs []bench.Process
		for _, p := range s.Procs() {
			admin := ""
			if p.Service != "" {
				admin = p.AdminAddr
			}
			procs = append(procs, bench.Process{Name: p.Name, PID: p.PID, AdminAddr: admin})
		}
		profileDir := ""
		if *profile && target.name == benchGlasshouse {
			profileDir = filepath.Join(*reportDir, "profiles")
		}
		err = measure(target.name, s.GatewayURL, procs, profileDir)
		if err = errors.Join(err, s.Down(context.WithoutCancel(ctx))); err != nil {
			return err
		}
	}

	if err := writeBenchReport(*reportDir, rep); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	rep.WriteText(stdout)
	fmt.Fprintf(stdout, "\nreport: %s (in %s)\n", filepath.Join(*reportDir, "bench.md"), time.Since(started).Round(time.Second))
	return nil
}

// benchEnv is the stacks' settings: the gateway's per-client rate limit
// off (all the load comes from one client, and the limit that protects
// other customers from a hostile one would measure itself), then every
// service's own, then -env's.
func benchEnv(settings chaosSettings, all []string) map[string][]string {
	env := map[string][]string{"gateway": {"RATE_LIMIT=0"}, "*": slices.Clone(all)}
	for svc, kvs := range settings {
		env[svc] = append(env[svc], kvs...)
	}
	return env
}

// writeBenchReport writes bench.md, bench.svg and bench.json into dir.
func writeBenchReport(dir string, rep bench.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var md, svg strings.Builder
	rep.WriteMarkdown(&md)
	rep.WriteSVG(&svg)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "bench.md"), []byte(md.String()), 0o644),
		os.WriteFile(filepath.Join(dir, "bench.svg"), []byte(svg.String()), 0o644),
		os.WriteFile(filepath.Join(dir, "bench.json"), append(js, '\n'), 0o644),
	)
}

// slug is name as a file name: "glasshouse, tracing off" → "glasshouse-tracing-off".
func slug(name string) string {
	return strings.Join(strings.FieldsFunc(name, func(r rune) bool { return r == ' ' || r == ',' }), "-")
}
