package users

import (
	"context"
	"runtime"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// CodeAuthBusy is the answer to a login or sign-up that found every bcrypt
// slot taken for longer than BcryptWait.
const CodeAuthBusy = "auth_busy"

// DefaultBcryptWait is how long a login or sign-up waits for a bcrypt slot
// when Options.BcryptWait is zero: about one comparison at the default
// cost, so a short burst queues and a flood is refused at once.
const DefaultBcryptWait = 50 * time.Millisecond

// DefaultBcryptConcurrency is the number of bcrypt hashes and comparisons
// allowed at once when Options.BcryptConcurrency is zero: two per core
// (GOMAXPROCS). bcrypt is pure CPU, so more at once only makes each one
// slower: two per core keeps every core busy while one goroutine waits to
// be scheduled, and bounds the queue, so a flood of logins costs at most
// that much CPU and everyone else's requests (token checks, GetUser,
// health checks) still find a core.
func DefaultBcryptConcurrency() int { return 2 * runtime.GOMAXPROCS(0) }

// bcryptGate bounds the bcrypt work in flight: a slot per hash or
// comparison. One that cannot get a slot within its wait is refused with
// RateLimited auth_busy (429): the truth for the caller (this service is
// busy checking passwords, try again shortly) and a business answer, so
// the gateway neither retries it nor counts it against this instance's
// breaker. A 503 would be counted as this instance's fault and, once the
// breaker opened, lock out everyone, which is what the flood wanted.
type bcryptGate struct {
	slots    chan struct{}
	wait     time.Duration
	rejected *prometheus.CounterVec
	inUse    prometheus.Gauge
}

func newBcryptGate(slots int, wait time.Duration, reg prometheus.Registerer) *bcryptGate {
	g := &bcryptGate{
		slots: make(chan struct{}, slots),
		wait:  wait,
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glasshouse_users_bcrypt_rejected_total",
			Help: "Logins and registrations refused with auth_busy because every bcrypt slot stayed taken, by operation.",
		}, []string{"op"}),
		inUse: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glasshouse_users_bcrypt_in_use",
			Help: "bcrypt hashes and comparisons running now (at most glasshouse_users_bcrypt_slots).",
		}),
	}
	capacity := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "glasshouse_users_bcrypt_slots",
		Help: "bcrypt hashes and comparisons allowed at once (-bcrypt-concurrency).",
	})
	capacity.Set(float64(slots))
	// Both operations start at zero, so a dashboard shows 0, not "no data".
	g.rejected.WithLabelValues("login")
	g.rejected.WithLabelValues("register")
	if reg != nil {
		reg.MustRegister(g.rejected, g.inUse, capacity)
	}
	return g
}

// acquire takes a slot for op ("login" or "register"), waiting at most
// g.wait, and returns the function that gives it back.
func (g *bcryptGate) acquire(ctx context.Context, op string) (release func(), err error) {
	select {
	case g.slots <- struct{}{}:
	default:
		timer := time.NewTimer(g.wait)
		defer timer.Stop()
		select {
		case g.slots <- struct{}{}:
		case <-timer.C:
			g.rejected.WithLabelValues(op).Inc()
			return nil, errs.E(errs.RateLimited, CodeAuthBusy,
				"too many logins and sign-ups are being checked right now; try again in a second")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	g.inUse.Inc()
	return func() {
		g.inUse.Dec()
		<-g.slots
	}, nil
}
