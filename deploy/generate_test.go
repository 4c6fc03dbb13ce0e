package deploy_test

// The files generated from services/catalog.go, and the catalogue against
// the code it describes.

import (
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/deploy/generate"
	"github.com/glasshouse-dev/glasshouse/services"
)

// A generated file that differs from what the generator writes is a hand
// edit, or a catalogue or template change without `make generate`: either
// way the next run would undo or redo it silently.
func TestGeneratedFilesAreUpToDate(t *testing.T) {
	files, err := generate.Files(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		have, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Errorf("%s: %v; run `%s`", f.Path, err, generate.Command)
			continue
		}
		if !bytes.Equal(have, f.Content) {
			t.Errorf("%s differs from what %s and services/catalog.go generate (%s); run `%s`",
				f.Path, f.Template, firstDifference(have, f.Content), generate.Command)
		}
		if !generate.IsGenerated(f.Content) {
			t.Errorf("%s: %s does not start with the generated-file header", f.Path, f.Template)
		}
	}
}

// A manifest generated for a service the catalogue no longer has would
// still be applied by `kubectl apply -f deploy/k8s`.
func TestNoStrayGeneratedManifests(t *testing.T) {
	files, err := generate.Files(root)
	if err != nil {
		t.Fatal(err)
	}
	var generated []string
	for _, f := range files {
		generated = append(generated, f.Path)
	}
	paths, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if rel := path.Join("deploy", filepath.ToSlash(p)); generate.IsGenerated(b) && !slices.Contains(generated, rel) {
			t.Errorf("%s is generated, but no service in services/catalog.go generates it any more; run `%s`", rel, generate.Command)
		}
	}
}

// firstDifference points at the first line where two files differ.
func firstDifference(have, want []byte) string {
	h, w := strings.Split(string(have), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(h), len(w)) {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			return fmt.Sprintf("line %d is %q, generated %q", i+1, strings.TrimSpace(hl), strings.TrimSpace(wl))
		}
	}
	return "same lines"
}

// Every service package has its entry in the catalogue and a program, and
// every entry has its package: a service the catalogue misses is deployed
// nowhere.
func TestCatalogueListsEveryServicePackage(t *testing.T) {
	if got, want := slices.Sorted(slices.Values(services.Names())), serviceNames(t); !slices.Equal(got, want) {
		t.Errorf("services/catalog.go lists %v; the packages under services/ are %v", got, want)
	}
	for _, name := range services.Names() {
		if !slices.Contains(programs(t), name) {
			t.Errorf("%s is in the catalogue but has no program cmd/%s", name, name)
		}
	}
}

// The catalogue's Calls decide the network policies: they must be the
// services whose clients the service's package imports, no more and no
// fewer, or a NetworkPolicy would block a real call or admit a dead edge.
func TestCatalogueCallsAreTheServicesImported(t *testing.T) {
	const prefix = "github.com/glasshouse-dev/glasshouse/services/"
	for _, s := range services.All() {
		dir := filepath.Join(root, "services", s.Name)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		imported := map[string]bool{}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if other, ok := strings.CutPrefix(p, prefix); ok && !strings.Contains(other, "/") && other != s.Name {
					imported[other] = true
				}
			}
		}
		got := slices.Sorted(slices.Values(s.Calls))
		if want := slices.Sorted(func(yield func(string) bool) {
			for name := range imported {
				if !yield(name) {
					return
				}
			}
		}); !slices.Equal(got, want) {
			t.Errorf("%s: services/catalog.go says it calls %v; services/%s imports %v", s.Name, got, s.Name, want)
		}
	}
}

// One service signs tokens and one is public: the generator and the
// local stack rely on it (the checkers wait for the signer's key; the
// public one gets the published port).
func TestCatalogueHasOneSignerAndOnePublicEntry(t *testing.T) {
	var signers, public []string
	for _, s := range services.All() {
		if s.Tokens == services.SignsTokens {
			signers = append(signers, s.Name)
		}
		if s.Public {
			public = append(public, s.Name)
		}
		for _, c := range s.Calls {
			if _, ok := services.Lookup(c); !ok {
				t.Errorf("%s calls %q, which is not in the catalogue", s.Name, c)
			}
		}
		if s.Replicas < 1 || s.MemoryMiB <= 0 || s.CPUMilli <= 0 || s.Port <= 0 {
			t.Errorf("%s: replicas %d, memory %d MiB, CPU %dm, port %d: each must be positive", s.Name, s.Replicas, s.MemoryMiB, s.CPUMilli, s.Port)
		}
	}
	if len(signers) != 1 || len(public) != 1 {
		t.Errorf("token signers %v and public services %v; want one of each", signers, public)
	}
	if first := services.All()[0]; first.Tokens != services.SignsTokens {
		t.Errorf("%s starts first, but the services wait for the signer's public key: start it first", first.Name)
	}
}
