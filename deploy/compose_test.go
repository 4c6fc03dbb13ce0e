package deploy_test

// docker-compose.yml: the platform on one machine.

import (
	"bufio"
	"context"
	"maps"
	"net/url"
	"os"
	"os/exec"
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
		if spec, _ := services.Lookup(name); len(got) != spec.DeployReplicas || len(got) < 2 {
			t.Errorf("%s: %d compose instances, want its DeployReplicas in services/catalog.go (%d), and at least 2", name, len(got), spec.DeployReplicas)
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

			for key, service := range map[string]string{"CONSUL_HTTP_ADDR": "consul", "OTEL_EXPORTER_OTLP_ENDPOINT": "jaeger", "NATS_URL": "nats"} {
				host := hostOf(env(s, key))
				if _, ok := p.AllServices()[host]; !ok || host != service {
					t.Errorf("%s: %s=%q does not name the compose service %s", where, key, env(s, key), service)
				}
			}
		}
	}
}

// The services that serve gRPC listen for it where the catalogue says,
// on the project network only (TestComposePublishesOnlyTheEntryPointsOnLoopback
// checks that nothing else is published), and their callers say which
// transport they use instead of leaning on a default.
func TestComposeServesGRPCOnTheProjectNetwork(t *testing.T) {
	p := loadCompose(t)
	instances := composeInstances(p)
	for _, spec := range services.All() {
		for _, s := range instances[spec.Name] {
			where := "compose service " + s.Name
			addr := env(s, "GRPC_LISTEN_ADDR")
			if !spec.GRPC {
				if addr != "" {
					t.Errorf("%s: GRPC_LISTEN_ADDR=%q, but services/catalog.go says %s serves no gRPC", where, addr, spec.Name)
				}
			} else if port := listenPort(t, where, addr); port != strconv.Itoa(spec.GRPCPort()) {
				t.Errorf("%s: GRPC_LISTEN_ADDR=%q, want port %d (services.Spec.GRPCPort)", where, addr, spec.GRPCPort())
			} else if !slices.Contains(s.Expose, port) {
				t.Errorf("%s: expose %v lacks the gRPC port %s, which its callers and Consul's gRPC check dial", where, s.Expose, port)
			}

			want := map[string]string{}
			for _, callee := range grpcCalls(spec) {
				want[transportVar(callee.Name)] = "grpc"
			}
			got := map[string]string{}
			for key, v := range s.Environment {
				if strings.HasSuffix(key, "_TRANSPORT") && v != nil {
					got[key] = *v
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: transports %v, want %v", where, got, want)
			}
		}
	}
}

// composeArgs is the command line a compose service runs.
func composeArgs(s types.ServiceConfig) []string {
	return append(slices.Clone([]string(s.Entrypoint)), s.Command...)
}

// flagValue is the value of -name in args, "" if absent.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == "-"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// composePostgres returns the compose services that run a PostgreSQL
// image, by name.
func composePostgres(p *types.Project) map[string]types.ServiceConfig {
	out := map[string]types.ServiceConfig{}
	for name, s := range p.AllServices() {
		if repo, _, _ := imageRef(s.Image); path.Base(repo) == "postgres" {
			out[name] = s
		}
	}
	return out
}

func TestComposeGivesEachStoreItsOwnDatabase(t *testing.T) {
	p := loadCompose(t)
	servers := composePostgres(p)
	if len(servers) == 0 {
		t.Fatal("no compose service runs PostgreSQL")
	}
	owner := map[string]string{} // database -> service
	for _, spec := range services.All() {
		for _, s := range composeInstances(p)[spec.Name] {
			if dir := env(s, "DATA_DIR"); dir != "" {
				t.Errorf("%s: DATA_DIR=%s; in compose every store is in PostgreSQL, and no container keeps data", s.Name, dir)
			}
			raw := env(s, "DATABASE_URL")
			if spec.Store == "" {
				if raw != "" {
					t.Errorf("%s has no store, but DATABASE_URL=%q", s.Name, raw)
				}
				continue
			}
			u, err := url.Parse(raw)
			if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
				t.Errorf("%s: DATABASE_URL=%q is not a postgres:// URL (%v)", s.Name, raw, err)
				continue
			}
			server, ok := servers[u.Hostname()]
			if !ok {
				t.Errorf("%s: DATABASE_URL names host %q, which is no PostgreSQL compose service", s.Name, u.Hostname())
			}
			db := strings.TrimPrefix(u.Path, "/")
			if db != spec.Name || u.User.Username() != spec.Name {
				t.Errorf("%s: DATABASE_URL connects as %q to database %q; each service uses its own, named after it (%s)", s.Name, u.User.Username(), db, spec.Name)
			}
			if o, dup := owner[db]; dup && o != spec.Name {
				t.Errorf("database %s is used by both %s and %s", db, o, spec.Name)
			}
			owner[db] = spec.Name
			if _, ok := s.DependsOn[u.Hostname()]; ok && s.DependsOn[u.Hostname()].Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: waits for %s to start, not to be healthy", s.Name, u.Hostname())
			} else if !ok {
				t.Errorf("%s: does not wait for its database server %s (depends_on, service_healthy)", s.Name, u.Hostname())
			}
			if ok && (server.HealthCheck == nil || len(server.HealthCheck.Test) < 2 || server.HealthCheck.Test[1] != "pg_isready") {
				t.Errorf("compose service %s: its healthcheck must ask pg_isready, which %s waits for", u.Hostname(), s.Name)
			}
		}
	}
}

