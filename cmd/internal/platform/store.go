package platform

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/storage"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// StoreFlags are a service's settings for its database.
type StoreFlags struct {
	service     string
	dataDir     *string
	databaseURL *string
}

// NewStoreFlags defines the service's database: -database-url /
// DATABASE_URL, a postgres:// URL, for PostgreSQL (replicas on any node);
// or, when that is empty, the SQLite file <service>.db in -data-dir /
// DATA_DIR (default data/<service>; replicas on one host share it). A URL
// that is not a usable postgres:// one is refused with the other flags.
func NewStoreFlags(f *config.Flags, service string) StoreFlags {
	s := StoreFlags{
		service: service,
		dataDir: f.String("data-dir", "DATA_DIR", "data/"+service,
			"directory for the SQLite database, when -database-url is empty (replicas on one host share it)"),
		databaseURL: f.String("database-url", "DATABASE_URL", "",
			"postgres:// URL of the service's PostgreSQL database; empty: the SQLite file under -data-dir"),
	}
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
// *storage.DB, which provides all three.
type Store interface {
	Ping(context.Context) error
	Close() error
	Collectors(name string) []prometheus.Collector
}

// OpenStore opens the service's store with open, adds it to the health
// checks (as "store"), registers its pool and query metrics on the
// process's registry (db_name is the service), and closes it when the
// process closes, after the server has stopped. The log names the
// database, never its password.
func OpenStore[S Store](ctx context.Context, p *Process, f StoreFlags, open func(context.Context, string, trace.TracerProvider) (S, error)) (S, error) {
	source := f.source()
	if storage.IsPostgresURL(source) {
		p.Telemetry.Logger.Info("store", "database", "postgresql", "url", storage.Redact(source))
	} else {
		p.Telemetry.Logger.Info("store", "database", "sqlite", "path", source)
	}
	s, err := open(ctx, source, p.Telemetry.TracerProvider)
	if err != nil {
		return s, err
	}
	p.Telemetry.Registry.MustRegister(s.Collectors(f.service)...)
	p.Health.AddCheck("store", s.Ping)
	p.closers = append(p.closers, s.Close)
	return s, nil
}

func (p *Process) closeAll() error {
	var err error
	for i := len(p.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, p.closers[i]())
	}
	return err
}
