package platform

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"go.opentelemetry.io/otel/trace"
)

// StoreFlags are a service's settings for its database.
type StoreFlags struct {
	service string
	dataDir *string
}

// NewStoreFlags defines -data-dir / DATA_DIR (default data/<service>): the
// directory of the service's SQLite file, <service>.db.
func NewStoreFlags(f *config.Flags, service string) StoreFlags {
	return StoreFlags{service: service, dataDir: f.String("data-dir", "DATA_DIR", "data/"+service,
		"directory for the SQLite database (replicas on one host share it)")}
}

// Store is what every service's store offers the platform.
type Store interface {
	Ping(context.Context) error
	Close() error
}

// OpenStore opens the service's store with open, adds it to the health
// checks (as "store") and closes it when the process closes, after the
// server has stopped.
func OpenStore[S Store](ctx context.Context, p *Process, f StoreFlags, open func(context.Context, string, trace.TracerProvider) (S, error)) (S, error) {
	s, err := open(ctx, filepath.Join(*f.dataDir, f.service+".db"), p.Telemetry.TracerProvider)
	if err != nil {
		return s, err
	}
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
