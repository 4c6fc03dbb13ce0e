package gateway

import (
	"bytes"
	"container/list"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// RateLimiter gives each key (a client, an email) a token bucket: Rate
// requests per second on average, Burst at once. A key over its limit
// gets 429 with Retry-After saying when its next request will be allowed;
// other keys are unaffected.
//
// Its table of buckets is bounded: it holds at most maxKeys of them, and
// when it is full the least-recently-seen key is forgotten (an LRU). A
// bucket idle for burst/rate seconds is full again, so forgetting it
// changes nothing; eviction loses state only when the table is full of
// keys seen more recently than that.
//
// The trade-off: a forgotten key that comes back starts with a full
// bucket, so eviction resets a bucket. To push its own entry out, a
// hostile client must first get maxKeys other keys seen after it (one
// eviction cycle), and every one of those is a request that is limited
// too. So it gains at most one fresh burst per maxKeys new keys: with
// the defaults, 200 requests per 100,000 distinct addresses, when owning
// that many addresses already gives it 100,000 fresh bursts. The
// alternative, refusing newcomers when the table is full, would let the
// same client lock every new customer out, which is worse.
type RateLimiter struct {
	rate    rate.Limit
	burst   int
	maxKeys int
	// forgetAfter is how long until an idle bucket is full again.
	forgetAfter time.Duration
	// key names the bucket a request draws from; false: this limit does
	// not apply to the request.
	key func(*http.Request) (string, bool)
	// refusal tells the caller which limit it hit.
	refusal string
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	recency *list.List               // most recently seen first

	limited prometheus.Counter
	evicted prometheus.Counter
	tracked prometheus.Gauge
}

type bucket struct {
	key      string
	limiter  *rate.Limiter
	lastSeen time.Time
}

// Limit is the shape of one token bucket: PerSecond requests per second
// on average, Burst at once. PerSecond <= 0 disables the limit.
type Limit struct {
	PerSecond float64
	Burst     int
}

// DefaultMaxKeys bounds each limiter's table. An entry costs about 230
// bytes with an IPv4 key (BenchmarkRateLimiterMemoryPerKey measures it:
// the bucket, its list element, the map slot and the key), so a full
// client table is about 22 MiB; a full login_email table, whose keys may
// be 254 bytes, is at most about 50 MiB.
const DefaultMaxKeys = 100_000

// RateLimitMetrics are the series every limiter of one gateway shares,
// labelled by the limit's name ("client", "auth", "login_email").
type RateLimitMetrics struct {
	limited *prometheus.CounterVec
	evicted *prometheus.CounterVec
	tracked *prometheus.GaugeVec
}

// NewRateLimitMetrics registers the limiters' series on reg.
func NewRateLimitMetrics(reg prometheus.Registerer) *RateLimitMetrics {
	return &RateLimitMetrics{
		limited: observability.NewCounterVec(reg, "glasshouse_gateway_rate_limited_total",
			"Requests refused with 429 because their client (or email) was over its rate limit.", "limit"),
		evicted: observability.NewCounterVec(reg, "glasshouse_gateway_rate_limit_evictions_total",
			"Buckets forgotten because the limiter's table was full (least recently seen first).", "limit"),
		tracked: observability.NewGaugeVec(reg, "glasshouse_gateway_rate_limit_keys",
			"Buckets the limiter holds now (bounded by -rate-limit-clients).", "limit"),
	}
}

// NewLimiter returns the limiter called name, drawing from the bucket key
// names, with at most maxKeys buckets (<= 0: DefaultMaxKeys).
func (m *RateLimitMetrics) NewLimiter(name string, limit Limit, maxKeys int, key func(*http.Request) (string, bool)) *RateLimiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	l := &RateLimiter{
		rate: rate.Limit(limit.PerSecond), burst: limit.Burst, maxKeys: maxKeys,
		key: key, refusal: "too many requests from this client", now: time.Now,
		buckets: map[string]*list.Element{}, recency: list.New(),
		limited: m.limited.WithLabelValues(name),
		evicted: m.evicted.WithLabelValues(name),
		tracked: m.tracked.WithLabelValues(name),
	}
	if limit.PerSecond > 0 {
		l.forgetAfter = time.Duration(float64(max(limit.Burst, 1)) / limit.PerSecond * float64(time.Second))
	}
	return l
}

// NewRateLimiter allows each client (by its peer address) perSecond
// requests per second with bursts of burst. perSecond <= 0 disables
// limiting.
func NewRateLimiter(perSecond float64, burst int, reg prometheus.Registerer) *RateLimiter {
	return NewRateLimitMetrics(reg).NewLimiter("client", Limit{perSecond, burst}, DefaultMaxKeys, NewClientKeys(nil).limitKey)
}

