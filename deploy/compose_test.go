package deploy_test

// docker-compose.yml: the platform on one machine.

import (
	"bufio"
	"context"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"

	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/services/users"
)

// memoryBudget is what the whole compose project may ask for: it has to
// run on a 2 GiB machine.
const memoryBudget = 2 << 30

// loadCompose loads docker-compose.yml as `docker compose` does, which
// also validates it against the Compose schema and checks that every
// volume, network and dependency it names is defined.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	return loadComposeFrom(t, root)
}

// loadComposeFrom loads dir/docker-compose.yml, as loadCompose does the
// repository's.
func loadComposeFrom(t *testing.T, dir string) *types.Project {
	t.Helper()
	// No OS environment and no .env file: the test sees the defaults that
	// a fresh clone gets.
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")}, cli.WithWorkingDirectory(dir))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// composeProgram is the program a glasshouse container runs (its command's
// first word), or "" for a container of another image.
func composeProgram(s types.ServiceConfig) string {
	repo, _, _ := imageRef(s.Image)
	argv := append(slices.Clone(s.Entrypoint), s.Command...)
	if repo != "glasshouse" || len(argv) == 0 {
		return ""
	}
	return path.Base(argv[0])
}

// composeInstances groups the glasshouse containers by the service they
// run: inventory -> [inventory-1, inventory-2].
func composeInstances(p *types.Project) map[string][]types.ServiceConfig {
	out := map[string][]types.ServiceConfig{}
	for _, name := range slices.Sorted(maps.Keys(p.AllServices())) {
		s := p.AllServices()[name]
		if prog := composeProgram(s); prog != "" && prog != "glasshouse" {
			out[prog] = append(out[prog], s)
		}
	}
	return out
}

// env is a container's environment variable, "" if unset.
func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

// composeMemoryLimit is a container's memory limit in bytes, set either
// way Compose allows (deploy.resources or mem_limit); 0 if none.
func composeMemoryLimit(s types.ServiceConfig) int64 {
	if s.Deploy != nil && s.Deploy.Resources.Limits != nil && s.Deploy.Resources.Limits.MemoryBytes > 0 {
		return int64(s.Deploy.Resources.Limits.MemoryBytes)
	}
	return int64(s.MemLimit)
}

// containers is how many containers a compose service starts.
func containers(s types.ServiceConfig) int64 {
	if s.Deploy != nil && s.Deploy.Replicas != nil {
		return int64(*s.Deploy.Replicas)
	}
	return 1
}

// mountAt returns the volume mounted at dir, or nil.
func mountAt(s types.ServiceConfig, dir string) *types.ServiceVolumeConfig {
	for i, v := range s.Volumes {
		if path.Clean(v.Target) == path.Clean(dir) {
			return &s.Volumes[i]
		}
	}
	return nil
}

func TestComposeRunsEveryServiceWithItsReplicas(t *testing.T) {
	p := loadCompose(t)
	instances := composeInstances(p)
	inImage := imagePrograms(t)
	advertised := map[string]string{}
	for _, name := range serviceNames(t) {
		got := instances[name]
		if spec, _ := services.Lookup(name); len(got) != spec.Replicas {
			t.Errorf("%s: %d compose instances, want %d (its replicas in services/catalog.go, as the local stack runs it)", name, len(got), spec.Replicas)
		}
		for _, s := range got {
			where := "compose service " + s.Name
			// Consul's checks, Prometheus and the other services dial the
			// advertised address: it must be a name the project network
			// resolves, and one instance's alone.
			adv := env(s, "ADVERTISE_ADDR")
			if adv != s.Name {
				t.Errorf("%s: ADVERTISE_ADDR=%q, want its own compose name %q, which Docker's DNS resolves", where, adv, s.Name)
			}
			if other, dup := advertised[adv]; dup {
				t.Errorf("%s and %s advertise the same address %q", other, s.Name, adv)
			}
			advertised[adv] = s.Name

			listenPort(t, where, env(s, "LISTEN_ADDR"))
			// Health lives on the admin listener, which the project
			// network reaches and the host does not.
			port := listenPort(t, where, env(s, "ADMIN_LISTEN_ADDR"))
			if !slices.Contains(s.Expose, port) {
				t.Errorf("%s: expose %v lacks the admin port %s, which Consul and Prometheus dial", where, s.Expose, port)
			}
			hc := s.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
				t.Errorf("%s: needs a healthcheck in exec form ([CMD, program, args...]); the image has no shell", where)
			} else {
				if !inImage[hc.Test[1]] {
					t.Errorf("%s: the healthcheck runs %s, which the Dockerfile's final stage does not contain (it has %v)", where, hc.Test[1], slices.Sorted(maps.Keys(inImage)))
				}
				want := "http://127.0.0.1:" + port + "/readyz"
				if !slices.Contains(hc.Test, want) {
					t.Errorf("%s: the healthcheck %v does not ask %s", where, hc.Test, want)
				}
			}

			limit := composeMemoryLimit(s)
			if limit == 0 {
				t.Errorf("%s: no memory limit", where)
			}
			checkGoMemLimit(t, where, env(s, "GOMEMLIMIT"), limit)

			for key, service := range map[string]string{"CONSUL_HTTP_ADDR": "consul", "OTEL_EXPORTER_OTLP_ENDPOINT": "jaeger"} {
				host := hostOf(env(s, key))
				if _, ok := p.AllServices()[host]; !ok || host != service {
					t.Errorf("%s: %s=%q does not name the compose service %s", where, key, env(s, key), service)
				}
			}
		}
	}
}

