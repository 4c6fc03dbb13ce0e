// Command gen writes the glasshouse dashboards as the JSON files Grafana
// provisions: deploy/grafana/dashboards/*.json. It runs from anywhere in
// the repository:
//
//	go generate ./deploy/grafana/dashboards
//	go run ./deploy/grafana/dashboards/cmd/gen
//
// The directory holds only generated dashboards: a JSON file no dashboard
// generates any more is deleted, so renaming or dropping one in Go leaves
// nothing stale for Grafana to keep showing.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/glasshouse-dev/glasshouse/deploy/generate"
	"github.com/glasshouse-dev/glasshouse/deploy/grafana/dashboards"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(stdout io.Writer) error {
	root, err := generate.ModuleRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "deploy", "grafana", "dashboards")
	want := map[string]bool{}
	for _, f := range dashboards.All() {
		b, err := f.Dashboard.JSON()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), b, 0o644); err != nil {
			return err
		}
		want[f.Name] = true
		fmt.Fprintf(stdout, "wrote %s (%s)\n", filepath.Join(dir, f.Name), f.Dashboard.Title)
	}
	stale, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	for _, path := range stale {
		if !want[filepath.Base(path)] {
			if err := os.Remove(path); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "removed %s: no dashboard generates it\n", path)
		}
	}
	return nil
}
