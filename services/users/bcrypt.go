package users

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

// DefaultBcryptCost is used when Options.BcryptCost is zero: tens of
// milliseconds a hash on a server core, slow enough to make guessing
// stolen hashes expensive.
const DefaultBcryptCost = bcrypt.DefaultCost

// Options tune the service's bcrypt work (NewBcrypt). The zero value is
// usable.
type Options struct {
	// BcryptCost is the work factor of new password hashes, between
	// bcrypt.MinCost and bcrypt.MaxCost; each step doubles the time.
	// Tests use bcrypt.MinCost to stay fast.
	BcryptCost int
	// BcryptConcurrency is how many bcrypt hashes and comparisons may run
	// at once (default DefaultBcryptConcurrency: two per core).
	BcryptConcurrency int
	// BcryptWait is how long a login or sign-up waits for a bcrypt slot
	// before answering auth_busy (default DefaultBcryptWait).
	BcryptWait time.Duration
	// Registerer receives the bcrypt gate's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Bcrypt is the service's bcrypt work, its settings checked once: the
// work factor of new hashes, the dummy hash a login for an unknown email
// is compared with, and the slots that bound the hashes and comparisons
// in flight.
type Bcrypt struct {
	cost      int
	dummyHash []byte
	gate      *bcryptGate
}

// NewBcrypt fills in opts' defaults and registers the gate's metrics on
// opts.Registerer. It fails for a cost out of range, or a negative
// concurrency or wait.
func NewBcrypt(opts Options) (*Bcrypt, error) {
	if opts.BcryptCost == 0 {
		opts.BcryptCost = DefaultBcryptCost
	}
	if opts.BcryptCost < bcrypt.MinCost || opts.BcryptCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("bcrypt cost %d is outside [%d, %d]", opts.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if opts.BcryptConcurrency == 0 {
		opts.BcryptConcurrency = DefaultBcryptConcurrency()
	}
	if opts.BcryptConcurrency < 0 {
		return nil, fmt.Errorf("bcrypt concurrency %d must be positive", opts.BcryptConcurrency)
	}
	if opts.BcryptWait == 0 {
		opts.BcryptWait = DefaultBcryptWait
	}
	if opts.BcryptWait < 0 {
		return nil, fmt.Errorf("bcrypt wait %s must not be negative", opts.BcryptWait)
	}
	// Hashed at the configured cost, not a constant from the source, so
	// its comparison takes as long as a real one.
	dummy, err := bcrypt.GenerateFromPassword([]byte("no account has this password"), opts.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("hash the dummy password: %w", err)
	}
	return &Bcrypt{cost: opts.BcryptCost, dummyHash: dummy, gate: newBcryptGate(opts.BcryptConcurrency, opts.BcryptWait, opts.Registerer)}, nil
}

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
		rejected: observability.NewCounterVec(reg, "glasshouse_users_bcrypt_rejected_total",
			"Logins and registrations refused with auth_busy because every bcrypt slot stayed taken, by operation.", "op"),
		inUse: observability.NewGauge(reg, "glasshouse_users_bcrypt_in_use",
			"bcrypt hashes and comparisons running now (at most glasshouse_users_bcrypt_slots)."),
	}
	capacity := observability.NewGauge(reg, "glasshouse_users_bcrypt_slots",
		"bcrypt hashes and comparisons allowed at once (-bcrypt-concurrency).")
	capacity.Set(float64(slots))
	observability.StartAtZero(g.rejected, "login", "register")
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