func TestComposeReplicasShareTheirServicesData(t *testing.T) {
	p := loadCompose(t)
	owner := map[string]string{} // volume -> service
	for service, instances := range composeInstances(p) {
		for _, s := range instances {
			dir := env(s, "DATA_DIR")
			if dir == "" {
				continue
			}
			// The root file system is read only: the data directory must
			// be a named volume, the one every replica of the service uses
			// (one SQLite file per service, on one host).
			v := mountAt(s, dir)
			if v == nil || v.Type != types.VolumeTypeVolume || v.ReadOnly {
				t.Errorf("%s: DATA_DIR %s is not on a writable named volume", s.Name, dir)
				continue
			}
			if o, ok := owner[v.Source]; ok && o != service {
				t.Errorf("volume %s holds the data of both %s and %s: each service owns its database", v.Source, o, service)
			}
			owner[v.Source] = service
		}
	}
	for _, s := range services.All() {
		if s.Store != "" && !slices.Contains(slices.Collect(maps.Values(owner)), s.Name) {
			t.Errorf("%s keeps its data (%s) on no volume", s.Name, s.Store)
		}
	}
}

func TestComposeSharesTheTokenKeys(t *testing.T) {
	p := loadCompose(t)
	instances := composeInstances(p)
	if len(instances["users"]) == 0 {
		t.Fatal("no users instance")
	}
	// users writes the pair on its first start, into a volume it can write.
	writer := instances["users"][0]
	private := env(writer, "JWT_PRIVATE_KEY_FILE")
	keys := mountAt(writer, path.Dir(private))
	if private == "" || keys == nil || keys.Type != types.VolumeTypeVolume || keys.ReadOnly {
		t.Fatalf("users: JWT_PRIVATE_KEY_FILE=%q must lie on a writable named volume", private)
	}
	// It publishes the public key on another writable volume, which holds
	// no private key.
	published := env(writer, "JWT_PUBLIC_KEY_FILE")
	public := mountAt(writer, path.Dir(published))
	if published == "" || public == nil || public.Type != types.VolumeTypeVolume || public.ReadOnly {
		t.Fatalf("users: JWT_PUBLIC_KEY_FILE=%q must lie on a writable named volume", published)
	}
	if path.Base(published) != path.Base(users.PublicKeyPath(private)) {
		t.Errorf("users: JWT_PUBLIC_KEY_FILE=%q; keep the name users gives the public key, %s", published, path.Base(users.PublicKeyPath(private)))
	}
	if public.Source == keys.Source {
		t.Fatalf("users publishes the public key on %s, the volume of the private key: token checkers mounting it could read the signing key", keys.Source)
	}
	// Readers find the public key where users publishes it, on that
	// volume, mounted read-only; and no volume of theirs holds the private
	// key (they run as the same uid as users, so file modes cannot stop
	// them).
	for _, name := range tokenReaders() {
		for _, s := range instances[name] {
			key := env(s, "JWT_PUBLIC_KEY_FILE")
			if key != published {
				t.Errorf("%s: JWT_PUBLIC_KEY_FILE=%q, but users publishes its public key to %q", s.Name, key, published)
			}
			v := mountAt(s, path.Dir(key))
			if v == nil || v.Source != public.Source || !v.ReadOnly {
				t.Errorf("%s: %s must be the volume %s, mounted read-only", s.Name, path.Dir(key), public.Source)
			}
			for _, m := range s.Volumes {
				if m.Source == keys.Source {
					t.Errorf("%s mounts %s, the volume of the private signing key", s.Name, keys.Source)
				}
			}
		}
	}
}

