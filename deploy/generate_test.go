package deploy_test

// The files generated from services/catalog.go, and the catalogue against
// the code it describes.

import (
	"bytes"
	"go/parser"
	"go/token"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/deploy/generate"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
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
				f.Path, f.Template, testenv.FirstDifference(have, f.Content), generate.Command)
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

// A call over gRPC is a call, to a service that serves gRPC: anything
// else in GRPCCalls would set a transport no client reads.
func TestCatalogueGRPCCallsAreGRPCServicesItCalls(t *testing.T) {
	for _, s := range services.All() {
		for _, name := range s.GRPCCalls {
			callee, ok := services.Lookup(name)
			switch {
			case !slices.Contains(s.Calls, name):
				t.Errorf("%s: GRPCCalls lists %s, which is not in its Calls", s.Name, name)
			case !ok || !callee.GRPC:
				t.Errorf("%s: GRPCCalls lists %s, which serves no gRPC", s.Name, name)
			}
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

// Adding a service is one entry in the catalogue: with a made-up
// "search" (two replicas, a store, gRPC, called by the gateway), the
// generated compose file and Kubernetes base run it completely, with no
// other edit.
func TestAddingAServiceIsOneCatalogueEntry(t *testing.T) {
	search := services.Spec{
		Name: "search", Summary: "full-text search over the products",
		Port: 8085, Replicas: 2, DeployReplicas: 2, Store: "search.db", GRPC: true,
		MemoryMiB: 64, CPUMilli: 50,
	}
	all := services.All()
	last := len(all) - 1
	all[last].Calls = append(all[last].Calls, search.Name)
	all = slices.Insert(all, last, search)
	files, err := generate.Render(root, all)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range files {
		path := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f.Content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The hand-written manifests the kustomization lists beside them.
	for _, name := range []string{"config.yaml", "consul.yaml", "jaeger.yaml"} {
		b, err := os.ReadFile(filepath.Join(k8sDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "deploy", "k8s", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	p := loadComposeFrom(t, dir)
	for _, name := range []string{"search-1", "search-2"} {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("compose has no %s", name)
			continue
		}
		if env(s, "LISTEN_ADDR") != ":8085" || env(s, "ADMIN_LISTEN_ADDR") != ":9085" || env(s, "ADVERTISE_ADDR") != name {
			t.Errorf("compose %s: LISTEN_ADDR %q, ADMIN_LISTEN_ADDR %q, ADVERTISE_ADDR %q", name, env(s, "LISTEN_ADDR"), env(s, "ADMIN_LISTEN_ADDR"), env(s, "ADVERTISE_ADDR"))
		}
		if u, err := url.Parse(env(s, "DATABASE_URL")); err != nil || u.Path != "/search" || u.User.Username() != "search" {
			t.Errorf("compose %s: DATABASE_URL=%q names no database and role search", name, env(s, "DATABASE_URL"))
		}
		if env(s, "GRPC_LISTEN_ADDR") != ":7085" || !slices.Contains(s.Expose, "7085") {
			t.Errorf("compose %s: GRPC_LISTEN_ADDR %q, expose %v; want :7085, exposed", name, env(s, "GRPC_LISTEN_ADDR"), s.Expose)
		}
	}
	// The gateway, the public entry, calls over HTTP.
	for name, s := range p.Services {
		if v := env(s, "SEARCH_TRANSPORT"); v != "" {
			t.Errorf("compose %s: SEARCH_TRANSPORT=%q; only callers other than the gateway call over gRPC", name, v)
		}
	}

	init, err := os.ReadFile(filepath.Join(dir, "deploy", "postgres", "init.sh"))
	if err != nil || !bytes.Contains(init, []byte("create_service_database search ")) {
		t.Errorf("deploy/postgres/init.sh creates no database search (%v)", err)
	}

	o := loadK8sFrom(t, filepath.Join(dir, "deploy", "k8s"))
	if d, ok := o.deployments["search"]; !ok || d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("no Deployment search with 2 replicas")
	}
	if d, ok := o.deployments["search"]; ok && portNumber(&d.Spec.Template.Spec.Containers[0], "grpc") != "7085" {
		t.Errorf("Deployment search: no container port grpc, 7085")
	}
	if _, ok := o.services["search"]; !ok {
		t.Errorf("no Service search")
	}
	if pol, ok := o.policies["services-grpc-health"]; !ok || !selectsPod(t, &pol.Spec.PodSelector, map[string]string{"app.kubernetes.io/name": "search"}) {
		t.Errorf("NetworkPolicy services-grpc-health does not admit Consul's gRPC check of search")
	}
	if cl, ok := o.clusters["search-db"]; !ok || cl.Spec.Bootstrap.InitDB.Database != "search" || cl.Spec.Bootstrap.InitDB.Owner != "search" {
		t.Errorf("no CloudNativePG Cluster search-db creating database search, owned by search")
	}
	if pol, ok := o.policies["search-api"]; !ok || len(pol.Spec.Ingress) != 1 || len(pol.Spec.Ingress[0].From) != 1 ||
		pol.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "gateway" {
		t.Errorf("no NetworkPolicy search-api admitting the gateway alone: %+v", pol)
	}
	kust, err := os.ReadFile(filepath.Join(dir, "deploy", "k8s", "kustomization.yaml"))
	if err != nil || !bytes.Contains(kust, []byte("\n  - search.yaml\n")) {
		t.Errorf("kustomization.yaml does not list search.yaml (%v)", err)
	}
	rules, err := os.ReadFile(filepath.Join(dir, "deploy", "prometheus", "resilience.rules.yml"))
	if err != nil || !bytes.Contains(rules, []byte("labels: {job: search}\n        expr: vector(2)")) {
		t.Errorf("resilience.rules.yml desires no 2 search instances (%v)", err)
	}
}
