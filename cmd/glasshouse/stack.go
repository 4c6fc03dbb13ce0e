package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/stack"
	"github.com/glasshouse-dev/glasshouse/transport"
	consul "github.com/hashicorp/consul/api"
)

// Demo credentials created by up, so the printed curl works at once.
const (
	demoEmail    = "demo@glasshouse.dev"
	demoPassword = "glasshouse-demo"
)

func cmdUp(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var cfg stack.Config
	fs.StringVar(&cfg.RunDir, "run-dir", "run", "directory for logs, data and state")
	fs.IntVar(&cfg.GatewayPort, "gateway-port", 8080, "gateway port")
	fs.IntVar(&cfg.ConsulPort, "consul-port", 8500, "Consul HTTP port")
	fs.IntVar(&cfg.JaegerPort, "jaeger-port", 16686, "Jaeger query API port")
	fs.IntVar(&cfg.OTLPPort, "otlp-port", 4318, "Jaeger OTLP/HTTP port")
	fs.IntVar(&cfg.PrometheusPort, "prometheus-port", 9090, "Prometheus port")
	fs.IntVar(&cfg.NATSPort, "nats-port", 4222, "NATS client port")
	fs.IntVar(&cfg.NATSMonitorPort, "nats-monitor-port", 8222, "NATS monitoring (HTTP) port")
	fs.BoolVar(&cfg.RandomPorts, "random-ports", false, "pick free ports for everything")
	store := fs.String("store", string(stack.StoreSQLite), "where the services keep their data: sqlite (a file per service under the run dir) "+
		"or postgres (a PostgreSQL cluster per service under the run dir, from this machine's server binaries, each with the service's database and role)")
	fs.IntVar(&cfg.PostgresPort, "postgres-port", 5432, "with --store postgres, the first PostgreSQL cluster's port (users'); inventory's, payments' and orders' follow it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Store = stack.Store(*store)
	if cfg.RandomPorts {
		for _, p := range []*int{&cfg.GatewayPort, &cfg.ConsulPort, &cfg.JaegerPort, &cfg.OTLPPort, &cfg.PrometheusPort, &cfg.NATSPort, &cfg.NATSMonitorPort, &cfg.PostgresPort} {
			*p = 0
		}
	}
	if st, err := stack.ReadState(cfg.RunDir); err == nil && processAlive(st.UpPID) {
		return fmt.Errorf("a stack is already running from %s (glasshouse up, pid %d): stop it with `glasshouse down`", cfg.RunDir, st.UpPID)
	}
	cfg.Progress = stdout
	fmt.Fprintln(stdout, "glasshouse up: starting the platform")
	s, err := stack.Up(ctx, cfg)
	if err != nil {
		return err
	}
	if err := s.WriteState(); err != nil {
		return errors.Join(err, s.Down(context.Background()))
	}
	if err := createDemoUser(ctx, s.GatewayURL); err != nil {
		fmt.Fprintf(stdout, "  (could not create the demo user: %v)\n", err)
	}
	printReady(stdout, s, cfg.RunDir)

	<-ctx.Done() // Ctrl-C, or SIGTERM from `glasshouse down`
	last := "Prometheus, Jaeger, NATS and Consul"
	if len(s.Databases()) > 0 {
		last = "Prometheus, Jaeger, NATS, Consul and PostgreSQL"
	}
	fmt.Fprintf(stdout, "\nglasshouse: stopping services, then %s\n", last)
	err = s.Down(context.Background())
	_ = os.Remove(stack.StatePath(cfg.RunDir))
	if err == nil {
		fmt.Fprintln(stdout, "glasshouse: stopped; nothing left running")
	}
	return err
}

func printReady(w io.Writer, s *stack.Stack, runDir string) {
	fmt.Fprintf(w, "\nglasshouse is ready (started in %s)\n\n", s.StartedIn.Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  gateway\t%s\n", s.GatewayURL)
	fmt.Fprintf(tw, "  Jaeger API\t%s/api/services\t(glasshouse trace ID draws one; the UI comes with docker compose)\n", s.JaegerURL)
	fmt.Fprintf(tw, "  Prometheus\t%s\n", s.PrometheusURL)
	fmt.Fprintf(tw, "  Consul UI\t%s/ui\n", s.ConsulURL)
	fmt.Fprintf(tw, "  NATS\t%s\t(JetStream; monitoring http://%s/jsz; the services' NATS_URL)\n", s.NATSURL, s.NATS.AdminAddr)
	for _, db := range s.Databases() {
		fmt.Fprintf(tw, "  %s\t%s\t(PostgreSQL: %s's database and role; the URL is in its instances' DATABASE_URL)\n", db.Name, db.Addr, db.Database)
	}
	fmt.Fprintf(tw, "  logs\t%s/logs/\n", strings.TrimSuffix(runDir, "/"))
	tw.Flush()
	fmt.Fprintf(w, `
  place an order (as the demo user):

    TOKEN=$(curl -s -XPOST %[1]s/api/login -d '{"email":"%[2]s","password":"%[3]s"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
    curl -si -XPOST %[1]s/api/orders -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $(date +%%s%%N)" \
      -d '{"items":[{"sku":"GH-MUG-01","quantity":1}],"card_number":"4242424242424242"}'

  then: glasshouse trace <X-Trace-Id>   glasshouse load   glasshouse status   Ctrl-C or glasshouse down to stop
`, s.GatewayURL, demoEmail, demoPassword)
}

func createDemoUser(ctx context.Context, gateway string) error {
	body := fmt.Sprintf(`{"email":%q,"password":%q,"name":"Demo"}`, demoEmail, demoPassword)
	req, err := http.NewRequestWithContext(ctx, "POST", gateway+"/api/users", strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("POST /api/users: %s", resp.Status)
	}
	return nil
}

func cmdDown(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	fs.SetOutput(stdout)
	runDir := fs.String("run-dir", "run", "directory of the running stack")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := stack.ReadState(*runDir)
	if err != nil {
		return err
	}
	if !processAlive(st.UpPID) {
		_ = os.Remove(stack.StatePath(*runDir))
		return fmt.Errorf("the stack's `glasshouse up` (pid %d) is not running any more; its children died with it", st.UpPID)
	}
	if err := syscall.Kill(st.UpPID, syscall.SIGTERM); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "glasshouse down: asked glasshouse up (pid %d) to stop", st.UpPID)
	deadline := time.Now().Add(90 * time.Second)
	for processAlive(st.UpPID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("glasshouse up (pid %d) still running after 90s", st.UpPID)
		}
		fmt.Fprint(stdout, ".")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	fmt.Fprintln(stdout, " stopped")
	return nil
}

func cmdKill(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kill", flag.ContinueOnError)
	fs.SetOutput(stdout)
	runDir := fs.String("run-dir", "run", "directory of the running stack")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: glasshouse kill SERVICE[/N] | TOOL   e.g. glasshouse kill inventory/2, glasshouse kill orders-db")
	}
	st, err := stack.ReadState(*runDir)
	if err != nil {
		return err
	}
	name := fs.Arg(0)
	if !slices.ContainsFunc(st.Procs, func(p *stack.Proc) bool { return p.Name == name }) && !strings.Contains(name, "/") {
		name += "/1" // a service's first replica
	}
	var names []string
	for _, p := range st.Procs {
		names = append(names, p.Name)
		if p.Name == name {
			if err := syscall.Kill(-p.PID, syscall.SIGKILL); err != nil {
				return fmt.Errorf("kill %s (pid %d): %w", name, p.PID, err)
			}
			fmt.Fprintf(stdout, "killed %s (pid %d) with SIGKILL\n", name, p.PID)
			return nil
		}
	}
	return fmt.Errorf("no process %q; the stack has %s", name, strings.Join(names, ", "))
}

