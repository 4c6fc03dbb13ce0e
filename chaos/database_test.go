package chaos

import (
	"net/http"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
	"github.com/glasshouse-dev/glasshouse/services/orders"
)

func TestKillOrdersDatabaseVerdicts(t *testing.T) {
	// The database dies at 8s and answers again at 18.3s: checkouts and
	// order views fail in the seconds between, with a fast 503.
	build := func(code string, status int, latency time.Duration) *Run {
		rep := shop(30).fail(8, 19, loadgen.Checkout, 8, code).fail(8, 19, loadgen.Orders, 4, code).report()
		run := newRun(rep, 8*sec, 18*sec)
		run.tapRequests(loadgen.Browse, 0, 30*sec, 24, http.StatusOK, 20*time.Millisecond)
		run.tapRequests(loadgen.Checkout, 8*sec, 18*sec, 8, status, latency)
		run.tapRequests(loadgen.Orders, 8*sec, 18*sec, 4, status, latency)
		return run
	}
	t.Run("healthy", func(t *testing.T) {
		expectFailures(t, judgeKillOrdersDatabase(build("unavailable", http.StatusServiceUnavailable, 4*time.Millisecond)))
	})
	t.Run("no fail-fast: each request waits for a connection to the dead server", func(t *testing.T) {
		expectFailures(t, judgeKillOrdersDatabase(build("timeout", http.StatusGatewayTimeout, 3*time.Second)),
			"fail fast", "503 unavailable", "waits more than")
	})
	t.Run("a lost database is a 500", func(t *testing.T) {
		expectFailures(t, judgeKillOrdersDatabase(build("internal", http.StatusInternalServerError, 4*time.Millisecond)), "503 unavailable")
	})
	t.Run("browsing needs orders' database", func(t *testing.T) {
		run := build("unavailable", http.StatusServiceUnavailable, 4*time.Millisecond)
		run.Streams[0].Report = shop(30).fail(8, 19, loadgen.Checkout, 8, "unavailable").fail(10, 12, loadgen.Browse, 5, "unavailable").report()
		expectFailures(t, judgeKillOrdersDatabase(run), "browsing and logins do not fail")
	})
	t.Run("orders never reconnects", func(t *testing.T) {
		run := build("unavailable", http.StatusServiceUnavailable, 4*time.Millisecond)
		run.Streams[0].Report = shop(30).fail(8, 30, loadgen.Checkout, 8, "unavailable").report()
		expectFailures(t, judgeKillOrdersDatabase(run), "succeed again")
	})
	t.Run("sagas the crash interrupted are never finished", func(t *testing.T) {
		run := build("unavailable", http.StatusServiceUnavailable, 4*time.Millisecond)
		run.Invariants.Orders[orders.Pending] = 3
		run.Invariants.Broken = []Violation{{Unfinished, "3 orders PENDING"}}
		expectFailures(t, judgeKillOrdersDatabase(run), "every order reaches an end")
	})
}
