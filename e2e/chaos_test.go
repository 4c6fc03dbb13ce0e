package e2e

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/chaos"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/stack"
)

// The chaos suite as `glasshouse chaos` runs it: a stack of its own, every
// experiment, a report. GLASSHOUSE_CHAOS_RUN (a regexp of experiment
// names) runs fewer, here and in the mechanism-off test below;
// GLASSHOUSE_CHAOS_REPORT keeps the report in that
// directory instead of a temporary one.
func TestChaosSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos suite runs the whole platform for minutes")
	}
	chaosSuite(t, stack.StoreSQLite, chaos.All(stack.StoreSQLite))
}

// The experiments whose promises rest on the store, on a stack whose
// services keep their data in PostgreSQL clusters of their own (orders
// then runs two replicas): an inventory replica killed, payments down,
// orders killed mid-checkout (orders/2 carries on, and recovery on either
// replica finishes what orders/1 left), and orders' database killed.
// GLASSHOUSE_CHAOS_REPORT keeps this report in its postgres/ folder.
func TestChaosSuiteOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos suite runs the whole platform for minutes")
	}
	chaosSuite(t, stack.StorePostgres, chaos.Select(chaos.All(stack.StorePostgres), func(name string) bool {
		return slices.Contains([]string{"kill-inventory-replica", "payments-down", "kill-orders-mid-checkout", "kill-orders-database"}, name)
	}))
}

// chaosSuite runs exps, those GLASSHOUSE_CHAOS_RUN selects, on a stack of
// their own on store, writes their report and fails the test for every
// experiment that failed.
func chaosSuite(t *testing.T, store stack.Store, exps []chaos.Experiment) {
	t.Helper()
	match := regexp.MustCompile(cmp.Or(os.Getenv("GLASSHOUSE_CHAOS_RUN"), "."))
	exps = chaos.Select(exps, match.MatchString)
	if len(exps) == 0 {
		t.Skipf("GLASSHOUSE_CHAOS_RUN selects none of this suite's experiments")
	}
	suite := runChaosOn(t, store, nil, exps, 0)

	dir := t.TempDir()
	if d := os.Getenv("GLASSHOUSE_CHAOS_REPORT"); d != "" {
		dir = d
		if store != stack.StoreSQLite {
			dir = filepath.Join(d, string(store))
		}
	}
	if err := chaos.WriteReport(dir, suite); err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %s", filepath.Join(dir, chaos.ReportFile))
	if len(suite.Results) != len(exps) {
		t.Fatalf("%d of %d experiments ran", len(suite.Results), len(exps))
	}
	for _, res := range suite.Results {
		if res.Passed() {
			continue
		}
		failf(t, "%s failed:", res.Experiment.Name)
		if res.Err != nil {
			failf(t, "  could not be carried out: %v", res.Err)
		}
		for _, c := range res.Checks {
			if !c.Pass {
				failf(t, "  %s: %s", c.Claim, c.Measured)
			}
		}
	}
}

