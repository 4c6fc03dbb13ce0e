package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/deploy/grafana/dashboards"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/stack"
)

// Grafana cannot run here, so this test does what it would: with the
// platform under load, it runs every query of every panel of every
// provisioned dashboard against the live Prometheus, each variable set to
// each of its values, and fails on any query Prometheus rejects or that
// returns no series, that is, on any panel that would say "No data". It
// does the same for every recording and alerting rule Prometheus loaded.
// The one expected "No data" is the database row of a service without a
// database (the gateway): there its queries must return nothing.
//
// Steady load alone leaves the Checkout and Resilience panels empty (no
// declines, no breaker ever trips), so the test also declines a card and
// makes payments fail, as a demo would.
func TestDashboardsShowLiveData(t *testing.T) {
	s := startStack(t, map[string][]string{
		// The recovery loop runs every second rather than every 10s, so
		// the recovery panel has something to show within the test.
		"orders": {"RECOVERY_INTERVAL=1s"},
	})
	boards := readDashboards(t)

	ctx, stopLoad := context.WithCancel(context.Background())
	loaded := make(chan error, 1)
	go func() {
		// Longer than the test needs: it runs until the checks are done.
		rep, err := loadgen.Run(ctx, loadgen.Config{Target: s.GatewayURL, Rate: 20, Duration: 5 * time.Minute, Users: 3})
		if err == nil && rep.Total.OK == 0 {
			err = fmt.Errorf("no request of %d succeeded: %v", rep.Total.Requests, rep.Total.Errors)
		}
		loaded <- err
	}()
	defer func() {
		stopLoad()
		if err := <-loaded; err != nil {
			t.Errorf("load: %v", err)
		}
	}()

	makeCheckoutEvents(t, s)

	// Prometheus finds the instances in Consul within 30 s, the rate()
	// windows fill within a minute, and the SLO rules run every 30 s. Poll
	// until every query has data, but fail at once on a query Prometheus
	// rejects: waiting cannot fix that.
	deadline := time.Now().Add(90 * time.Second)
	for pass := 1; ; pass++ {
		checks := dashboardChecks(t, s.PrometheusURL, boards)
		checks = append(checks, ruleChecks(t, s.PrometheusURL)...)
		var failed []string
		rejected := false
		for _, c := range checks {
			res, err := promQuery(s.PrometheusURL, c.query)
			switch {
			case err != nil:
				failed = append(failed, fmt.Sprintf("%s: Prometheus rejects %s: %v", c.where, c.query, err))
				rejected = true
			case c.problem != "":
				failed = append(failed, c.where+": "+c.problem)
			case c.none && len(res) > 0:
				failed = append(failed, fmt.Sprintf("%s: %d series for %s, from a service with no database", c.where, len(res), c.query))
				rejected = true // more scrapes will not take them away
			case !c.none && len(res) == 0:
				failed = append(failed, fmt.Sprintf("%s: no series for %s", c.where, c.query))
			}
		}
		if len(failed) == 0 {
			none := 0
			for _, c := range checks {
				if c.none {
					none++
				}
			}
			t.Logf("all %d queries of %d dashboards and every rule returned series, but the %d database queries of stateless services, which returned none (pass %d)",
				len(checks)-none, len(boards), none, pass)
			break
		}
		if rejected || time.Now().After(deadline) {
			for _, f := range failed {
				t.Error(f)
			}
			return
		}
		t.Logf("pass %d: %d of %d queries without data yet, such as %s", pass, len(failed), len(checks), failed[0])
		time.Sleep(2 * time.Second) // the next scrape or rule evaluation
	}

	// The instance alert compares against desired counts written in
	// resilience.rules.yml; they must be what the stack runs, or the alert
	// fires on a healthy platform (or stays quiet on a degraded one).
	desired, err := promQuery(s.PrometheusURL, `job:glasshouse_instances:desired`)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range desired {
		if want, _ := services.Lookup(d.Metric["job"]); fmt.Sprint(d.Value[1]) != strconv.Itoa(want.Replicas) {
			t.Errorf("resilience.rules.yml desires %v %s instances, the stack runs %d", d.Value[1], d.Metric["job"], want.Replicas)
		}
	}
	if len(desired) != len(services.All()) {
		t.Errorf("desired instance counts for %d services, the stack runs %d", len(desired), len(services.All()))
	}
}

