// Package stack runs the whole platform on one machine without Docker: a
// real Consul agent, NATS with JetStream, Jaeger and Prometheus, and every
// service as a child process (inventory and payments with two replicas),
// each found through Consul as in production. Each service's store is its
// SQLite file under the run directory, or, with Store set to
// StorePostgres, its own PostgreSQL cluster the stack starts (orders then
// runs two replicas too). `glasshouse up` uses it, and so do the tests and
// the chaos runner, so what they prove is what a newcomer runs.
package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/glasshouse-dev/glasshouse/internal/pgcluster"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// Store is where the services keep their data.
type Store string

const (
	// StoreSQLite gives each service a SQLite file under RunDir/data,
	// shared by its replicas (all on this host).
	StoreSQLite Store = "sqlite"
	// StorePostgres starts a PostgreSQL cluster per service that has a
	// store, under RunDir/postgres/SERVICE, from the machine's own server
	// binaries, each with a database and a role named after its service:
	// the role owns the database alone.
	StorePostgres Store = "postgres"
)

// Pinned tool versions, built from source through the Go module proxy
// (tools/*/go.mod) and cached in bin/tools/ by version.
const (
	ConsulVersion     = "v1.14.0"
	JaegerVersion     = "v1.76.0"
	PrometheusVersion = "v0.316.0"
	NATSVersion       = "v2.15.3"
)

// Config describes a stack. The zero value of each field is its default.
type Config struct {
	// Root is the repository root (for deploy/ and building); default ".".
	Root string
	// RunDir holds logs, data and state; default Root/run.
	RunDir string
	// BinDir holds the service binaries, tools in BinDir/tools; default
	// Root/bin. Services are (re)built there from source when Root is a
	// checkout.
	BinDir string
	// ToolsDir holds the pinned tools; default BinDir/tools. $CONSUL_BIN,
	// $JAEGER_BIN, $PROMETHEUS_BIN and $NATS_BIN override single tools.
	ToolsDir string
	// Host is the address every process binds and advertises; default
	// 127.0.0.1.
	Host string
	// Ports of the entry points; 0 means the default (8080, 8500, 16686,
	// 4318, 9090, NATS's clients 4222 and its monitoring 8222), or a free
	// port when RandomPorts is set.
	GatewayPort, ConsulPort, JaegerPort, OTLPPort, PrometheusPort int
	NATSPort, NATSMonitorPort                                     int
	// Store is where the services keep their data; default StoreSQLite.
	Store Store
	// PostgresPort is the port of the first PostgreSQL cluster with
	// StorePostgres (users'); the others follow it in catalogue order
	// (inventory, payments, orders: 5433, 5434, 5435 by default). 0 means
	// 5432, or free ports when RandomPorts is set.
	PostgresPort int
	// RandomPorts picks free ports for everything (tests, parallel stacks).
	RandomPorts bool
	// Replicas overrides a service's replicas in the catalogue
	// (services.All) per service.
	Replicas map[string]int
	// Env adds KEY=VALUE settings per service ("*" for all of them).
	Env map[string][]string
	// Progress receives one line per step; nil discards.
	Progress io.Writer

	chosen        map[int]bool   // ports handed out, so no port is chosen twice
	postgresPorts map[string]int // each store-owning service's cluster's port
}

// Stack is a running platform.
type Stack struct {
	cfg   Config
	procs []*Proc
	// databases are the PostgreSQL clusters' postmasters by service with
	// StorePostgres, among procs as "SERVICE-db"; databaseURLs holds each
	// store-owning service's DATABASE_URL.
	databases    map[string]*Proc
	databaseURLs map[string]string

	Consul     *Proc
	NATS       *Proc
	Jaeger     *Proc
	Prometheus *Proc
	// URLs of the entry points. NATSURL is nats://host:port, what the
	// services get as NATS_URL.
	GatewayURL, ConsulURL, JaegerURL, PrometheusURL, OTLPURL, NATSURL string
	// StartedIn is how long Up took.
	StartedIn time.Duration
}

