package services_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/transport/clientgen"
)

// clientgenDirective runs clientgen in a service's api.go.
const clientgenDirective = "//go:generate go run github.com/glasshouse-dev/glasshouse/transport/cmd/clientgen\n"

// A client_gen.go that differs from what clientgen writes is a hand edit,
// or a change to the declarations or to Service without `make generate`:
// either way the next run would undo or redo it silently. A client_gen.go
// in a package that no longer runs clientgen is stale.
func TestGeneratedClientsAreUpToDate(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := e.Name()
		api, err := os.ReadFile(filepath.Join(dir, "api.go"))
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		path := filepath.ToSlash(filepath.Join("services", dir, clientgen.FileName))
		have, err := os.ReadFile(filepath.Join(dir, clientgen.FileName))
		if !bytes.Contains(api, []byte(clientgenDirective)) {
			if err == nil {
				t.Errorf("%s is left from clientgen, which services/%s/api.go no longer runs: delete it", path, dir)
			}
			continue
		}
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			want, genErr := clientgen.Generate(dir)
			switch {
			case genErr != nil:
				t.Errorf("clientgen cannot write %s: %v", path, genErr)
			case err != nil:
				t.Errorf("%s: %v; run `%s`", path, err, clientgen.Command)
			case !bytes.Equal(have, want):
				t.Errorf("%s differs from what clientgen writes from services/%s (%s); run `%s`",
					path, dir, testenv.FirstDifference(have, want), clientgen.Command)
			}
		})
	}
}
