package chaos

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/stack"
)

// 9. Kill orders' database (a stack on PostgreSQL only).

// Bounds of KillOrdersDatabase.
const (
	// While the database is gone, what needs it must fail as fast as a
	// refused connection: a query to a dead server is refused at once,
	// and orders answers 503 without waiting for anything.
	dbDownFailP99 = 500 * time.Millisecond
	// No request may wait longer than one attempt timeout: that would
	// be a call hanging on the dead database.
	dbDownSlowest = attemptTimeout
	// Once the server answers again, checkouts must succeed within this:
	// a Consul check for orders to be ready again, and the pool's first
	// new connections.
	dbRecoverWithin = 5 * checkInterval
	// dbDownFor is how long the database stays dead.
	dbDownFor = 10 * time.Second
)

// KillOrdersDatabase SIGKILLs the postmaster of orders' PostgreSQL
// cluster, and every backend with it (its process group: the host of
// the database dying), under steady load, and restarts it ten seconds
// later. The server comes back through crash recovery from its WAL.
func KillOrdersDatabase() Experiment {
	db := stack.DatabaseProc("orders")
	return Experiment{
		Name:  "kill-orders-database",
		Title: "Kill orders' PostgreSQL under load, then restart it",
		Hypothesis: fmt.Sprintf("With its database gone, orders refuses what needs it at once and nothing else notices: "+
			"every checkout and order view that fails is a 503 unavailable, their p99 is ≤ %s and no request waits more than %s; "+
			"browsing and logins, which do not need orders' database, do not fail. Once the database is back, checkouts succeed "+
			"again within %s, every order reaches an end, stock is conserved, no order is charged twice and every charge "+
			"belongs to a CONFIRMED order or was refunded.", ms(dbDownFailP99), ms(dbDownSlowest), dbRecoverWithin),
		Streams: mainStream(steadyLoad(30 * time.Second)),
		Steps: []Step{
			{At: 8 * time.Second, Mark: MarkFault, Action: Kill(db)},
			{At: 8*time.Second + dbDownFor, Mark: MarkRecover, Action: Restart(db)},
		},
		Probes: []Probe{
			Passing("orders"),
			PendingOrders(),
		},
		Judge: judgeKillOrdersDatabase,
	}
}

func judgeKillOrdersDatabase(run *Run) []Check {
	checks := []Check{scheduled(run)}
	main, fault := run.Main(), run.FaultWindow()
	tl := main.Report.Timeline
	needsDB := func(r Request) bool { return r.Op == loadgen.Checkout || r.Op == loadgen.Orders }

	var failed []Request
	not503, slowest, unanswered := 0, time.Duration(0), 0
	for _, r := range main.Requests {
		if r.Op == "" || !fault.Contains(r.At) {
			continue
		}
		slowest = max(slowest, r.Latency)
		if r.Status == 0 {
			unanswered++
		}
		if needsDB(r) && r.Failed() {
			failed = append(failed, r)
			if r.Status != http.StatusServiceUnavailable {
				not503++
			}
		}
	}
	p99, n := latencyPercentile(failed, 99)
	checks = append(checks, checkf(fmt.Sprintf("checkouts and order views fail fast while the database is down: p99 ≤ %s", ms(dbDownFailP99)),
		n > 0 && p99 <= dbDownFailP99, "p99 %s of %d failed checkouts and order views", ms(p99), n))
	codesDuring := map[string]int{}
	for _, op := range []loadgen.Op{loadgen.Checkout, loadgen.Orders} {
		for code, k := range Count(tl, op, fault).Codes {
			codesDuring[code] += k
		}
	}
	onlyUnavailable := n > 0 && not503 == 0
	for code := range codesDuring {
		onlyUnavailable = onlyUnavailable && (code == "unavailable" || slices.Contains(businessCodes, code))
	}
	checks = append(checks, checkf("every one that fails is a 503 unavailable", onlyUnavailable,
		"codes %s; %d answers other than 503", codes(codesDuring), not503))
	checks = append(checks, checkf(fmt.Sprintf("no request waits more than %s while the database is down", ms(dbDownSlowest)),
		slowest <= dbDownSlowest && unanswered == 0, "slowest %s; %d without an answer", ms(slowest), unanswered))

	checks = append(checks, noneFail("browsing and logins do not fail", tl, Window{0, run.end()}, loadgen.Browse, loadgen.Login))

	at, ok := RecoveredAt(tl, loadgen.Checkout, fault.To, 1)
	checks = append(checks, delayCheck(fmt.Sprintf("checkouts succeed again within %s of the database's return", dbRecoverWithin),
		at, ok, fault.To, dbRecoverWithin, "(to the second)"))
	return append(checks, invariantChecks(run)...)
}
