package platform

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/storage"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// StoreFlags are a service's settings for its database.
type StoreFlags struct {
	service     string
	dataDir     *string
	databaseURL *string
	maxConns    *int
}

// NewStoreFlags defines the service's database: -database-url /
// DATABASE_URL, a postgres:// URL, for PostgreSQL (replicas on any node),
// with at most -database-max-conns / DATABASE_MAX_CONNS connections; or,
// when that is empty, the SQLite file <service>.db in -data-dir /
// DATA_DIR (default data/<service>; replicas on one host share it). A URL
// that is not a usable postgres:// one is refused with the other flags.
func NewStoreFlags(f *config.Flags, service string) StoreFlags {
	s := StoreFlags{
		service: service,
		dataDir: f.String("data-dir", "DATA_DIR", "data/"+service,
			"directory for the SQLite database, when -database-url is empty (replicas on one host share it)"),
		databaseURL: f.String("database-url", "DATABASE_URL", "",
			"postgres:// URL of the service's PostgreSQL database; empty: the SQLite file under -data-dir"),
		maxConns: f.Int("database-max-conns", "DATABASE_MAX_CONNS", storage.DefaultMaxConns,
			"connections to PostgreSQL this process holds at most: every replica's pool shares the server's max_connections (SQLite ignores it)"),
	}
	f.Check(func() error {
		if *s.maxConns < 1 {
			return fmt.Errorf("DATABASE_MAX_CONNS (-database-max-conns) is %d; it must be at least 1", *s.maxConns)
		}
		return nil
	})
	f.Check(func() error {
		if *s.databaseURL == "" {
			return nil
		}
		if err := storage.CheckPostgresURL(*s.databaseURL); err != nil {
			return fmt.Errorf("DATABASE_URL (-database-url): %w; leave it empty for the SQLite file under -data-dir", err)
		}
		return nil
	})
	return s
}

// source is what the store opens: the URL, else the SQLite file's path.
func (f StoreFlags) source() string {
	if *f.databaseURL != "" {
		return *f.databaseURL
	}
	return filepath.Join(*f.dataDir, f.service+".db")
}

// Store is what every service's store offers the platform; each embeds a
// *storage.DB, which provides all four.
type Store interface {
	Ping(context.Context) error
	Close() error
	Collectors(name string) []prometheus.Collector
	SetMaxConns(int)
}

// OpenStore opens the service's store with open, adds it to the health
// checks (as "store"), registers its pool and query metrics on the
// process's registry (db_name is the service), and closes it when the
// process closes, after the server has stopped. The log names the
// database, never its password.
//
// A PostgreSQL server that cannot be reached yet (nothing listening, a
// name that does not resolve, a timeout, a server still starting) does
// not stop the process: databases and services start in any order, and
// an orchestrator restarting a crashed service only adds noise. OpenStore
// serves the admin listener early, so /healthz answers and /readyz fails
// with the reason, and tries again with capped, jittered backoff until
// the database answers, then migrates and returns as usual. The process
// is not in Consul meanwhile: registration begins in Serve, and its check
// is /readyz. A server that answers and refuses (a wrong password, no
// such database) is a start-up error naming DATABASE_URL: waiting would
// not cure it. A stop (SIGTERM) while waiting is a clean stop; Close
// clears the error OpenStore returns for it.
func OpenStore[S Store](ctx context.Context, p *Process, f StoreFlags, open func(context.Context, string, trace.TracerProvider) (S, error)) (S, error) {
	source := f.source()
	postgres := storage.IsPostgresURL(source)
	if postgres {
		p.Telemetry.Logger.Info("store", "database", "postgresql", "url", storage.Redact(source))
	} else {
		p.Telemetry.Logger.Info("store", "database", "sqlite", "path", source)
	}
	ready := &storeReadiness{}
	p.Health.AddCheck("store", ready.check)
	s, err := open(ctx, source, p.Telemetry.TracerProvider)
	if err != nil && postgres && storage.Unreachable(err) && ctx.Err() == nil {
		s, err = waitForDatabase(ctx, p, ready, err, func() (S, error) { return open(ctx, source, p.Telemetry.TracerProvider) })
	}
	if err != nil {
		if postgres && !errors.Is(err, errStoppedStarting) {
			err = fmt.Errorf("DATABASE_URL (-database-url) %s: %w", storage.Redact(source), err)
		}
		return s, err
	}
	s.SetMaxConns(*f.maxConns)
	p.Telemetry.Registry.MustRegister(s.Collectors(f.service)...)
	ready.opened(s.Ping)
	p.closers = append(p.closers, s.Close)
	return s, nil
}