func cmdStatus(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stdout)
	runDir := fs.String("run-dir", "run", "directory of the running stack")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := stack.ReadState(*runDir)
	if err != nil {
		return err
	}
	client, err := consul.NewClient(&consul.Config{Address: strings.TrimPrefix(st.ConsulURL, "http://")})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCE\tADDRESS\tADMIN\tHEALTH\tBREAKERS (remote instance: state)")
	// Each service, and after it the gRPC registration of one that
	// serves gRPC ("inventory-grpc"), checked by Consul over gRPC.
	var names []string
	for _, spec := range services.All() {
		names = append(names, spec.Name)
		if spec.GRPC {
			names = append(names, spec.GRPCName())
		}
	}
	for _, svc := range names {
		entries, _, err := client.Health().Service(svc, "", false, (&consul.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("Consul at %s: %w", st.ConsulURL, err)
		}
		if len(entries) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tnot registered\t\n", svc)
		}
		for _, e := range entries {
			addr := fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port)
			// Breaker states are metrics, served on the admin listener
			// that the registration names.
			admin, states := transport.AdminAddr(e.Service), "(no admin address in Consul)"
			if id := e.Service.Meta[transport.HTTPInstanceMeta]; id != "" {
				states = "(the gRPC listener of " + id + ")"
			}
			if admin != "" {
				states = breakers(ctx, admin)
			} else {
				admin = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", svc, e.Service.ID, addr, admin, e.Checks.AggregatedStatus(), states)
		}
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	for _, p := range st.Procs {
		if p.Service == "" { // a tool or a database
			state := "running"
			if !processAlive(p.PID) {
				state = "NOT RUNNING"
			}
			addr := p.Addr
			if p.AdminAddr != "" { // NATS: clients, then monitoring
				addr += " (monitoring " + p.AdminAddr + ")"
			}
			fmt.Fprintf(stdout, "%-13s %s  %s\n", p.Name, addr, state)
		}
	}
	return nil
}

var (
	breakerLine = regexp.MustCompile(`^glasshouse_client_breaker_state\{([^}]*)\} (\S+)`)
	labelPair   = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

// breakerStates names the values of glasshouse_client_breaker_state.
var breakerStates = map[float64]string{0: "closed", 1: "half-open", 2: "open"}

// breakers reads an instance's breaker states from the metrics on its
// admin listener at addr: per remote instance the worst of its endpoints'
// breakers, naming the endpoints whose breaker is not closed.
func breakers(ctx context.Context, addr string) string {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return "(metrics unreachable)"
	}
	defer resp.Body.Close()
	worst := map[string]float64{}    // remote@instance -> worst state
	tripped := map[string][]string{} // remote@instance -> "endpoint state"
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := breakerLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		labels := map[string]string{}
		for _, kv := range labelPair.FindAllStringSubmatch(m[1], -1) {
			labels[kv[1]] = kv[2]
		}
		key := labels["remote"] + "@" + labels["remote_instance"]
		if w, seen := worst[key]; !seen || v > w {
			worst[key] = v
		}
		if v != 0 && labels["endpoint"] != "" {
			tripped[key] = append(tripped[key], labels["endpoint"]+" "+breakerStates[v])
		}
	}
	if len(worst) == 0 {
		return "-"
	}
	var out []string
	for _, key := range slices.Sorted(maps.Keys(worst)) {
		line := key + ": " + breakerStates[worst[key]]
		if t := tripped[key]; len(t) > 0 {
			sort.Strings(t)
			line += " (" + strings.Join(t, ", ") + ")"
		}
		out = append(out, line)
	}
	return strings.Join(out, ", ")
}

func processAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}