// makeCheckoutEvents declines a card, trips a breaker and fails checkouts
// outright, so the Checkout and Resilience panels about them have series.
func makeCheckoutEvents(t *testing.T, s *stack.Stack) {
	t.Helper()
	sh := &shop{t: t, gateway: &testenv.Service{URL: s.GatewayURL}}
	token := sh.signUp("dashboards@example.com")
	note := orders.Item{SKU: "GH-NOTE-01", Quantity: 1}

	// A declined card: a FAILED checkout, a released reservation.
	if r := sh.order(token, "declined", declineCard, note); r.status != http.StatusPaymentRequired {
		t.Fatalf("checkout with the declining card: %d %s", r.status, r.body)
	}

	// One payments instance failing every charge: orders retries each on
	// the other (customers see nothing) until that instance's breaker
	// opens after five failures in a row.
	pay := s.Instances("payments")
	if len(pay) < 2 {
		t.Fatalf("%d payments instances; the test needs two", len(pay))
	}
	setFaults(t, &testenv.Service{AdminURL: "http://" + pay[0].AdminAddr}, `{"error_rate":1,"latency":"0s"}`)
	ordersMetrics := "http://" + s.Instances("orders")[0].AdminAddr + "/metrics"
	testenv.Eventually(t, 30*time.Second, "orders opens its breaker on the failing payments instance", func() error {
		if r := sh.order(token, fmt.Sprintf("retried-%d", time.Now().UnixNano()), approveCard, note); r.status != http.StatusCreated {
			t.Fatalf("checkout with one failing payments instance: %d %s (the retry should hide it)", r.status, r.body)
		}
		return hasSeries(ordersMetrics, "glasshouse_client_breaker_transitions_total", `remote="payments"`, `to="open"`)
	})

	// Both failing: checkouts fail with 503, their stock is released, and
	// since payments could not say whether a charge was made, the failed
	// order is left for the recovery loop to settle.
	setFaults(t, &testenv.Service{AdminURL: "http://" + pay[1].AdminAddr}, `{"error_rate":1,"latency":"0s"}`)
	for i := range 2 {
		if r := sh.order(token, fmt.Sprintf("failed-%d", i), approveCard, note); r.status != http.StatusServiceUnavailable {
			t.Fatalf("checkout with every payments instance failing: %d %s, want 503", r.status, r.body)
		}
	}
	for _, p := range pay {
		setFaults(t, &testenv.Service{AdminURL: "http://" + p.AdminAddr}, `{"error_rate":0,"latency":"0s"}`)
	}
}

// hasSeries reports whether the metrics page at url has a series of
// metric with every one of labels.
func hasSeries(url, metric string, labels ...string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		if !slices.ContainsFunc(labels, func(l string) bool { return !strings.Contains(line, l) }) {
			return nil
		}
	}
	return fmt.Errorf("no %s%v at %s yet", metric, labels, url)
}

// A queryCheck is one query and where it comes from, for the failure
// message; a problem found before querying (a variable without values, a
// rule that failed to evaluate) fails the check by itself. A check marked
// none must return no series at all.
type queryCheck struct {
	where, query, problem string
	none                  bool
}

// storeMetric matches the series of a service's database (storage's
// Collectors): a service with a store must show them, a stateless one
// (services.Spec.Store is "") must not, or the panels select the wrong
// service.
var storeMetric = regexp.MustCompile(`\b(?:go_sql|glasshouse_db)_\w+`)

// hasStore reports whether the service called job keeps a database.
func hasStore(job string) bool {
	spec, ok := services.Lookup(job)
	return ok && spec.Store != ""
}

// provisioned is a dashboard as Grafana reads it, and its file.
type provisioned struct {
	file string
	dashboards.Dashboard
}

