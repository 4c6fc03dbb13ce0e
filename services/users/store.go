package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/storage"
	"go.opentelemetry.io/otel/trace"
)

// migrations is the users schema, one step per version, for SQLite and
// PostgreSQL alike; append, never edit a step that has shipped.
//
// One edit was made, safely: step 1 said INTEGER for created_at until
// PostgreSQL came, whose INTEGER is 32 bits, too small for unix
// milliseconds. SQLite gives INTEGER and BIGINT the same integer
// affinity, so a SQLite file made by either text stores and compares the
// column alike.
var migrations = []string{
	`CREATE TABLE users (
		id            TEXT PRIMARY KEY,     -- a v4 UUID
		email         TEXT NOT NULL UNIQUE, -- trimmed and lower-cased by the service
		name          TEXT NOT NULL,
		password_hash TEXT NOT NULL,        -- bcrypt: algorithm, cost and salt included
		created_at    BIGINT NOT NULL       -- unix milliseconds
	);`,
}

// Store keeps accounts in the service's own database, a SQLite file or
// PostgreSQL.
//
// Its one guarantee across replicas, one account per email, rests on the
// UNIQUE constraint alone: a sign-up is a single INSERT … ON CONFLICT
// (email) DO NOTHING, which both databases run atomically, so there is no
// read-then-write for two replicas to interleave and nothing to lock. On
// PostgreSQL a second insert of the same email waits for the first
// transaction and, once it commits, inserts nothing; on SQLite the
// insert holds the database's only write lock.
type Store struct {
	*storage.DB // Ping, Close and InTx, as in every store
}

// OpenStore opens the store at source (a SQLite file path or a
// postgres:// URL), creating and migrating it as needed.
func OpenStore(ctx context.Context, source string, tp trace.TracerProvider) (*Store, error) {
	return storage.Open(ctx, source, tp, migrations, func(db *storage.DB) *Store { return &Store{db} })
}

// CreateUser stores u (its email already normalized) with its password
// hash, or fails with Conflict email_taken if the email has an account.
func (s *Store) CreateUser(ctx context.Context, u User, passwordHash []byte, now time.Time) error {
	// The conflict names email only: a clash of IDs (v4 UUIDs) is still an
	// error, never mistaken for a taken email.
	res, err := s.SQL.ExecContext(ctx,
		`INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (email) DO NOTHING`,
		u.ID, u.Email, u.Name, string(passwordHash), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("insert user %s: %w", u.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("insert user %s: %w", u.ID, err)
	}
	if n == 0 {
		return errs.E(errs.Conflict, CodeEmailTaken, "email %s is already registered", u.Email)
	}
	return nil
}

// GetUser returns the user with id, or NotFound user_not_found.
func (s *Store) GetUser(ctx context.Context, id string) (User, error) {
	var u User
	err := s.SQL.QueryRowContext(ctx, `SELECT id, email, name FROM users WHERE id = $1`, id).Scan(&u.ID, &u.Email, &u.Name)
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
	// No account can have an email that is not valid UTF-8 or holds NUL
	// (Register refuses both), and PostgreSQL refuses such text outright:
	// answer as for any unknown email, on both databases.
	if !utf8.ValidString(email) || strings.ContainsRune(email, 0) {
		return User{}, nil, errs.E(errs.NotFound, CodeUserNotFound, "no user with that email")
	}
	err := s.SQL.QueryRowContext(ctx, `SELECT id, email, name, password_hash FROM users WHERE email = $1`, email).
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
