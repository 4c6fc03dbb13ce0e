package observability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Health answers the two questions an orchestrator asks: is the process
// alive (/healthz: it can serve HTTP at all), and should it get traffic
// (/readyz: every readiness check passes and it is not draining). Consul's
// check and Kubernetes' readiness probe both point at /readyz.
type Health struct {
	mu       sync.RWMutex
	checks   []namedCheck
	draining atomic.Bool
	// Timeout bounds each readiness check; a check that hangs fails.
	Timeout time.Duration
}

type namedCheck struct {
	name  string
	check func(context.Context) error
}

// NewHealth returns a Health with no checks and a 1s check timeout.
func NewHealth() *Health {
	return &Health{Timeout: time.Second}
}

// AddCheck adds a readiness check, such as "store" pinging the database.
func (h *Health) AddCheck(name string, check func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, namedCheck{name, check})
}

// Drain makes /readyz fail from now on, so load balancers stop sending new
// work while in-flight requests finish.
func (h *Health) Drain() { h.draining.Store(true) }

// LiveHandler serves /healthz.
func (h *Health) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeHealth(w, http.StatusOK, healthReport{Status: "ok"})
	})
}

type healthReport struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// ReadyHandler serves /readyz: 200 when every check passes, else 503 with
// the failing checks named.
func (h *Health) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		report := h.readiness(r.Context())
		status := http.StatusOK
		if report.Status != "ok" {
			status = http.StatusServiceUnavailable
		}
		writeHealth(w, status, report)
	})
}

// Ready is /readyz's verdict as an error: nil when every check passes and
// the process is not draining, for probes of other protocols (gRPC's
// health service).
func (h *Health) Ready(ctx context.Context) error {
	report := h.readiness(ctx)
	if report.Status == "ok" {
		return nil
	}
	var failing []string
	for name, msg := range report.Checks {
		if msg != "ok" {
			failing = append(failing, name+": "+msg)
		}
	}
	slices.Sort(failing)
	return fmt.Errorf("%s %s", report.Status, strings.Join(failing, "; "))
}

func (h *Health) readiness(ctx context.Context) healthReport {
	report := healthReport{Status: "ok", Checks: map[string]string{}}
	if h.draining.Load() {
		report.Status = "draining"
	}
	h.mu.RLock()
	checks := append([]namedCheck(nil), h.checks...)
	h.mu.RUnlock()
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(ctx, h.Timeout)
		err := c.check(ctx)
		cancel()
		if err != nil {
			report.Checks[c.name] = err.Error()
			report.Status = "unavailable"
		} else {
			report.Checks[c.name] = "ok"
		}
	}
	return report
}

func writeHealth(w http.ResponseWriter, status int, report healthReport) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(report)
}