func TestComposeImagesArePinned(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.AllServices() {
		checkPinned(t, "compose service "+name, s.Image)
		if repo, _, _ := imageRef(s.Image); repo == "glasshouse" {
			// Every service that names the image also says how to build
			// it, so Compose never tries to pull it from a registry.
			if s.Build == nil || s.Build.Context != mustAbs(t, root) {
				t.Errorf("compose service %s: image %s without `build: .`", name, s.Image)
			}
		}
	}
}

func TestComposeFitsInTwoGiB(t *testing.T) {
	p := loadCompose(t)
	var all, withoutProfiles int64
	for name, s := range p.AllServices() {
		limit := composeMemoryLimit(s)
		if limit == 0 {
			t.Errorf("compose service %s has no memory limit", name)
		}
		if v := env(s, "GOMEMLIMIT"); v != "" {
			checkGoMemLimit(t, "compose service "+name, v, limit)
		}
		all += limit * containers(s)
		if len(s.Profiles) == 0 {
			withoutProfiles += limit * containers(s)
		}
	}
	if all >= memoryBudget {
		t.Errorf("memory limits sum to %d MiB, over the %d MiB budget", all>>20, memoryBudget>>20)
	}
	// The header states the sums; keep it true.
	header := composeHeader(t)
	m := regexp.MustCompile(`sum to (\d+) MiB.*?\((\d+) MiB without\)`).FindStringSubmatch(header)
	if m == nil {
		t.Fatalf("the header of docker-compose.yml does not state the memory sums (\"sum to N MiB ... (M MiB without)\"):\n%s", header)
	}
	if m[1] != strconv.FormatInt(all>>20, 10) || m[2] != strconv.FormatInt(withoutProfiles>>20, 10) {
		t.Errorf("the header says the limits sum to %s MiB (%s MiB without profiles); they sum to %d MiB (%d MiB)", m[1], m[2], all>>20, withoutProfiles>>20)
	}
}

// composeHeader is the comment at the top of docker-compose.yml as one
// line of text.
func composeHeader(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var words []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "#")
		if !ok {
			break
		}
		words = append(words, strings.Fields(line)...)
	}
	return strings.Join(words, " ")
}

func TestComposePublishesOnlyTheEntryPointsOnLoopback(t *testing.T) {
	p := loadCompose(t)
	want := map[string]string{"gateway": "8080", "grafana": "3000", "jaeger": "16686", "prometheus": "9090", "consul": "8500"}
	for name, s := range p.AllServices() {
		var published []string
		for _, port := range s.Ports {
			published = append(published, port.Published)
			if port.HostIP != "127.0.0.1" {
				t.Errorf("compose service %s publishes %s on %q: publish on 127.0.0.1 only, nothing here has authentication", name, port.Published, port.HostIP)
			}
		}
		if w, ok := want[name]; ok && !reflect.DeepEqual(published, []string{w}) {
			t.Errorf("compose service %s publishes %v, want [%s]", name, published, w)
		} else if !ok && len(published) > 0 {
			t.Errorf("compose service %s publishes %v; only the entry points should", name, published)
		}
	}
}

