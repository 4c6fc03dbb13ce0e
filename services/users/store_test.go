package users_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/crypto/bcrypt"
)

func TestStoreSurvivesReopen(t *testing.T) { testenv.OnEachBackend(t, testStoreSurvivesReopen) }

func testStoreSurvivesReopen(t *testing.T, b testenv.Backend) {
	ctx := context.Background()
	path := b.NewDatabase(t)
	if b.Name == testenv.SQLite.Name {
		path = filepath.Join(t.TempDir(), "data", "users.db") // a directory Open must create
	}
	key := newKey(t)
	open := func() (*users.Store, users.Service) {
		t.Helper()
		store, err := users.OpenStore(ctx, path, noop.NewTracerProvider())
		if err != nil {
			t.Fatal(err)
		}
		return store, newService(t, store, users.NewIssuer(key, 0, nil), users.Options{BcryptCost: bcrypt.MinCost})
	}

	store, svc := open()
	u, err := svc.Register(ctx, "ada@example.com", password, "Ada")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening runs the migrations again (a no-op at the same version)
	// and must keep the account, its password and its email's uniqueness.
	store, svc = open()
	defer store.Close()
	if got, err := svc.GetUser(ctx, u.ID); err != nil || got != u {
		t.Errorf("GetUser after reopen = %+v, %v; want %+v", got, err, u)
	}
	if _, err := svc.Login(ctx, "ada@example.com", password); err != nil {
		t.Errorf("login after reopen: %v", err)
	}
	if _, err := svc.Register(ctx, "Ada@example.com", password, "Ada again"); errs.CodeOf(err) != users.CodeEmailTaken {
		t.Errorf("registering the email again after reopen = %v, want email_taken", err)
	}
	if n, err := store.CountUsers(ctx); err != nil || n != 1 {
		t.Errorf("CountUsers = %d, %v; want 1", n, err)
	}
	if err := store.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
}

// TestTwoStoresRaceToRegisterOneEmailOnPostgreSQL is two replicas of the
// service in one process, each with its own store and connection pool on
// one PostgreSQL database (TestTwoProcessesRaceToRegisterOneEmailOnPostgreSQL
// runs the service binary twice instead), receiving 20 sign-ups of the
// same email at once: exactly one account may be created, on whichever
// replica, and every other sign-up must get email_taken, never an
// internal error from the constraint.
func TestTwoStoresRaceToRegisterOneEmailOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	url := testenv.Postgres.NewDatabase(t)
	var replicas [2]users.Service
	var stores [2]*users.Store
	for i := range replicas {
		store, err := users.OpenStore(ctx, url, noop.NewTracerProvider()) // the second finds the schema migrated
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		// A long wait for a bcrypt slot, as in newFixture: the race is
		// about the store, not the bound on bcrypt work.
		opts := users.Options{BcryptCost: bcrypt.MinCost, BcryptWait: time.Minute}
		stores[i], replicas[i] = store, newService(t, store, users.NewIssuer(newKey(t), 0, nil), opts)
	}

	const callers = 20
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		created, taken int
		perReplica     [2]int
		unexpected     []error
		start          = make(chan struct{})
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			replica := i % 2
			email := "ada@example.com" // differently cased, all the same account
			if i%4 >= 2 {
				email = "ADA@example.com"
			}
			_, err := replicas[replica].Register(ctx, email, password, fmt.Sprintf("Ada %d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
				perReplica[replica]++
			case errs.CodeOf(err) == users.CodeEmailTaken:
				taken++
			default:
				unexpected = append(unexpected, err)
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("%d sign-ups of one email over 2 replicas: %d created (%d on replica 0, %d on replica 1), %d refused email_taken, %d other errors",
		callers, created, perReplica[0], perReplica[1], taken, len(unexpected))
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if created != 1 || taken != callers-1 {
		t.Errorf("created %d, refused %d; want 1 and %d", created, taken, callers-1)
	}
	for i, store := range stores {
		if n, err := store.CountUsers(ctx); err != nil || n != 1 {
			t.Errorf("replica %d counts %d users (%v), want 1", i, n, err)
		}
	}
	// Whichever replica created it, the account works on both.
	for i, svc := range replicas {
		if _, err := svc.Login(ctx, "ada@example.com", password); err != nil {
			t.Errorf("login on replica %d: %v", i, err)
		}
	}
}
