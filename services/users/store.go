package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/storage"
	"go.opentelemetry.io/otel/trace"
)

// migrations is the users schema, one step per version; append, never
// edit a step that has shipped.
var migrations = []string{
	`CREATE TABLE users (
		id            TEXT PRIMARY KEY,     -- a v4 UUID
		email         TEXT NOT NULL UNIQUE, -- trimmed and lower-cased by the service
		name          TEXT NOT NULL,
		password_hash TEXT NOT NULL,        -- bcrypt: algorithm, cost and salt included
		created_at    INTEGER NOT NULL      -- unix milliseconds
	);`,
}

// Store keeps accounts in the service's own SQLite file.
type Store struct {
	*storage.DB // Ping, Close and InTx, as in every store
}

// OpenStore opens the store at path, creating and migrating it as needed.
// It runs on SQLite only, until its queries are written for PostgreSQL
// too (as inventory's are), so a postgres:// URL is refused at start.
func OpenStore(ctx context.Context, path string, tp trace.TracerProvider) (*Store, error) {
	if storage.IsPostgresURL(path) {
		return nil, errors.New("the users store runs on SQLite only for now: leave DATABASE_URL empty")
	}
	return storage.Open(ctx, path, tp, migrations, func(db *storage.DB) *Store { return &Store{db} })
}

// CreateUser stores u (its email already normalized) with its password
// hash, or fails with Conflict email_taken if the email has an account.
func (s *Store) CreateUser(ctx context.Context, u User, passwordHash []byte, now time.Time) error {
	return s.InTx(ctx, func(tx *sql.Tx) error {
		// The transaction holds SQLite's write lock from its first
		// statement (storage opens it with _txlock=immediate), so no other
		// registration, in this process or another, can slip in between
		// this check and the insert. The UNIQUE constraint stays as the
		// last line of defence, but its error is never the answer.
		var taken bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE email = ?)`, u.Email).Scan(&taken); err != nil {
			return fmt.Errorf("look up email: %w", err)
		}
		if taken {
			return errs.E(errs.Conflict, CodeEmailTaken, "email %s is already registered", u.Email)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
			u.ID, u.Email, u.Name, string(passwordHash), now.UnixMilli()); err != nil {
			return fmt.Errorf("insert user %s: %w", u.ID, err)
		}
		return nil
	})
}

// GetUser returns the user with id, or NotFound user_not_found.
func (s *Store) GetUser(ctx context.Context, id string) (User, error) {
	var u User
	err := s.SQL.QueryRowContext(ctx, `SELECT id, email, name FROM users WHERE id = ?`, id).Scan(&u.ID, &u.Email, &u.Name)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, errUserNotFound(id)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %s: %w", id, err)
	}
	return u, nil
}

// Credentials returns the user registered with email (normalized) and
// their password hash, or NotFound user_not_found. It is for Login only:
// the hash never leaves the service.
func (s *Store) Credentials(ctx context.Context, email string) (User, []byte, error) {
	var (
		u    User
		hash string
	)
	err := s.SQL.QueryRowContext(ctx, `SELECT id, email, name, password_hash FROM users WHERE email = ?`, email).
		Scan(&u.ID, &u.Email, &u.Name, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, nil, errs.E(errs.NotFound, CodeUserNotFound, "no user with that email")
	}
	if err != nil {
		return User{}, nil, fmt.Errorf("get credentials: %w", err)
	}
	return u, []byte(hash), nil
}

// CountUsers returns how many accounts exist, for tests and operators.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.SQL.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}