func TestComposeServicesKeepNothingOnAVolume(t *testing.T) {
	p := loadCompose(t)
	for service, instances := range composeInstances(p) {
		for _, s := range instances {
			for _, v := range s.Volumes {
				if v.Type != types.VolumeTypeVolume && v.Type != types.VolumeTypeBind {
					continue
				}
				// The one kind of mount left is a key file's directory,
				// written before the service starts and read-only to it.
				keyDir := false
				for _, key := range []string{"JWT_PRIVATE_KEY_FILE", "JWT_PUBLIC_KEY_FILE"} {
					keyDir = keyDir || (env(s, key) != "" && path.Clean(path.Dir(env(s, key))) == path.Clean(v.Target))
				}
				if !v.ReadOnly || !keyDir {
					t.Errorf("%s (%s) mounts %s at %s (read-only %v): a service's instances share no volume; data belongs in its database", s.Name, service, v.Source, v.Target, v.ReadOnly)
				}
			}
		}
	}
}

// postgresSetting is the value of `-c name=value` in a PostgreSQL
// server's command line, or def.
func postgresSetting(s types.ServiceConfig, name string, def int) int {
	args := composeArgs(s)
	for i, a := range args {
		if a == "-c" && i+1 < len(args) {
			if v, ok := strings.CutPrefix(args[i+1], name+"="); ok {
				n, err := strconv.Atoi(v)
				if err == nil {
					return n
				}
			}
		}
	}
	return def
}

func TestComposeConnectionPoolsFitThePostgresServer(t *testing.T) {
	p := loadCompose(t)
	servers := composePostgres(p)
	opened := map[string]int{} // server -> connections its clients may open
	for _, instances := range composeInstances(p) {
		for _, s := range instances {
			u, err := url.Parse(env(s, "DATABASE_URL"))
			if err != nil || u.Host == "" {
				continue
			}
			n := 10 // storage.DefaultMaxConns, what an unset DATABASE_MAX_CONNS means
			if v := env(s, "DATABASE_MAX_CONNS"); v != "" {
				if n, err = strconv.Atoi(v); err != nil || n < 1 {
					t.Errorf("%s: DATABASE_MAX_CONNS=%q is no positive number", s.Name, v)
				}
			}
			opened[u.Hostname()] += n
		}
	}
	for name, server := range servers {
		// PostgreSQL's defaults: 100 connections, 3 kept for superusers.
		usable := postgresSetting(server, "max_connections", 100) - postgresSetting(server, "superuser_reserved_connections", 3)
		if opened[name] > usable {
			t.Errorf("the services' pools may open %d connections to %s, which takes %d from them: lower DATABASE_MAX_CONNS or raise max_connections", opened[name], name, usable)
		}
	}
}