func TestComposeBindsOnlyRepositoryFilesReadOnly(t *testing.T) {
	p := loadCompose(t)
	abs := mustAbs(t, root)
	for name, s := range p.AllServices() {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			rel, err := filepath.Rel(abs, v.Source)
			if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				t.Errorf("compose service %s binds %s, outside the repository", name, v.Source)
			}
			if !v.ReadOnly {
				t.Errorf("compose service %s binds %s writable: configuration is mounted read-only", name, rel)
			}
		}
	}
}

func TestComposeLoadProfileDrivesTheGateway(t *testing.T) {
	p := loadCompose(t)
	found := false
	for name, s := range p.AllServices() {
		if composeProgram(s) != "glasshouse" {
			continue
		}
		found = true
		if !slices.Contains(s.Profiles, "load") {
			t.Errorf("compose service %s runs the CLI without the load profile: it would start with every `up`", name)
		}
		argv := append(slices.Clone(s.Entrypoint), s.Command...)
		if want := []string{"glasshouse", "load", "-target", "http://gateway:8080"}; !reflect.DeepEqual([]string(argv), want) {
			t.Errorf("compose service %s runs %v, want %v", name, argv, want)
		}
		if composeMemoryLimit(s) == 0 {
			t.Errorf("compose service %s has no memory limit", name)
		}
	}
	if !found {
		t.Error("no compose service runs `glasshouse load`")
	}
}

func TestComposeMountsWhatGrafanaProvisions(t *testing.T) {
	p := loadCompose(t)
	grafana, ok := p.AllServices()["grafana"]
	if !ok {
		t.Fatal("no compose service grafana")
	}
	bound := map[string]string{} // target in the container -> source, relative to the repository
	abs := mustAbs(t, root)
	for _, v := range grafana.Volumes {
		if v.Type == types.VolumeTypeBind {
			rel, err := filepath.Rel(abs, v.Source)
			if err != nil {
				t.Fatal(err)
			}
			bound[path.Clean(v.Target)] = filepath.ToSlash(rel)
		}
	}
	if got := bound["/etc/grafana/provisioning"]; got != "deploy/grafana/provisioning" {
		t.Errorf("grafana: /etc/grafana/provisioning is %q, want deploy/grafana/provisioning", got)
	}

	// Every dashboard provider reads a directory where compose mounts the
	// dashboards.
	providers := grafanaProvisioning(t, "dashboards", func(doc []byte) []string {
		var f struct {
			Providers []struct {
				Options struct {
					Path string `json:"path"`
				} `json:"options"`
			} `json:"providers"`
		}
		if err := yaml.Unmarshal(doc, &f); err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, p := range f.Providers {
			paths = append(paths, p.Options.Path)
		}
		return paths
	})
	if len(providers) == 0 {
		t.Error("deploy/grafana/provisioning/dashboards provides no dashboards")
	}
	for _, dir := range providers {
		if got := bound[path.Clean(dir)]; got != "deploy/grafana/dashboards" {
			t.Errorf("grafana: the dashboard provider reads %s, where compose mounts %q, not deploy/grafana/dashboards", dir, got)
		}
	}

	// Every data source names a compose service.
	urls := grafanaProvisioning(t, "datasources", func(doc []byte) []string {
		var f struct {
			Datasources []struct {
				URL string `json:"url"`
			} `json:"datasources"`
		}
		if err := yaml.Unmarshal(doc, &f); err != nil {
			t.Fatal(err)
		}
		var urls []string
		for _, d := range f.Datasources {
			urls = append(urls, d.URL)
		}
		return urls
	})
	for _, u := range urls {
		if _, ok := p.AllServices()[hostOf(u)]; !ok {
			t.Errorf("grafana data source %s names no compose service", u)
		}
	}
}

// grafanaProvisioning applies read to every file of one kind of Grafana
// provisioning (dashboards, datasources) and gathers what it returns.
func grafanaProvisioning(t *testing.T, kind string, read func([]byte) []string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("grafana", "provisioning", kind, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, read(b)...)
	}
	return out
}