// Middleware enforces the limit in front of next. A nil or disabled
// limiter lets everything through.
func (l *RateLimiter) Middleware(next http.Handler) http.Handler {
	if l == nil || l.rate <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := l.key(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if wait, ok := l.allow(key); !ok {
			l.limited.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			transport.WriteError(r.Context(), errs.E(errs.RateLimited, "rate_limited",
				"%s; retry in %s", l.refusal, wait.Round(time.Millisecond)), w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allow takes a token for key, or says how long until one is available.
func (l *RateLimiter) allow(key string) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	var b *bucket
	if el, ok := l.buckets[key]; ok {
		l.recency.MoveToFront(el)
		b = el.Value.(*bucket)
	} else {
		l.forgetIdle(now)
		if len(l.buckets) >= l.maxKeys {
			l.remove(l.recency.Back())
			l.evicted.Inc()
		}
		b = &bucket{key: key, limiter: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = l.recency.PushFront(b)
		l.tracked.Set(float64(len(l.buckets)))
	}
	b.lastSeen = now
	l.mu.Unlock()

	res := b.limiter.ReserveN(now, 1)
	if delay := res.DelayFrom(now); delay > 0 {
		res.CancelAt(now)
		return max(delay, time.Second), false
	}
	return 0, true
}

// forgetIdle drops, from the least recent end, the buckets that are full
// again; called with mu held. Each bucket is dropped once, so the work is
// constant per new key on average.
func (l *RateLimiter) forgetIdle(now time.Time) {
	for el := l.recency.Back(); el != nil; el = l.recency.Back() {
		if now.Sub(el.Value.(*bucket).lastSeen) <= l.forgetAfter {
			return
		}
		l.remove(el)
	}
	l.tracked.Set(float64(len(l.buckets)))
}

func (l *RateLimiter) remove(el *list.Element) {
	delete(l.buckets, el.Value.(*bucket).key)
	l.recency.Remove(el)
}

// Len is the number of buckets held.
func (l *RateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func (k ClientKeys) limitKey(r *http.Request) (string, bool) { return k.Key(r), true }

// LimitsConfig shapes the gateway's rate limits. Each is in addition to
// the ones before it: a login spends a token of Client, of Auth and of
// LoginEmail.
type LimitsConfig struct {
	// Client applies to every route, per client.
	Client Limit
	// Auth applies to sign-up and login, per client: each costs a bcrypt
	// hash in users (tens of milliseconds of CPU), so a client that may
	// send 100 of them a second can starve users for everyone.
	Auth Limit
	// LoginEmail applies to login, per email (trimmed, lower-cased as
	// users compares them): guessing one account's password from many
	// addresses is slowed as much as from one.
	LoginEmail Limit
	// MaxKeys bounds each limiter's table (<= 0: DefaultMaxKeys).
	MaxKeys int
	// Clients tells who sent a request (see ClientKeys: trusted proxies).
	Clients ClientKeys
}

// Limits are the gateway's limiters, built from a LimitsConfig.
type Limits struct {
	Client, Auth, LoginEmail *RateLimiter
}

// NewLimits builds the limiters, their series registered on reg.
func NewLimits(cfg LimitsConfig, reg prometheus.Registerer) Limits {
	m := NewRateLimitMetrics(reg)
	client := cfg.Clients.limitKey
	l := Limits{
		Client:     m.NewLimiter("client", cfg.Client, cfg.MaxKeys, client),
		Auth:       m.NewLimiter("auth", cfg.Auth, cfg.MaxKeys, client),
		LoginEmail: m.NewLimiter("login_email", cfg.LoginEmail, cfg.MaxKeys, loginEmail),
	}
	l.Auth.refusal = "too many sign-ups and logins from this client"
	l.LoginEmail.refusal = "too many logins for this email"
	return l
}

// Validate says which limit is unusable: a rate with no burst would
// refuse every request.
func (c LimitsConfig) Validate() error {
	for _, l := range []struct {
		setting string
		limit   Limit
	}{
		{"-rate-burst / RATE_BURST", c.Client},
		{"-auth-rate-burst / AUTH_RATE_BURST", c.Auth},
		{"-login-email-rate-burst / LOGIN_EMAIL_RATE_BURST", c.LoginEmail},
	} {
		if l.limit.PerSecond > 0 && l.limit.Burst < 1 {
			return fmt.Errorf("%s is %d: with a rate set it must be at least 1, or every request is refused", l.setting, l.limit.Burst)
		}
	}
	if c.MaxKeys < 1 {
		return fmt.Errorf("-rate-limit-clients / RATE_LIMIT_CLIENTS is %d: it must be at least 1", c.MaxKeys)
	}
	return nil
}

// loginEmail keys a login by the email in its body, read ahead of the
// decoder and put back for it. A body that is not a login (bad JSON, no
// email) is not limited here: the decoder answers it with a 400.
func loginEmail(r *http.Request) (string, bool) {
	body, err := io.ReadAll(r.Body)
	rest := io.Reader(bytes.NewReader(body))
	if err != nil {
		// Give the decoder the same failure (a body over the limit: 413).
		rest = io.MultiReader(rest, errReader{err})
	}
	r.Body = io.NopCloser(rest)
	if err != nil {
		return "", false
	}
	var login struct {
		Email string `json:"email"`
	}
	if json.Unmarshal(body, &login) != nil {
		return "", false
	}
	email := strings.ToLower(strings.TrimSpace(login.Email))
	// Users refuses an email this long before hashing anything, and a
	// key of a megabyte must not be kept.
	return email, email != "" && len(email) <= maxEmailBytes
}

// maxEmailBytes is users' limit on an email's length (RFC 5321's path).
const maxEmailBytes = 254

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
