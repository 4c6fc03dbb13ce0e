package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/glasshouse-dev/glasshouse/internal/pgcluster"
	"github.com/glasshouse-dev/glasshouse/services"
)

// startPostgres starts the stack's PostgreSQL cluster in RunDir/postgres
// (initialised on the first run only, so data outlives a restart of the
// stack, as the SQLite files do) and gives every service that has a store
// a role and a database of its own: the role owns the database, nobody
// else may connect to it, and its password is new on every run.
func (s *Stack) startPostgres(ctx context.Context) error {
	dir := filepath.Join(s.cfg.RunDir, "postgres")
	if os.Geteuid() == 0 {
		// As root the server runs as the postgres user, who must be able
		// to pass through the run directory to reach its own.
		if err := os.Chmod(s.cfg.RunDir, 0o751); err != nil {
			return err
		}
	}
	s.progress("starting PostgreSQL on %s (data in %s)", s.addr(s.cfg.PostgresPort), dir)
	pg, err := pgcluster.Open(pgcluster.Config{Dir: dir, Host: s.cfg.Host, Port: s.cfg.PostgresPort})
	if err != nil {
		return err
	}
	s.pg = pg
	s.Postgres = &Proc{Name: "postgres", Addr: pg.Addr(), LogPath: pg.LogPath(), stop: pg.Stop}
	s.procs = append(s.procs, s.Postgres)
	if err := s.runPostgres(ctx); err != nil {
		return err
	}
	s.databaseURLs = map[string]string{}
	for _, svc := range services.All() {
		if svc.Store == "" {
			continue
		}
		password := pgcluster.RandomPassword()
		// The role and the database are named after the service.
		if err := pg.OwnDatabase(ctx, svc.Name, password, svc.Name); err != nil {
			return fmt.Errorf("PostgreSQL for %s: %w", svc.Name, err)
		}
		s.databaseURLs[svc.Name] = pg.URL(svc.Name, password, svc.Name)
	}
	return nil
}

// runPostgres starts (or restarts) the cluster's server and points the
// "postgres" process at its postmaster.
func (s *Stack) runPostgres(ctx context.Context) error {
	if err := s.pg.Start(ctx); err != nil {
		return err
	}
	s.Postgres.PID, s.Postgres.exited = s.pg.PID(), s.pg.Exited()
	return nil
}