// readDashboards reads the JSON Grafana provisions, not the Go it is
// generated from: this is what Grafana would run.
func readDashboards(t *testing.T) []provisioned {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "deploy", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in deploy/grafana/dashboards (%v)", err)
	}
	var out []provisioned
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboards.Dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, provisioned{filepath.Base(f), d})
	}
	return out
}

// grafanaBuiltins are the values given to Grafana's own variables.
// $__rate_interval is at least four scrape intervals (timeInterval: 5s in
// the data source); 1m, the recording rules' window, is what a dashboard
// of the last 30 minutes gets.
var grafanaBuiltins = map[string]string{"__rate_interval": "1m"}

var grafanaVariable = regexp.MustCompile(`\$\{?(\w+)\}?`)

// substitute replaces $name and ${name} with their values.
func substitute(expr string, values map[string]string) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(ref string) string {
		name := grafanaVariable.FindStringSubmatch(ref)[1]
		if v, ok := values[name]; ok {
			return v
		}
		if v, ok := grafanaBuiltins[name]; ok {
			return v
		}
		return ref // left for Prometheus to reject, naming it
	})
}

var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// dashboardChecks lists every panel query of every dashboard, once per
// combination of its variables' values, as Grafana would run them when a
// user picks each value in turn.
func dashboardChecks(t *testing.T, prometheus string, boards []provisioned) []queryCheck {
	t.Helper()
	var checks []queryCheck
	for _, b := range boards {
		combos := []map[string]string{{}}
		for _, v := range b.Templating.List {
			m := labelValuesQuery.FindStringSubmatch(v.Query)
			if m == nil {
				t.Fatalf("%s: variable %s: cannot resolve %q, only label_values(selector, label)", b.file, v.Name, v.Query)
			}
			var next []map[string]string
			for _, combo := range combos {
				// What Grafana asks for label_values: the label's values
				// among the selector's series.
				query := fmt.Sprintf("group by (%s) (%s)", m[2], substitute(m[1], combo))
				res, err := promQuery(prometheus, query)
				if err != nil || len(res) == 0 {
					checks = append(checks, queryCheck{
						where: fmt.Sprintf("%s %q, variable %s%s", b.file, b.Title, v.Name, describeValues(combo)), query: query,
						problem: fmt.Sprintf("no values from %s (%v)", query, err),
					})
					continue
				}
				for _, r := range res {
					c := map[string]string{v.Name: r.Metric[m[2]]}
					for k, v := range combo {
						c[k] = v
					}
					next = append(next, c)
				}
			}
			combos = next
		}
		for _, combo := range combos {
			for _, p := range b.Panels {
				for _, target := range p.Targets {
					_, chosen := combo["service"]
					checks = append(checks, queryCheck{
						where: fmt.Sprintf("%s %q, panel %q%s, query %s", b.file, b.Title, p.Title, describeValues(combo), target.RefID),
						query: substitute(target.Expr, combo),
						none:  chosen && storeMetric.MatchString(target.Expr) && !hasStore(combo["service"]),
					})
				}
			}
		}
	}
	return checks
}