func TestPostgresInitCreatesEachServicesDatabaseAndRole(t *testing.T) {
	p := loadCompose(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to run the init script with")
	}
	for name, server := range composePostgres(p) {
		var script string
		for _, v := range server.Volumes {
			if strings.HasPrefix(path.Clean(v.Target), "/docker-entrypoint-initdb.d/") && strings.HasSuffix(v.Target, ".sh") {
				script = v.Source
			}
		}
		if script == "" {
			t.Errorf("compose service %s mounts no init script into /docker-entrypoint-initdb.d", name)
			continue
		}
		// Run the script as the image does, with the container's
		// environment and a psql that records what it is asked.
		calls := runInitScript(t, bash, script, server)
		created := map[string]string{} // database -> its role's password
		for _, c := range calls {
			if c.vars["name"] == "" {
				continue
			}
			sql := strings.Join(strings.Fields(c.sql), " ")
			for _, stmt := range []string{`CREATE ROLE :"name" LOGIN PASSWORD :'password'`, `CREATE DATABASE :"name" OWNER :"name"`, `REVOKE ALL ON DATABASE :"name" FROM PUBLIC`} {
				if !strings.Contains(sql, stmt) {
					t.Errorf("init script, database %s: the SQL lacks %s:\n%s", c.vars["name"], stmt, c.sql)
				}
			}
			created[c.vars["name"]] = c.vars["password"]
		}
		for _, spec := range services.All() {
			if spec.Store == "" {
				continue
			}
			password, ok := created[spec.Name]
			if !ok {
				t.Errorf("the init script of %s creates no database and role for %s (it creates %v)", name, spec.Name, slices.Sorted(maps.Keys(created)))
				continue
			}
			// Every instance connects with the password the role got.
			for _, s := range composeInstances(p)[spec.Name] {
				u, err := url.Parse(env(s, "DATABASE_URL"))
				if err != nil || u.Hostname() != name {
					continue
				}
				if got, _ := u.User.Password(); got != password {
					t.Errorf("%s connects with password %q; the init script gave role %s %q", s.Name, got, spec.Name, password)
				}
			}
		}
	}
}

// psqlCall is one run of psql by the init script: its -v/--set
// variables and the SQL on its standard input or in --command.
type psqlCall struct {
	vars map[string]string
	sql  string
}

// runInitScript sources script as the postgres image does, in bash with
// set -e and the server's environment, with a psql on PATH that records
// each call instead of running it.
func runInitScript(t *testing.T, bash, script string, server types.ServiceConfig) []psqlCall {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	fake := "#!" + bash + "\n" + `{ printf 'CALL\0'; for a in "$@"; do printf '%s\0' "$a"; done; printf 'STDIN\0'; cat; printf '\0'; } >> "$PSQL_LOG"` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "psql"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, "-c", `set -e; source "$1" </dev/null`, "init", script)
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin", "PSQL_LOG=" + log, "POSTGRES_USER=postgres", "POSTGRES_DB=postgres"}
	for k, v := range server.Environment {
		if v != nil {
			cmd.Env = append(cmd.Env, k+"="+*v)
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the init script fails: %v\n%s", err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("the init script never runs psql: %v", err)
	}
	var calls []psqlCall
	for _, raw := range strings.Split(string(b), "CALL\x00")[1:] {
		fields := strings.Split(raw, "\x00")
		c := psqlCall{vars: map[string]string{}}
		for i := 0; i < len(fields); i++ {
			switch f := fields[i]; {
			case f == "STDIN" && i+1 < len(fields):
				c.sql += fields[i+1]
				i++
			case (f == "--set" || f == "-v") && i+1 < len(fields):
				k, v, _ := strings.Cut(fields[i+1], "=")
				c.vars[k] = v
				i++
			case (f == "--command" || f == "-c") && i+1 < len(fields):
				c.sql += fields[i+1]
				i++
			}
		}
		calls = append(calls, c)
	}
	return calls
}

