package gateway

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// RateLimiter gives each client (by remote IP) a token bucket: Rate
// requests per second on average, Burst at once. A client over its limit
// gets 429 with Retry-After saying when its next request will be allowed;
// other clients are unaffected.
type RateLimiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*client

	limited prometheus.Counter
}

type client struct {
	limiter  *rate.Limiter
	lastSeen time.Time
}

// idleAfter is how long an unseen client's bucket is kept; past it the
// bucket would be full again anyway, so forgetting it changes nothing.
const idleAfter = 3 * time.Minute

// NewRateLimiter allows each client perSecond requests per second with
// bursts of burst. perSecond <= 0 disables limiting.
func NewRateLimiter(perSecond float64, burst int, reg prometheus.Registerer) *RateLimiter {
	l := &RateLimiter{
		rate: rate.Limit(perSecond), burst: burst, now: time.Now, clients: map[string]*client{},
		limited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glasshouse_gateway_rate_limited_total",
			Help: "Requests refused with 429 because their client was over its rate limit.",
		}),
	}
	reg.MustRegister(l.limited)
	return l
}

// Middleware enforces the limit in front of next.
func (l *RateLimiter) Middleware(next http.Handler) http.Handler {
	if l.rate <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait, ok := l.allow(clientKey(r)); !ok {
			l.limited.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			transport.WriteError(r.Context(), errs.E(errs.RateLimited, "rate_limited",
				"too many requests from this client; retry in %s", wait.Round(time.Millisecond)), w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allow takes a token for key, or says how long until one is available.
func (l *RateLimiter) allow(key string) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	c, ok := l.clients[key]
	if !ok {
		c = &client{limiter: rate.NewLimiter(l.rate, l.burst)}
		l.clients[key] = c
		if len(l.clients)%1024 == 0 {
			l.forgetIdle(now)
		}
	}
	c.lastSeen = now
	l.mu.Unlock()

	res := c.limiter.ReserveN(now, 1)
	if delay := res.DelayFrom(now); delay > 0 {
		res.CancelAt(now)
		return max(delay, time.Second), false
	}
	return 0, true
}

// forgetIdle drops clients not seen for idleAfter; called with mu held.
func (l *RateLimiter) forgetIdle(now time.Time) {
	for k, c := range l.clients {
		if now.Sub(c.lastSeen) > idleAfter {
			delete(l.clients, k)
		}
	}
}

// clientKey identifies a client by its remote IP. Behind a trusted proxy
// this would come from X-Forwarded-For; the gateway is the edge, so it
// trusts nothing a client says about itself.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
