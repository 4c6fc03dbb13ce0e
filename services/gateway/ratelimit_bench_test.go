package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// benchLimiter returns a limiter that never refuses, holding at most
// maxKeys clients, the clients seen already in it.
func benchLimiter(maxKeys int, seen ...string) *RateLimiter {
	m := NewRateLimitMetrics(prometheus.NewRegistry())
	l := m.NewLimiter("client", Limit{PerSecond: 1e9, Burst: 1e9}, maxKeys, NewClientKeys(nil).limitKey)
	for _, k := range seen {
		l.allow(k)
	}
	return l
}

// keys returns n distinct IPv4 client keys, as the limiter stores them.
func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	return out
}

// BenchmarkRateLimiterAllow measures one decision: for a client already
// in the table (the common case), and for a stream of new clients into a
// full table, each of which evicts the least recently seen.
func BenchmarkRateLimiterAllow(b *testing.B) {
	b.Run("known-client", func(b *testing.B) {
		ks := keys(1000)
		l := benchLimiter(DefaultMaxKeys, ks...)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			l.allow(ks[i%len(ks)])
		}
	})
	b.Run("new-client-full-table", func(b *testing.B) {
		const max = 10_000
		ks := keys(max * 4)
		l := benchLimiter(max, ks[:max]...)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			// Cycling through 4x the table's size, every key is new.
			l.allow(ks[i%len(ks)])
		}
	})
	b.Run("known-client-parallel", func(b *testing.B) {
		ks := keys(1000)
		l := benchLimiter(DefaultMaxKeys, ks...)
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.allow(ks[next.Add(1)%int64(len(ks))])
			}
		})
	})
}

// BenchmarkRateLimiterMiddleware is the whole per-request cost at the
// edge: the client key from the request and the decision.
func BenchmarkRateLimiterMiddleware(b *testing.B) {
	l := benchLimiter(DefaultMaxKeys)
	h := l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest("GET", "/api/products", nil)
	r.RemoteAddr = "[2001:db8:1:2::99]:40000"
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkRateLimiterMemoryPerKey fills a table of DefaultMaxKeys
// clients and reports the heap it holds per client (bytes/key), the
// figure behind DefaultMaxKeys' documented cost. The keys themselves are
// allocated by the limiter's key function in production, so they are
// counted.
func BenchmarkRateLimiterMemoryPerKey(b *testing.B) {
	for range b.N {
		ks := keys(DefaultMaxKeys) // allocated before the baseline; cloned below
		before := heapInUse()
		l := benchLimiter(DefaultMaxKeys)
		for _, k := range ks {
			l.allow(string([]byte(k)))
		}
		after := heapInUse()
		runtime.KeepAlive(l)
		runtime.KeepAlive(ks)
		b.ReportMetric(float64(after-before)/DefaultMaxKeys, "bytes/key")
		b.ReportMetric(float64(after-before)/(1<<20), "MiB/full-table")
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