// Database retries start at about a quarter second and back off to 15s:
// a database that comes up with its services is found at once, and one
// that is down for long is asked about four times a minute by each
// replica, each asking logged once.
const (
	databaseRetryBase = 250 * time.Millisecond
	databaseRetryMax  = 15 * time.Second
)

// errStoppedStarting is what OpenStore returns when the process is told
// to stop while it waits for the database; Close makes it a clean stop.
var errStoppedStarting = errors.New("stopped while waiting for the database")

// waitForDatabase serves the admin listener and calls open again, with
// backoff, for as long as the last error (err) says the database is
// unreachable, keeping /readyz's "store" check on the reason: what the
// last attempt got. Each attempt ends by itself, storage bounding every
// connection attempt, so a database host that never answers is retried
// and reported like one that refuses.
func waitForDatabase[S Store](ctx context.Context, p *Process, ready *storeReadiness, err error, open func() (S, error)) (S, error) {
	p.serveAdmin()
	backoff := transport.NewBackoff(databaseRetryBase, databaseRetryMax)
	for attempt := 1; ; attempt++ {
		wait := backoff.Next()
		ready.waiting(fmt.Errorf("waiting for the database: %v (attempt %d, next in %s)", err, attempt, wait.Round(10*time.Millisecond)))
		p.Telemetry.Logger.Warn("store: the database is unreachable; not ready, retrying",
			"attempt", attempt, "retry_in", wait.String(), "error", err)
		select {
		case <-ctx.Done():
			var none S
			p.Telemetry.Logger.Info("store: stopped while waiting for the database", "attempts", attempt)
			return none, errStoppedStarting
		case <-time.After(wait):
		}
		// An attempt can take up to the connect timeout (storage's
		// DefaultConnectTimeout, 5s): meanwhile /readyz keeps the last
		// answer but no longer promises a next attempt that has begun.
		ready.waiting(fmt.Errorf("waiting for the database: %v (attempt %d; attempt %d under way)", err, attempt, attempt+1))
		s, err2 := open()
		switch {
		case err2 == nil:
			p.Telemetry.Logger.Info("store: the database answers", "attempts", attempt+1)
			return s, nil
		case ctx.Err() != nil:
			continue // the select above reports the stop
		case !storage.Unreachable(err2):
			return s, err2
		}
		err = err2
	}
}

// storeReadiness is the "store" readiness check: the reason the process
// is still waiting for its database, then the store's own Ping.
type storeReadiness struct {
	mu     sync.Mutex
	reason error
	ping   func(context.Context) error
}

func (r *storeReadiness) waiting(reason error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reason = reason
}

func (r *storeReadiness) opened(ping func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reason, r.ping = nil, ping
}

func (r *storeReadiness) check(ctx context.Context) error {
	r.mu.Lock()
	reason, ping := r.reason, r.ping
	r.mu.Unlock()
	switch {
	case ping != nil:
		return ping(ctx)
	case reason != nil:
		return reason
	default:
		return errors.New("opening the database")
	}
}

func (p *Process) closeAll() error {
	var err error
	for i := len(p.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, p.closers[i]())
	}
	return err
}