func TestComposeSharesTheTokenKeys(t *testing.T) {
	p := loadCompose(t)
	instances := composeInstances(p)
	if len(instances["users"]) == 0 {
		t.Fatal("no users instance")
	}
	// One job writes the pair before anything starts, on volumes it can
	// write: the private key (with its public half beside it) on one, a
	// copy of the public key on another.
	var job *types.ServiceConfig
	for name, s := range p.AllServices() {
		if args := composeArgs(s); composeProgram(s) == "glasshouse" && len(args) > 1 && args[1] == "keygen" {
			if job != nil {
				t.Fatalf("two compose services run glasshouse keygen: %s and %s", job.Name, name)
			}
			job = &s
		}
	}
	if job == nil {
		t.Fatal("no compose service runs `glasshouse keygen`, which writes the token key pair")
	}
	private, published := flagValue(composeArgs(*job), "key"), flagValue(composeArgs(*job), "public")
	keys, public := mountAt(*job, path.Dir(private)), mountAt(*job, path.Dir(published))
	if private == "" || keys == nil || keys.Type != types.VolumeTypeVolume || keys.ReadOnly {
		t.Fatalf("%s: -key %q must lie on a writable named volume", job.Name, private)
	}
	if published == "" || public == nil || public.Type != types.VolumeTypeVolume || public.ReadOnly {
		t.Fatalf("%s: -public %q must lie on a writable named volume", job.Name, published)
	}
	if public.Source == keys.Source {
		t.Fatalf("%s publishes the public key on %s, the volume of the private key: token checkers mounting it could read the signing key", job.Name, keys.Source)
	}
	waitsForKeys := func(s types.ServiceConfig) {
		if d, ok := s.DependsOn[job.Name]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s: does not wait for %s to complete successfully (depends_on)", s.Name, job.Name)
		}
	}
	// Every users replica signs with that one private key, read-only, and
	// finds its public half beside it.
	for _, s := range instances["users"] {
		waitsForKeys(s)
		if got := env(s, "JWT_PRIVATE_KEY_FILE"); got != private {
			t.Errorf("%s: JWT_PRIVATE_KEY_FILE=%q, but %s writes the key to %q", s.Name, got, job.Name, private)
		}
		if v := mountAt(s, path.Dir(private)); v == nil || v.Source != keys.Source || !v.ReadOnly {
			t.Errorf("%s: %s must be the volume %s, mounted read-only", s.Name, path.Dir(private), keys.Source)
		}
	}
	// Readers find the public key where the job publishes it, mounted
	// read-only; and no volume of theirs holds the private key (they run
	// as the same uid as users, so file modes cannot stop them).
	for _, name := range tokenReaders() {
		for _, s := range instances[name] {
			waitsForKeys(s)
			key := env(s, "JWT_PUBLIC_KEY_FILE")
			if key != published {
				t.Errorf("%s: JWT_PUBLIC_KEY_FILE=%q, but %s publishes the public key to %q", s.Name, key, job.Name, published)
			}
			if path.Base(key) != path.Base(users.PublicKeyPath(private)) {
				t.Errorf("%s: JWT_PUBLIC_KEY_FILE=%q; keep the name users gives the public key, %s", s.Name, key, path.Base(users.PublicKeyPath(private)))
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
	want := map[string]string{"grafana": "3000", "jaeger": "16686", "prometheus": "9090", "consul": "8500"}
	// A host port takes one container: the gateway's first instance
	// publishes it.
	if gateways := composeInstances(p)["gateway"]; len(gateways) > 0 {
		want[gateways[0].Name] = "8080"
	}
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
		if args := composeArgs(s); composeProgram(s) != "glasshouse" || len(args) < 2 || args[1] != "load" {
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
