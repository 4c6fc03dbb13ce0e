package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/storage"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var testMigrations = []string{
	`CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL, at BIGINT NOT NULL)`,
	`CREATE INDEX notes_by_at ON notes (at)`,
}

func open(t testing.TB, source string, migrations []string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), source, noop.NewTracerProvider(), migrations, func(db *storage.DB) *storage.DB { return db })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrationsRunOnceAndResume(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		source := b.NewDatabase(t)
		db := open(t, source, testMigrations[:1])
		if want := storage.Dialect(map[string]string{"sqlite": "sqlite", "postgres": "postgresql"}[b.Name]); db.Dialect() != want {
			t.Errorf("dialect = %q, want %q", db.Dialect(), want)
		}
		// Milliseconds since 1970 need 64 bits: BIGINT on both.
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO notes (id, body, at) VALUES ($1, $2, $3)`, "n1", "hello", time.Now().UnixMilli()); err != nil {
			t.Fatal(err)
		}
		db.Close()

		// Reopening with one more step runs only that step, and keeps the data.
		db = open(t, source, testMigrations)
		var n int
		if err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM notes`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("count = %d, %v; want the one note kept", n, err)
		}
		db.Close()

		// A binary that knows fewer steps than the database refuses it.
		_, err := storage.Open(ctx, source, noop.NewTracerProvider(), testMigrations[:1], func(db *storage.DB) *storage.DB { return db })
		if err == nil || !strings.Contains(err.Error(), "newer than this binary knows") {
			t.Errorf("opening a newer schema: err = %v, want a refusal", err)
		}
	})
}

func TestReplicasStartingTogetherMigrateOnce(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		source := b.NewDatabase(t)
		const replicas = 4
		var wg sync.WaitGroup
		errs := make([]error, replicas)
		for i := range replicas {
			wg.Go(func() {
				db, err := storage.Open(context.Background(), source, noop.NewTracerProvider(), testMigrations, func(db *storage.DB) *storage.DB { return db })
				if err == nil {
					err = db.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("replicas starting at once: %v", err)
		}
	})
}

// Stores write $n placeholders; on SQLite they bind by number too, in
// any order and repeated.
func TestNumberedPlaceholdersBindByNumber(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		db := open(t, b.NewDatabase(t), testMigrations)
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO notes (at, body, id) VALUES ($3, $2, $1)`, "n1", "body", int64(7)); err != nil {
			t.Fatal(err)
		}
		var id, body string
		err := db.SQL.QueryRowContext(ctx, `SELECT id, body FROM notes WHERE id = $1 AND body <> $1 AND at = $2`, "n1", int64(7)).Scan(&id, &body)
		if err != nil || id != "n1" || body != "body" {
			t.Fatalf("row = %q %q, %v; want n1 body", id, body, err)
		}
	})
}

// Lock makes two transactions on one name run one after the other, even
// for a row that neither can lock because it does not exist yet.
func TestLockSerialisesTransactionsOnAName(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		db := open(t, b.NewDatabase(t), testMigrations)
		const writers = 8
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() {
				errs[i] = db.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
					if err := db.Lock(ctx, tx, "note n1"); err != nil {
						return err
					}
					var n int
					if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM notes WHERE id = $1`, "n1").Scan(&n); err != nil {
						return err
					}
					if n > 0 {
						return nil
					}
					_, err := tx.ExecContext(ctx, `INSERT INTO notes (id, body, at) VALUES ($1, 'x', 0)`, "n1")
					return err
				})
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("a writer failed (the lock did not hold): %v", err)
		}
	})
}

func TestInTxRunsAgainAfterADeadlockOnPostgreSQL(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		db := open(t, b.NewDatabase(t), testMigrations)
		runs := 0
		err := db.InTx(context.Background(), func(context.Context, *sql.Tx) error {
			runs++
			if runs == 1 {
				return &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
			}
			return nil
		})
		switch db.Dialect() {
		case storage.PostgreSQL:
			if err != nil || runs != 2 {
				t.Errorf("runs = %d, err = %v; want a second, successful run", runs, err)
			}
		case storage.SQLite:
			if err == nil || runs != 1 {
				t.Errorf("runs = %d, err = %v; want the error, once (SQLite never deadlocks)", runs, err)
			}
		}
	})
}

func TestBadURLsSayWhatIsWrongButNotThePassword(t *testing.T) {
	for _, u := range []string{
		"mysql://app:s3cret@db/app",
		"postgres://app:s3cret@db:notaport/app",
		"postgres://app:s3cret@db/app?sslmode=sometimes",
		"postgres://app:s3cret%zz@db/app",
	} {
		err := storage.CheckPostgresURL(u)
		if err == nil {
			t.Errorf("%s: accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the password: %v", u, err)
		}
	}
	if err := storage.CheckPostgresURL("postgresql://app:s3cret@db:5432/app?sslmode=disable"); err != nil {
		t.Errorf("a good URL refused: %v", err)
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:s3cret@db:5432/app":          "postgres://app:xxxxx@db:5432/app",
		"postgres://app@db/app?password=s3cret":      "postgres://app@db/app?password=xxxxx",
		"postgres://db/app":                          "postgres://db/app",
		"postgres://app:s3cret%zz@db/app":            "(not a URL)",
		"postgresql://app:s3cret@db/app?sslmode=off": "postgresql://app:xxxxx@db/app?sslmode=off",
	} {
		if got := storage.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