// A verdict that cannot fail proves nothing. Here the suite's resilience
// mechanisms are switched off through the services' own settings, and the
// experiments that exercise them must fail, on the claims those mechanisms
// answer for. They share as few stacks as they can: each setting touches
// one mechanism, and each claim listed below answers for one of them only,
// so sharing a stack blurs nothing. payments-down and
// kill-inventory-replica share the second: the checkouts they interrupt
// need orders' recovery, which kill-orders-mid-checkout's stack has
// switched off.
//
//   - FAULT_INJECTION=false: services ignore the faults requests ask for
//     in their baggage, so request-faults' faulted checkouts succeed, fast,
//     and no trace shows an injected fault.
//   - The gateway's VALIDATE_IDENTIFIERS=false: hostile identifiers are
//     sent on to the services (which refuse them in turn), so the
//     hostile-client's traces show them reaching backends.
//   - The gateway's INVENTORY_CLIENT_BREAKER_HONEST=false and
//     ORDERS_CLIENT_BREAKER_HONEST=false: the gateway's breakers count
//     not-found answers as failures, so the hostile client's unknown SKUs
//     and order IDs open them.
//   - INVENTORY_CLIENT_ATTEMPTS=1 on the gateway and orders: a call sent
//     to the killed inventory replica is not retried on the live one, so
//     kill-inventory-replica's browses and checkouts fail. inventory's
//     CHECK_INTERVAL=30s keeps the dead replica in their lists for
//     seconds, as a slower health check would. Consul's next check of
//     the dead replica falls anywhere in the interval after the kill
//     (each check has its own phase: the HTTP registration's decides for
//     the gateway, the gRPC one's for orders), and the replica is dead
//     for 10s of it. With 10s, a run dropped it from orders 0.1s after
//     the kill, before any checkout had chosen it, and proved nothing
//     about the retries. At about 4 one-attempt checkout calls a second
//     choosing the dead replica (12 browses), a run in which none does
//     is now about one in 120 (one in 360 for browses); with 10s it was
//     one in 40.
//   - orders' PAYMENTS_CLIENT_BREAKER_FAILURES=1000000000: orders' breakers
//     on payments never open, so slow-payments' slow instance keeps being
//     waited for.
//   - orders' PAYMENTS_CLIENT_ATTEMPTS=1000000 with those breakers: a call
//     to a dead payments is tried again and again until its deadline, so
//     payments-down's checkouts fail slowly instead of fast.
//   - orders' SAGA_STALE_AFTER=1h: orders' recovery leaves interrupted
//     checkouts alone for an hour, so kill-orders-mid-checkout's
//     interrupted orders stay PENDING with their stock reserved.
//
// (Each experiment's other mechanisms are shown failing their verdicts
// with synthetic measurements in package chaos's tests.)
func TestChaosVerdictsFailWhenTheirMechanismIsBroken(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole platform for minutes")
	}
	stacks := []struct {
		broken map[string][]string
		exps   []chaos.Experiment
	}{{
		broken: map[string][]string{
			"*": {"FAULT_INJECTION=false"},
			"gateway": {
				"VALIDATE_IDENTIFIERS=false",
				"INVENTORY_CLIENT_BREAKER_HONEST=false", "ORDERS_CLIENT_BREAKER_HONEST=false",
				"RECOMMENDATIONS_FALLBACK=false",
			},
			"orders": {"SAGA_STALE_AFTER=1h", "PAYMENTS_CLIENT_BREAKER_FAILURES=1000000000", "EVENTS_FIRE_AND_FORGET=true"},
		},
		// kill-orders-mid-checkout last: the orders it leaves PENDING
		// would keep the stack from being healthy for anything after it.
		exps: []chaos.Experiment{
			chaos.RequestFaults(), chaos.HostileClient(), chaos.SlowPayments(), chaos.NATSDown(), chaos.KillRecommendations(),
			chaos.KillOrdersMidCheckout(),
		},
	}, {
		// kill-inventory-replica here, where orders' recovery is on: a
		// checkout whose one-attempt release reached the dead replica is
		// left PENDING, and only recovery ends it before the next
		// experiment may start.
		broken: map[string][]string{
			"gateway":   {"INVENTORY_CLIENT_ATTEMPTS=1"},
			"inventory": {"CHECK_INTERVAL=30s"},
			"orders":    {"INVENTORY_CLIENT_ATTEMPTS=1", "PAYMENTS_CLIENT_ATTEMPTS=1000000", "PAYMENTS_CLIENT_BREAKER_FAILURES=1000000000"},
		},
		exps: []chaos.Experiment{chaos.KillInventoryReplica(), chaos.PaymentsDown()},
	}}
	match := regexp.MustCompile(cmp.Or(os.Getenv("GLASSHOUSE_CHAOS_RUN"), ".")).MatchString
	for _, st := range stacks {
		if exps := chaos.Select(st.exps, match); len(exps) > 0 {
			// Broken promises will not heal: no need to wait the full
			// minute to see it.
			checkBroken(t, runChaos(t, st.broken, exps, 20*time.Second), len(exps))
		}
	}
}