func describeValues(values map[string]string) string {
	if len(values) == 0 {
		return ""
	}
	var kv []string
	for k, v := range values {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return " (" + strings.Join(kv, ", ") + ")"
}

// ruleChecks lists a query per rule Prometheus has loaded, after checking
// that it loaded every rule file in deploy/prometheus and that no rule
// fails to evaluate.
//
// A recording rule is checked by its output: the recorded series exist.
// An alerting rule's expression is a query filtered by comparisons (ratio
// > 0.05): it returns nothing while all is well, which says nothing about
// whether the series it watches exist. So each comparison gets the bool
// modifier (ratio > bool 0.05), which keeps every series, valued 0 or 1:
// the rewritten query returns series exactly when the alert has inputs to
// judge, firing or not.
func ruleChecks(t *testing.T, prometheus string) []queryCheck {
	t.Helper()
	resp, err := http.Get(prometheus + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Groups []ruleGroup `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}

	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "deploy", "prometheus", "*.rules.yml"))
	for _, f := range files {
		if !slices.ContainsFunc(body.Data.Groups, func(g ruleGroup) bool { return filepath.Base(g.File) == filepath.Base(f) }) {
			t.Fatalf("Prometheus has not loaded %s: is it in prometheus.yml's rule_files?", filepath.Base(f))
		}
	}

	var checks []queryCheck
	for _, g := range body.Data.Groups {
		for _, r := range g.Rules {
			c := queryCheck{where: fmt.Sprintf("%s, group %s, %s rule %s", filepath.Base(g.File), g.Name, r.Type, r.Name)}
			switch r.Type {
			case "recording":
				matchers := []string{fmt.Sprintf("__name__=%q", r.Name)}
				for k, v := range r.Labels {
					matchers = append(matchers, fmt.Sprintf("%s=%q", k, v))
				}
				slices.Sort(matchers)
				c.query = "{" + strings.Join(matchers, ", ") + "}"
			default:
				c.query = withBool(r.Query)
			}
			switch r.Health {
			case "err":
				c.problem = "evaluation fails: " + r.LastError
			case "unknown":
				c.problem = "not evaluated yet"
			}
			checks = append(checks, c)
		}
	}
	return checks
}

// ruleGroup is a rule group as Prometheus' /api/v1/rules reports it.
type ruleGroup struct {
	Name  string `json:"name"`
	File  string `json:"file"`
	Rules []struct {
		Type      string            `json:"type"` // recording or alerting
		Name      string            `json:"name"`
		Query     string            `json:"query"`
		Labels    map[string]string `json:"labels"`
		Health    string            `json:"health"` // ok, unknown (not run yet) or err
		LastError string            `json:"lastError"`
	} `json:"rules"`
}

// withBool adds the bool modifier to every comparison operator of a PromQL
// expression, outside label matchers and strings, so that the comparison
// keeps every series instead of filtering: a > 1 becomes a > bool 1.
func withBool(expr string) string {
	var out strings.Builder
	braces, quote := 0, rune(0)
	rs := []rune(expr)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		out.WriteRune(c)
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(rs) {
				i++
				out.WriteRune(rs[i])
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '{':
			braces++
		case c == '}':
			braces--
		case braces > 0:
			// a label matcher: =, !=, =~, !~ are not comparisons
		case c == '>' || c == '<' || c == '=' || c == '!':
			op := string(c)
			if i+1 < len(rs) && rs[i+1] == '=' {
				i++
				out.WriteRune('=')
				op += "="
			}
			if op == "=" || op == "!" {
				continue
			}
			if rest := strings.TrimLeft(string(rs[i+1:]), " "); !strings.HasPrefix(rest, "bool ") {
				out.WriteString(" bool")
			}
		}
	}
	return out.String()
}

func TestWithBool(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`job:x:ratio_rate5m > 0.05`, `job:x:ratio_rate5m > bool 0.05`},
		{`a >= 1`, `a >= bool 1`},
		{`a <= 1 and b == 2 and c != 3 and d < 4`, `a <= bool 1 and b == bool 2 and c != bool 3 and d < bool 4`},
		{`a{outcome!="error", le="0.5", path=~"x>y"} > 0`, `a{outcome!="error", le="0.5", path=~"x>y"} > bool 0`},
		{`a > on (slo) (14.4 * b) and c > on (slo) (6 * b)`, `a > bool on (slo) (14.4 * b) and c > bool on (slo) (6 * b)`},
		{`a < on (job) b`, `a < bool on (job) b`},
		{`a > bool 1`, `a > bool 1`},
		{`label_replace(a, "x", "$1", "y", "(.*)>") > 0`, `label_replace(a, "x", "$1", "y", "(.*)>") > bool 0`},
		{`sum(rate(a[5m]))`, `sum(rate(a[5m]))`},
	} {
		if got := withBool(c.in); got != c.want {
			t.Errorf("withBool(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}