func (c *Config) defaults() error {
	if c.Root == "" {
		c.Root = "."
	}
	root, err := filepath.Abs(c.Root)
	if err != nil {
		return err
	}
	c.Root = root
	if c.RunDir == "" {
		c.RunDir = filepath.Join(c.Root, "run")
	}
	if c.BinDir == "" {
		c.BinDir = filepath.Join(c.Root, "bin")
	}
	if c.ToolsDir == "" {
		c.ToolsDir = filepath.Join(c.BinDir, "tools")
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch c.Store {
	case "":
		c.Store = StoreSQLite
	case StoreSQLite, StorePostgres:
	default:
		return fmt.Errorf("unknown store %q: choose %s or %s", c.Store, StoreSQLite, StorePostgres)
	}
	return nil
}

// port is a chosen port and the flag that chose it, for error messages.
type port struct {
	n    *int
	def  int
	flag string
}

// choosePorts fills in every port and fails, naming the flag, when a fixed
// one is already taken: a clear error instead of a child that hangs or dies.
func (c *Config) choosePorts() error {
	for _, p := range []port{
		{&c.GatewayPort, 8080, "--gateway-port"},
		{&c.ConsulPort, 8500, "--consul-port"},
		{&c.JaegerPort, 16686, "--jaeger-port"},
		{&c.OTLPPort, 4318, "--otlp-port"},
		{&c.PrometheusPort, 9090, "--prometheus-port"},
		{&c.NATSPort, 4222, "--nats-port"},
		{&c.NATSMonitorPort, 8222, "--nats-monitor-port"},
	} {
		if *p.n == 0 && !c.RandomPorts {
			*p.n = p.def
		}
		if err := c.reserve(p.n, p.flag); err != nil {
			return err
		}
	}
	if c.Store == StorePostgres {
		if c.PostgresPort == 0 && !c.RandomPorts {
			c.PostgresPort = 5432
		}
		c.postgresPorts = map[string]int{}
		for i, svc := range storeServices() {
			port, flag := 0, "--postgres-port"
			if c.PostgresPort != 0 {
				port = c.PostgresPort + i
			}
			if i > 0 {
				flag = fmt.Sprintf("%s's PostgreSQL, --postgres-port+%d", svc.Name, i)
			}
			if err := c.reserve(&port, flag); err != nil {
				return err
			}
			c.postgresPorts[svc.Name] = port
		}
		c.PostgresPort = c.postgresPorts[storeServices()[0].Name]
	}
	return nil
}

// reserve picks a free port into *n when it is 0, or checks that *n is free.
func (c *Config) reserve(n *int, flag string) error {
	if c.chosen == nil {
		c.chosen = map[int]bool{}
	}
	for {
		ln, err := net.Listen("tcp", net.JoinHostPort(c.Host, strconv.Itoa(*n)))
		if err != nil {
			return fmt.Errorf("port %d (%s) is already in use on %s: stop what holds it or choose another port", *n, flag, c.Host)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if *n == 0 && c.chosen[port] {
			continue // the kernel offered a port handed out already
		}
		*n = port
		c.chosen[port] = true
		return nil
	}
}

func (c *Config) replicas(service services.Spec) int {
	if n, ok := c.Replicas[service.Name]; ok {
		return n
	}
	if c.Store == StorePostgres && service.PostgresReplicas != 0 {
		return service.PostgresReplicas
	}
	return service.Replicas
}

// Up builds what is missing, starts Consul, NATS, Jaeger, Prometheus and
// every service, and returns once every instance passes its Consul check. If
// anything fails, what was started is stopped again.
func Up(ctx context.Context, cfg Config) (s *Stack, err error) {
	start := time.Now()
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cfg.Store == StorePostgres {
		// Before anything is built or started: a missing package is the
		// first thing to say.
		if _, err := pgcluster.BinDir(); err != nil {
			return nil, fmt.Errorf("--store postgres: %w", err)
		}
	}
	if err := cfg.choosePorts(); err != nil {
		return nil, err
	}
	s = &Stack{cfg: cfg}
	defer func() {
		if err != nil {
			_ = s.Down(context.Background())
			s = nil
		}
	}()
	if err := s.build(ctx); err != nil {
		return s, err
	}
	for _, dir := range []string{"logs", "data", "keys"} {
		if err := os.MkdirAll(filepath.Join(cfg.RunDir, dir), 0o750); err != nil {
			return s, err
		}
	}
	if cfg.Store == StorePostgres {
		if err := s.startPostgres(ctx); err != nil {
			return s, err
		}
	}
	if err := s.startConsul(ctx); err != nil {
		return s, err
	}
	if err := s.startNATS(ctx); err != nil {
		return s, err
	}
	if err := s.startJaeger(ctx); err != nil {
		return s, err
	}
	if err := s.startPrometheus(ctx); err != nil {
		return s, err
	}
	for _, svc := range services.All() {
		for n := 1; n <= cfg.replicas(svc); n++ {
			if err := s.startService(svc, n); err != nil {
				return s, err
			}
		}
		if svc.Tokens == services.SignsTokens { // the checkers wait for its public key
			if err := s.waitPassing(ctx, svc.Name, cfg.replicas(svc), time.Minute); err != nil {
				return s, err
			}
		}
	}
	for _, svc := range services.All() {
		// Every registration counts: a gRPC listener's own too, or a
		// caller over gRPC could start with fewer instances than exist.
		for _, name := range []string{svc.Name, svc.GRPCName()} {
			if name == "" {
				continue
			}
			if err := s.waitPassing(ctx, name, cfg.replicas(svc), time.Minute); err != nil {
				return s, err
			}
		}
	}
	s.StartedIn = time.Since(start)
	s.progress("ready in %s", s.StartedIn.Round(100*time.Millisecond))
	return s, nil
}

func (s *Stack) progress(format string, args ...any) {
	fmt.Fprintf(s.cfg.Progress, "  "+format+"\n", args...)
}

func (s *Stack) addr(port int) string { return net.JoinHostPort(s.cfg.Host, strconv.Itoa(port)) }

func (s *Stack) launch(p *Proc) error {
	if err := p.start(); err != nil {
		return err
	}
	s.procs = append(s.procs, p)
	return nil
}

func (s *Stack) startConsul(ctx context.Context) error {
	serf, server := 0, 0
	for _, n := range []*int{&serf, &server} {
		if err := s.cfg.reserve(n, "a Consul internal port"); err != nil {
			return err
		}
	}
	s.ConsulURL = "http://" + s.addr(s.cfg.ConsulPort)
	s.Consul = &Proc{
		Name: "consul", Addr: s.addr(s.cfg.ConsulPort), LogPath: filepath.Join(s.cfg.RunDir, "logs", "consul.log"),
		anyExitOnStop: true,
		path:          s.tool("consul", ConsulVersion),
		args: []string{"agent", "-dev", "-node", "glasshouse",
			"-bind", s.cfg.Host, "-client", s.cfg.Host,
			"-http-port", strconv.Itoa(s.cfg.ConsulPort),
			"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
			"-serf-lan-port", strconv.Itoa(serf), "-serf-wan-port", "-1",
			"-server-port", strconv.Itoa(server), "-log-level", "warn"},
	}
	s.progress("starting Consul %s on %s", ConsulVersion, s.Consul.Addr)
	if err := s.launch(s.Consul); err != nil {
		return err
	}
	return s.waitConsul(ctx)
}

// waitConsul waits for the agent to have a leader and to sync
// registrations to the catalog, so services that start next are listed
// at once, not after the agent's 15–30s retry.
func (s *Stack) waitConsul(ctx context.Context) error {
	err := s.waitHTTP(ctx, s.Consul, s.ConsulURL+"/v1/status/leader", func(body string) bool {
		return strings.Trim(strings.TrimSpace(body), `"`) != ""
	})
	if err != nil {
		return err
	}
	client, err := consul.NewClient(&consul.Config{Address: s.Consul.Addr})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := transport.AwaitCatalogSync(ctx, client); err != nil {
		return fmt.Errorf("%w; see %s", err, s.Consul.LogPath)
	}
	return nil
}

// NATSStoreDir is where the stack's NATS keeps its JetStream streams.
func (s *Stack) NATSStoreDir() string { return filepath.Join(s.cfg.RunDir, "data", "nats") }

// startNATS runs nats-server with JetStream on, its streams in files under
// the run directory (they outlive a restart, as in production), on the
// stack's host only: clients on NATSPort, the monitoring API on
// NATSMonitorPort. It is ready when /healthz says JetStream is.
func (s *Stack) startNATS(ctx context.Context) error {
	s.NATSURL = "nats://" + s.addr(s.cfg.NATSPort)
	s.NATS = &Proc{
		Name: "nats", Addr: s.addr(s.cfg.NATSPort), AdminAddr: s.addr(s.cfg.NATSMonitorPort),
		LogPath: filepath.Join(s.cfg.RunDir, "logs", "nats.log"),
		path:    s.tool("nats-server", NATSVersion),
		args: []string{"--jetstream", "--store_dir", s.NATSStoreDir(),
			"--server_name", "glasshouse",
			// The monitoring listener binds the same host as the clients'.
			"--addr", s.cfg.Host, "--port", strconv.Itoa(s.cfg.NATSPort),
			"--http_port", strconv.Itoa(s.cfg.NATSMonitorPort)},
	}
	s.progress("starting NATS %s on %s (JetStream, store %s; monitoring http://%s)", NATSVersion, s.NATSURL, s.NATSStoreDir(), s.NATS.AdminAddr)
	if err := s.launch(s.NATS); err != nil {
		return err
	}
	return s.waitNATS(ctx)
}

// waitNATS waits until the server answers and JetStream is enabled: a
// plain /healthz turns 200 before JetStream has read its store.
func (s *Stack) waitNATS(ctx context.Context) error {
	return s.waitHTTP(ctx, s.NATS, "http://"+s.NATS.AdminAddr+"/healthz?js-enabled-only=true", nil)
}

func (s *Stack) startJaeger(ctx context.Context) error {
	grpc := 0
	if err := s.cfg.reserve(&grpc, "Jaeger's query gRPC port"); err != nil {
		return err
	}
	s.JaegerURL = "http://" + s.addr(s.cfg.JaegerPort)
	s.OTLPURL = "http://" + s.addr(s.cfg.OTLPPort)
	s.Jaeger = &Proc{
		Name: "jaeger", Addr: s.addr(s.cfg.JaegerPort), LogPath: filepath.Join(s.cfg.RunDir, "logs", "jaeger.log"),
		path: s.tool("jaeger", JaegerVersion),
		args: []string{"--config", filepath.Join(s.cfg.Root, "deploy", "jaeger", "local.yaml")},
		env: []string{
			"JAEGER_QUERY_HTTP_ADDR=" + s.addr(s.cfg.JaegerPort),
			"JAEGER_QUERY_GRPC_ADDR=" + s.addr(grpc),
			"JAEGER_OTLP_HTTP_ADDR=" + s.addr(s.cfg.OTLPPort),
			// Jaeger must not trace itself into a collector that isn't there.
			"OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true",
			// No GOMEMLIMIT: a soft limit just above the full store
			// (160MiB) saved 85 MiB at 100 requests/s but, with the
			// store's live heap near it, kept the collector running: at
			// saturation Jaeger spent 1.7-1.9 ms of CPU per checkout
			// instead of 0.63-0.65 (docs/performance.md, the fourth round).
		},
	}
	s.progress("starting Jaeger %s: query API %s, OTLP %s", JaegerVersion, s.JaegerURL, s.OTLPURL)
	if err := s.launch(s.Jaeger); err != nil {
		return err
	}
	return s.waitHTTP(ctx, s.Jaeger, s.JaegerURL+"/api/services", nil)
}

func (s *Stack) startPrometheus(ctx context.Context) error {
	// The shared config names Consul as compose does; point it at ours.
	shared, err := os.ReadFile(filepath.Join(s.cfg.Root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		return err
	}
	if !strings.Contains(string(shared), "server: consul:8500") {
		return errors.New("deploy/prometheus/prometheus.yml no longer names consul:8500; update stack.startPrometheus")
	}
	local := strings.ReplaceAll(string(shared), "server: consul:8500", "server: "+s.Consul.Addr)
	dir := filepath.Join(s.cfg.RunDir, "prometheus")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := copyRules(filepath.Join(s.cfg.Root, "deploy", "prometheus"), dir); err != nil {
		return err
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(local), 0o640); err != nil {
		return err
	}
	s.PrometheusURL = "http://" + s.addr(s.cfg.PrometheusPort)
	s.Prometheus = &Proc{
		Name: "prometheus", Addr: s.addr(s.cfg.PrometheusPort), LogPath: filepath.Join(s.cfg.RunDir, "logs", "prometheus.log"),
		path: s.tool("prometheus", PrometheusVersion),
		args: []string{
			"--config.file=" + configPath,
			"--storage.tsdb.path=" + filepath.Join(s.cfg.RunDir, "data", "prometheus"),
			"--storage.tsdb.retention.time=6h",
			"--web.listen-address=" + s.addr(s.cfg.PrometheusPort),
			"--web.enable-lifecycle",
			// Exemplars carry trace IDs from latency buckets to Jaeger.
			"--enable-feature=exemplar-storage",
		},
	}
	s.progress("starting Prometheus %s on %s (targets from Consul)", PrometheusVersion, s.PrometheusURL)
	if err := s.launch(s.Prometheus); err != nil {
		return err
	}
	return s.waitHTTP(ctx, s.Prometheus, s.PrometheusURL+"/-/ready", nil)
}

// copyRules copies the rule files next to the generated config, so
// rule_files paths resolve the same way as in compose.
func copyRules(from, to string) error {
	matches, _ := filepath.Glob(filepath.Join(from, "*.rules.yml"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(m)), b, 0o640); err != nil {
			return err
		}
	}
	return nil
}

// instancePorts are one instance's listeners' ports; grpc is 0 for a
// service that serves no gRPC.
type instancePorts struct{ public, admin, grpc int }

// servicePorts chooses an instance's public, admin and gRPC ports: the
// defaults (the catalogue's port, replica n adding 100(n-1), admin
// services.AdminOffset above, gRPC services.GRPCOffset away) or, with
// RandomPorts, free ones. The public service's first instance takes
// GatewayPort. Either way each is checked free, and never handed out
// twice.
func (c *Config) servicePorts(service services.Spec, replica int) (instancePorts, error) {
	port, adminPort, err := c.httpPorts(service, replica)
	if err != nil || !service.GRPC {
		return instancePorts{public: port, admin: adminPort}, err
	}
	grpcPort := 0
	if !c.RandomPorts {
		grpcPort = port + services.GRPCOffset
	}
	if err := c.reserve(&grpcPort, fmt.Sprintf("the gRPC port of %s/%d; or use --random-ports", service.Name, replica)); err != nil {
		return instancePorts{}, err
	}
	return instancePorts{public: port, admin: adminPort, grpc: grpcPort}, nil
}

func (c *Config) httpPorts(service services.Spec, replica int) (port, adminPort int, err error) {
	name := fmt.Sprintf("%s/%d", service.Name, replica)
	flag := fmt.Sprintf("the port of %s; or use --random-ports", name)
	switch {
	case service.Public && replica == 1:
		port, flag = c.GatewayPort, "--gateway-port"
	case !c.RandomPorts:
		port = service.Port + 100*(replica-1)
	}
	if err := c.reserve(&port, flag); err != nil {
		return 0, 0, err
	}
	if !c.RandomPorts {
		adminPort = port + services.AdminOffset
	}
	if err := c.reserve(&adminPort, fmt.Sprintf("the admin port of %s; or use --random-ports", name)); err != nil {
		return 0, 0, err
	}
	return port, adminPort, nil
}

func (s *Stack) startService(spec services.Spec, replica int) error {
	service := spec.Name
	name := fmt.Sprintf("%s/%d", service, replica)
	ports, err := s.cfg.servicePorts(spec, replica)
	if err != nil {
		return err
	}
	port, adminPort := ports.public, ports.admin
	keys := filepath.Join(s.cfg.RunDir, "keys")
	env := []string{
		"LISTEN_ADDR=" + s.addr(port),
		"ADMIN_LISTEN_ADDR=" + s.addr(adminPort),
		"CONSUL_HTTP_ADDR=" + s.Consul.Addr,
		// No service uses it yet; orders (its outbox relay) and
		// recommendations will.
		"NATS_URL=" + s.NATSURL,
		// With SQLite, replicas on one host share their service's
		// database file.
		"DATA_DIR=" + filepath.Join(s.cfg.RunDir, "data", service),
		"JWT_PRIVATE_KEY_FILE=" + filepath.Join(keys, "users-jwt.key"),
		"JWT_PUBLIC_KEY_FILE=" + filepath.Join(keys, "users-jwt.pub"),
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + s.OTLPURL,
		// Export spans every 500ms rather than every 5s, so a trace is in
		// Jaeger by the time someone pastes its ID.
		"OTEL_BSP_SCHEDULE_DELAY=500",
		"CHECK_INTERVAL=1s",
	}
	if service == "gateway" {
		// On one machine every request comes from one client address (the
		// load generator's): allow it far more than a real client, sign-ups
		// and logins too (the per-email login limit stays as it is).
		env = append(env, "RATE_LIMIT=1000", "RATE_BURST=2000", "AUTH_RATE_LIMIT=1000", "AUTH_RATE_BURST=2000")
		// users may let a login wait up to its BCRYPT_WAIT (below) for a
		// bcrypt slot; the gateway must wait longer than that, or a login
		// that queued is cut off and, never being resent, fails.
		env = append(env, "USERS_CLIENT_ATTEMPT_TIMEOUT=3s", "USERS_CLIENT_DEADLINE=4s")
	}
	if service == "users" {
		// The load generators sign their customers up several at a time:
		// let a sign-up wait for a bcrypt slot rather than be refused.
		env = append(env, "BCRYPT_WAIT=2s")
	}
	if url := s.databaseURLs[service]; url != "" {
		env = append(env, "DATABASE_URL="+url)
	}
	grpcAddr := ""
	if ports.grpc != 0 {
		grpcAddr = s.addr(ports.grpc)
		env = append(env, "GRPC_LISTEN_ADDR="+grpcAddr)
	}
	env = append(env, s.cfg.Env["*"]...)
	env = append(env, s.cfg.Env[service]...)
	p := &Proc{
		Name: name, Service: service, Replica: replica, Addr: s.addr(port), AdminAddr: s.addr(adminPort), GRPCAddr: grpcAddr,
		LogPath: filepath.Join(s.cfg.RunDir, "logs", strings.ReplaceAll(name, "/", "-")+".log"),
		path:    filepath.Join(s.cfg.BinDir, service),
		env:     env,
	}
	if spec.Public && replica == 1 {
		s.GatewayURL = "http://" + p.Addr
	}
	if grpcAddr != "" {
		s.progress("starting %-12s on %s (admin %s, gRPC %s)", name, p.Addr, p.AdminAddr, grpcAddr)
	} else {
		s.progress("starting %-12s on %s (admin %s)", name, p.Addr, p.AdminAddr)
	}
	return s.launch(p)
}

// Restart starts a stopped or killed instance again, on its old port.
func (s *Stack) Restart(ctx context.Context, name string) error {
	p := s.Proc(name)
	if p == nil {
		return fmt.Errorf("no process %q in the stack", name)
	}
	if p.Running() {
		return fmt.Errorf("%s is still running", name)
	}
	if p.restart != nil {
		return p.restart(ctx)
	}
	if err := p.start(); err != nil {
		return err
	}
	switch p.Name {
	case "consul":
		return s.waitConsul(ctx)
	case "nats":
		return s.waitNATS(ctx)
	case "jaeger":
		return s.waitHTTP(ctx, p, s.JaegerURL+"/api/services", nil)
	case "prometheus":
		return s.waitHTTP(ctx, p, s.PrometheusURL+"/-/ready", nil)
	}
	return s.waitHTTP(ctx, p, "http://"+p.AdminAddr+"/readyz", nil)
}

// Proc returns the process with the given name, or nil.
func (s *Stack) Proc(name string) *Proc {
	for _, p := range s.procs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Instances returns the processes of one service, by replica.
func (s *Stack) Instances(service string) []*Proc {
	var out []*Proc
	for _, p := range s.procs {
		if p.Service == service {
			out = append(out, p)
		}
	}
	return out
}

// Procs returns every process of the stack, in start order.
func (s *Stack) Procs() []*Proc { return append([]*Proc(nil), s.procs...) }

// Down stops everything in order: the services first (each deregisters
// from Consul and drains), then Prometheus, Jaeger, NATS (once its
// clients are gone) and Consul, and the PostgreSQL clusters last, once
// nothing uses them. No process is left
// behind: whatever does not stop in time is killed.
func (s *Stack) Down(ctx context.Context) error {
	var errs []error
	// The gateway first, so no new request enters while the rest stops.
	services := make([]*Proc, 0, len(s.procs))
	for _, p := range s.procs {
		if p.Service != "" {
			services = append(services, p)
		}
	}
	sort.SliceStable(services, func(i, j int) bool { return services[i].Service == "gateway" && services[j].Service != "gateway" })
	for _, p := range services {
		if p.Service == "gateway" {
			if err := p.Stop(15 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	done := make(chan error, len(services))
	n := 0
	for _, p := range services {
		if p.Service != "gateway" {
			n++
			go func() { done <- p.Stop(15 * time.Second) }()
		}
	}
	for range n {
		if err := <-done; err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range []*Proc{s.Prometheus, s.Jaeger, s.NATS, s.Consul} {
		if p != nil {
			if err := p.Stop(10 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := s.stopDatabases(30 * time.Second); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitHTTP polls url until it answers 200 (and ok accepts the body), the
// process exits (an error quoting its log), or a minute passes.
func (s *Stack) waitHTTP(ctx context.Context, p *Proc, url string, ok func(body string) bool) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		if !p.Running() {
			return fmt.Errorf("%s exited while starting; last lines of %s:\n%s", p.Name, p.LogPath, p.logTail(15))
		}
		if resp, err := client.Get(url); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && (ok == nil || ok(string(body))) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not become ready at %s within a minute; see %s", p.Name, url, p.LogPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitPassing waits until n instances of service pass their checks.
func (s *Stack) waitPassing(ctx context.Context, service string, n int, within time.Duration) error {
	client, err := consul.NewClient(&consul.Config{Address: s.Consul.Addr})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(within)
	for {
		for _, p := range s.Instances(service) {
			if !p.Running() {
				return fmt.Errorf("%s exited while starting; last lines of %s:\n%s", p.Name, p.LogPath, p.logTail(15))
			}
		}
		entries, _, err := client.Health().Service(service, "", true, (&consul.QueryOptions{}).WithContext(ctx))
		if err == nil && len(entries) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d instances passing in Consul after %s", service, len(entries), n, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// State is what `glasshouse up` records in RunDir/state.json, so that
// `down`, `status` and `kill` in another terminal can find the stack.
type State struct {
	UpPID         int    `json:"up_pid"`
	GatewayURL    string `json:"gateway_url"`
	ConsulURL     string `json:"consul_url"`
	JaegerURL     string `json:"jaeger_url"`
	PrometheusURL string `json:"prometheus_url"`
	NATSURL       string `json:"nats_url"`
	RunDir        string `json:"run_dir"`
	// Store is "sqlite" or "postgres"; with postgres, Procs has each
	// store-owning service's cluster's postmaster as "SERVICE-db".
	Store Store   `json:"store"`
	Procs []*Proc `json:"procs"`
}

// State describes the running stack.
func (s *Stack) State() State {
	return State{
		UpPID: os.Getpid(), GatewayURL: s.GatewayURL, ConsulURL: s.ConsulURL, JaegerURL: s.JaegerURL,
		PrometheusURL: s.PrometheusURL, NATSURL: s.NATSURL, RunDir: s.cfg.RunDir, Store: s.cfg.Store, Procs: s.procs,
	}
}

// StatePath is where the state file of a stack in runDir lives.
func StatePath(runDir string) string { return filepath.Join(runDir, "state.json") }

// WriteState records the stack's state in its run directory.
func (s *Stack) WriteState() error {
	b, err := json.MarshalIndent(s.State(), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(StatePath(s.cfg.RunDir), b, 0o640)
}

// ReadState reads the state of the stack running from runDir.
func ReadState(runDir string) (State, error) {
	var st State
	b, err := os.ReadFile(StatePath(runDir))
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("no stack is running from %s (no %s): start one with `glasshouse up`", runDir, StatePath(runDir))
	}
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// build makes sure every binary is there and current. In a source
// checkout the services are always built: go build is incremental, so
// this costs a second when nothing changed and never runs a stale binary.
// The pinned tools are built from their tools/ modules once and kept by
// version.
func (s *Stack) build(ctx context.Context) error {
	names := services.Names()
	pkgs := make([]string, len(names))
	for i, svc := range names {
		pkgs[i] = "./cmd/" + svc
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Root, "go.mod")); err == nil {
		s.progress("building the services")
		args := append([]string{"build", "-o", s.cfg.BinDir + string(filepath.Separator)}, pkgs...)
		if err := s.run(ctx, s.cfg.Root, "go", args...); err != nil {
			return err
		}
	} else {
		for _, svc := range names {
			if _, err := os.Stat(filepath.Join(s.cfg.BinDir, svc)); err != nil {
				return fmt.Errorf("no %s binary in %s, and no source to build it from", svc, s.cfg.BinDir)
			}
		}
	}
	for _, t := range []struct{ name, version, module, pkg string }{
		{"consul", ConsulVersion, "consul", "github.com/hashicorp/consul"},
		{"nats-server", NATSVersion, "nats", "github.com/nats-io/nats-server/v2"},
		{"jaeger", JaegerVersion, "jaeger", "github.com/jaegertracing/jaeger/cmd/jaeger"},
		{"prometheus", PrometheusVersion, "prometheus", "github.com/prometheus/prometheus/cmd/prometheus"},
	} {
		path := s.tool(t.name, t.version)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		s.progress("building %s %s from source (first time only, a few minutes)", t.name, t.version)
		if err := s.run(ctx, filepath.Join(s.cfg.Root, "tools", t.module), "go", "build", "-o", path, t.pkg); err != nil {
			return err
		}
	}
	return nil
}

// tool is the path of a pinned tool: $NAME_BIN if set (e.g. CONSUL_BIN;
// NATS_BIN for nats-server), else the versioned build in bin/tools.
func (s *Stack) tool(name, version string) string {
	if p := os.Getenv(toolEnv(name)); p != "" {
		return p
	}
	return filepath.Join(s.cfg.ToolsDir, name+"-"+version)
}

// toolEnv is the variable that overrides a tool's binary: CONSUL_BIN for
// consul, and NATS_BIN for nats-server, as the Makefile names them.
func toolEnv(name string) string {
	return strings.ToUpper(strings.TrimSuffix(name, "-server")) + "_BIN"
}

func (s *Stack) run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