// checkBroken checks that every experiment of a mechanism-off suite ran
// and failed, on the claims its switched-off mechanism answers for.
func checkBroken(t *testing.T, suite *chaos.Suite, ran int) {
	t.Helper()
	want := map[string][]string{
		"request-faults": {
			"every checkout asking for fault.payments=error fails",
			"charge delay succeeds and takes",
			"fault.payments=error shows fault.injected",
			"charge delay shows fault.injected",
		},
		"hostile-client": {
			"no hostile input that must stop at the gateway reaches a backend",
			"no circuit breaker changes state",
		},
		"kill-inventory-replica": {
			"no browse fails",
			"no checkout fails",
		},
		"slow-payments": {
			"orders opens its breaker on payments/2",
			"only its half-open probes wait for a timeout",
		},
		"payments-down": {
			"checkouts fail fast while payments is down",
		},
		"kill-orders-mid-checkout": {
			"every order reaches an end",
			"stock is conserved",
		},
		// Events published outside the outbox are lost while NATS is down.
		"nats-down": {
			"wait in the outbox",
			"every confirmed order reaches recommendations",
		},
		// Without the fallback, recommendations' death is the customers'.
		"kill-recommendations": {
			"no product, recommendation or checkout request fails",
			"the gateway answers fallbacks",
		},
	}
	if len(suite.Results) != ran {
		failf(t, "%d of %d experiments ran", len(suite.Results), ran)
	}
	for _, res := range suite.Results {
		if res.Passed() {
			failf(t, "%s passed with its mechanism broken", res.Experiment.Name)
		}
		if res.Err != nil {
			failf(t, "%s could not be carried out, so it proves nothing: %v", res.Experiment.Name, res.Err)
		}
		for _, claim := range want[res.Experiment.Name] {
			found := false
			for _, c := range res.Checks {
				if strings.Contains(c.Claim, claim) {
					found = true
					if c.Pass {
						failf(t, "%s: %q held with its mechanism broken: %s", res.Experiment.Name, c.Claim, c.Measured)
					} else {
						t.Logf("%s: FAIL as it should: %s: %s", res.Experiment.Name, c.Claim, c.Measured)
					}
				}
			}
			if !found {
				failf(t, "%s: no check claims %q", res.Experiment.Name, claim)
			}
		}
	}
}

// runChaos runs experiments on a stack of their own, with extra service
// settings, as `glasshouse chaos` does.
func runChaos(t *testing.T, extra map[string][]string, exps []chaos.Experiment, quietWithin time.Duration) *chaos.Suite {
	t.Helper()
	return runChaosOn(t, stack.StoreSQLite, extra, exps, quietWithin)
}

// runChaosOn is runChaos on a stack whose data is in store.
func runChaosOn(t *testing.T, store stack.Store, extra map[string][]string, exps []chaos.Experiment, quietWithin time.Duration) *chaos.Suite {
	t.Helper()
	root := testenv.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	suite, err := chaos.RunSuite(ctx, chaos.SuiteConfig{
		Stack: stack.Config{
			Root:     root,
			RunDir:   runDir(t),
			BinDir:   t.TempDir(),
			ToolsDir: filepath.Join(root, "bin", "tools"),
			Store:    store,
		},
		Extra:       extra,
		Experiments: exps,
		QuietWithin: quietWithin,
		Progress:    testWriter{t},
	})
	if err != nil {
		// A stack that would not stop cleanly fails the test, but the
		// experiments it ran still have their verdicts to check.
		failf(t, "%v", err)
		if suite == nil {
			t.FailNow()
		}
	}
	return suite
}
