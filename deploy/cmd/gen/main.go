// Command gen writes the deployment files that list the platform's
// services (docker-compose.yml, the Dockerfile, deploy/k8s/<service>.yaml,
// kustomization.yaml, networkpolicy.yaml and
// deploy/prometheus/resilience.rules.yml) from services/catalog.go and the
// templates in deploy/templates. It runs from anywhere in the repository:
//
//	make generate
//	go generate ./deploy
//	go run ./deploy/cmd/gen
//
// A generated manifest in deploy/k8s that no service generates any more
// (a service removed or renamed in the catalogue) is deleted, so nothing
// stale is left for kubectl to apply.
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/glasshouse-dev/glasshouse/deploy/generate"
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
	files, err := generate.Files(root)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, f := range files {
		path := filepath.Join(root, filepath.FromSlash(f.Path))
		want[path] = true
		if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, f.Content) {
			continue
		}
		if err := os.WriteFile(path, f.Content, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (from %s)\n", f.Path, f.Template)
	}
	stale, err := filepath.Glob(filepath.Join(root, "deploy", "k8s", "*.yaml"))
	if err != nil {
		return err
	}
	for _, path := range stale {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !want[path] && generate.IsGenerated(b) {
			if err := os.Remove(path); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "removed %s: no service generates it\n", path)
		}
	}
	return nil
}
