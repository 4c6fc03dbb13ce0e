package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/pgcluster"
	"github.com/glasshouse-dev/glasshouse/services"
)

// DatabaseProc is the name of the process that serves service's
// PostgreSQL cluster with StorePostgres: "orders-db" for orders.
func DatabaseProc(service string) string { return service + "-db" }

// storeServices are the services that keep data, in catalogue order.
func storeServices() []services.Spec {
	var out []services.Spec
	for _, svc := range services.All() {
		if svc.Store != "" {
			out = append(out, svc)
		}
	}
	return out
}

// startPostgres starts one PostgreSQL cluster per service that has a
// store, each in RunDir/postgres/SERVICE (initialised on the first run
// only, so data outlives a restart of the stack, as the SQLite files do),
// with a role and a database named after the service: the role owns the
// database, nobody else may connect to it, and its password is new on
// every run.
//
// A cluster per service, not one for all, because that is what database
// per service means in production (a CloudNativePG Cluster each, in
// deploy/k8s): one service's database can fail, be restarted, or run
// out of connections while the others go on, and the chaos suite's
// kill-orders-database shows it. Each idle cluster costs about 20 MiB.
// The clusters start side by side; initdb, the first time, is most of
// the wait.
func (s *Stack) startPostgres(ctx context.Context) error {
	if os.Geteuid() == 0 {
		// As root the servers run as the postgres user, who must be able
		// to pass through the run directory to reach their own.
		if err := os.Chmod(s.cfg.RunDir, 0o751); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(s.cfg.RunDir, "postgres"), 0o751); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(s.cfg.RunDir, "postgres"), 0o751); err != nil {
			return err
		}
	}
	s.databases = map[string]*Proc{}
	s.databaseURLs = map[string]string{}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for _, svc := range storeServices() {
		dir := filepath.Join(s.cfg.RunDir, "postgres", svc.Name)
		addr := s.addr(s.cfg.postgresPorts[svc.Name])
		s.progress("starting PostgreSQL for %-9s on %s (data in %s)", svc.Name, addr, dir)
		p := &Proc{Name: DatabaseProc(svc.Name), Database: svc.Name, Addr: addr, LogPath: filepath.Join(dir, "postgres.log")}
		s.databases[svc.Name] = p
		s.procs = append(s.procs, p)
		wg.Go(func() {
			url, err := s.runDatabase(ctx, p, dir, svc.Name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("PostgreSQL for %s: %w", svc.Name, err))
				return
			}
			s.databaseURLs[svc.Name] = url
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runDatabase opens service's cluster in dir (initdb the first time),
// starts it as p, and gives the service its role and database, whose URL
// it returns.
func (s *Stack) runDatabase(ctx context.Context, p *Proc, dir, service string) (string, error) {
	pg, err := pgcluster.Open(pgcluster.Config{Dir: dir, Host: s.cfg.Host, Port: s.cfg.postgresPorts[service]})
	if err != nil {
		return "", err
	}
	p.stop = pg.Stop
	p.restart = func(ctx context.Context) error {
		if err := pg.Start(ctx); err != nil {
			return err
		}
		p.PID, p.exited = pg.PID(), pg.Exited()
		return nil
	}
	if err := p.restart(ctx); err != nil {
		return "", err
	}
	password := pgcluster.RandomPassword()
	if err := pg.OwnDatabase(ctx, service, password, service); err != nil {
		return "", err
	}
	return pg.URL(service, password, service), nil
}

// Database is the process serving service's PostgreSQL cluster with
// StorePostgres, or nil (SQLite, or a service without a store).
func (s *Stack) Database(service string) *Proc { return s.databases[service] }

// Databases are the PostgreSQL clusters' processes, in catalogue order;
// none with SQLite.
func (s *Stack) Databases() []*Proc {
	var out []*Proc
	for _, p := range s.procs {
		if p.Database != "" {
			out = append(out, p)
		}
	}
	return out
}

// stopDatabases stops every cluster, side by side, once nothing uses
// them.
func (s *Stack) stopDatabases(grace time.Duration) error {
	dbs := s.Databases()
	done := make(chan error, len(dbs))
	for _, p := range dbs {
		go func() { done <- p.Stop(grace) }()
	}
	var errs []error
	for range dbs {
		if err := <-done; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StoreSource is where service keeps its data, as its instances are
// told: its DATABASE_URL with StorePostgres, else its SQLite file; ""
// for a service without a store. Every service's OpenStore takes either.
func (s *Stack) StoreSource(service string) string {
	if url := s.databaseURLs[service]; url != "" {
		return url
	}
	for _, svc := range services.All() {
		if svc.Name == service && svc.Store != "" {
			return filepath.Join(s.cfg.RunDir, "data", service, svc.Store)
		}
	}
	return ""
}
