package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/glasshouse-dev/glasshouse/chaos"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/stack"
)

// cmdChaos runs the chaos experiments (see package chaos) on a stack of
// their own, started on random ports so that a running `glasshouse up`
// is never disturbed, then writes the report: a markdown summary, one SVG
// timeline per experiment, the results as JSON and waterfalls of failed
// requests. It fails when any experiment fails.
//
//	glasshouse chaos [-store sqlite|postgres] [-run REGEXP] [-report-dir DIR] [-env SERVICE:KEY=VALUE]... [-list]
//
// -store postgres runs the suite on a stack whose services keep their
// data in PostgreSQL clusters of their own (as `glasshouse up --store
// postgres`), and adds the experiment that kills orders' database.
//
// -env adds a setting to a service's instances ("*" for every service),
// after the suite's own: the way to break a mechanism on purpose and watch
// its experiment fail, e.g. -env orders:SAGA_STALE_AFTER=1h (no recovery
// within the experiment) or -env '*:FAULT_INJECTION=false'.
func cmdChaos(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	flags := config.NewFlags("glasshouse chaos", getenv, stdout)
	reportDir := flags.String("report-dir", "", "", "where to write the report (default reports/chaos-<timestamp>)")
	runPattern := flags.String("run", "", "", "run only the experiments whose name matches this regexp")
	list := flags.Bool("list", "", false, "list the experiments (those -run selects), then exit")
	root := flags.String("root", "", ".", "the repository root: services are built from it, tools found in its bin/tools")
	store := flags.String("store", "", string(stack.StoreSQLite), "where the suite's stack keeps its data: sqlite, or postgres (a PostgreSQL cluster per service, and kill-orders-database among the experiments)")
	settings := chaosSettings{}
	flags.Var(settings, "env", "SERVICE:KEY=VALUE to set for a service ('*' for all), after the suite's own settings; repeatable")
	if err := flags.Parse(args); err != nil {
		return err
	}
	match, err := regexp.Compile(*runPattern)
	if err != nil {
		return fmt.Errorf("-run: %w", err)
	}
	if *store != string(stack.StoreSQLite) && *store != string(stack.StorePostgres) {
		return fmt.Errorf("-store %q: choose %s or %s", *store, stack.StoreSQLite, stack.StorePostgres)
	}
	exps := chaos.Select(chaos.All(stack.Store(*store)), match.MatchString)
	if *list {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		for _, e := range exps {
			fmt.Fprintf(tw, "%s\t%s\n", e.Name, e.Title)
		}
		tw.Flush()
		return nil
	}
	if len(exps) == 0 {
		return fmt.Errorf("no experiment matches -run %q (glasshouse chaos -list names them)", *runPattern)
	}
	if *reportDir == "" {
		*reportDir = filepath.Join("reports", "chaos-"+time.Now().Format("20060102-150405"))
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	// The services are built into a directory of the suite's own, so a
	// running `glasshouse up` keeps the binaries it started from.
	binDir, err := os.MkdirTemp("", "glasshouse-chaos-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)

	fmt.Fprintf(stdout, "glasshouse chaos: %d experiments; report in %s\n", len(exps), *reportDir)
	suite, err := chaos.RunSuite(ctx, chaos.SuiteConfig{
		Stack: stack.Config{
			Root:     absRoot,
			RunDir:   filepath.Join(*reportDir, "run"), // the stack's logs and data stay with the report
			BinDir:   binDir,
			ToolsDir: filepath.Join(absRoot, "bin", "tools"),
			Store:    stack.Store(*store),
		},
		Extra:       settings,
		Experiments: exps,
		Progress:    stdout,
	})
	if suite == nil {
		return err
	}
	if werr := chaos.WriteReport(*reportDir, suite); werr != nil {
		err = errors.Join(err, fmt.Errorf("write the report: %w", werr))
	}
	fmt.Fprintf(stdout, "\n")
	for _, res := range suite.Results {
		fmt.Fprintf(stdout, "  %s  %s\n", res.Verdict(), res.Experiment.Name)
	}
	fmt.Fprintf(stdout, "\nreport: %s (in %s)\n", filepath.Join(*reportDir, chaos.ReportFile), suite.Took.Round(time.Second))
	if failed := suite.Failed(); len(failed) > 0 {
		err = errors.Join(err, fmt.Errorf("%d of %d experiments failed: %s", len(failed), len(suite.Results), strings.Join(failed, ", ")))
	}
	if ctx.Err() != nil {
		err = errors.Join(err, fmt.Errorf("interrupted after %d of %d experiments", len(suite.Results), len(exps)))
	}
	return err
}

// chaosSettings collects -env SERVICE:KEY=VALUE flags by service.
type chaosSettings map[string][]string

func (s chaosSettings) String() string {
	var parts []string
	for svc, kvs := range s {
		for _, kv := range kvs {
			parts = append(parts, svc+":"+kv)
		}
	}
	return strings.Join(parts, " ")
}

func (s chaosSettings) Set(v string) error {
	svc, kv, ok := strings.Cut(v, ":")
	known := svc == "*"
	for _, name := range services.Names() {
		known = known || svc == name
	}
	if !ok || !known || !strings.Contains(kv, "=") || strings.HasPrefix(kv, "=") {
		return fmt.Errorf("%q is not SERVICE:KEY=VALUE with SERVICE one of %s or *", v, strings.Join(services.Names(), ", "))
	}
	s[svc] = append(s[svc], kv)
	return nil
}
