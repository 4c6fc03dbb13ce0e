package users_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/crypto/bcrypt"
)

func TestStoreSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "users.db")
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
