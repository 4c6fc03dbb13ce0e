// Package users owns accounts: who a user is, the hash of their password,
// and the tokens that prove a login.
//
// A user registers with an email, a password and a name; the email is the
// login, compared case-insensitively. Passwords are kept only as bcrypt
// hashes and never leave the service, not even in logs or errors. A login
// returns a short-lived JWT signed with the service's Ed25519 key; the
// gateway checks it with the public key alone (see auth.go), so no request
// needs a call to this service to be authenticated.
package users

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"
)

// Service is the users domain. Every method takes the caller's context
// first, so traces and deadlines flow through.
type Service interface {
	// Register creates an account. The email is trimmed, NFC-normalised
	// and lower-cased; one already registered, in any case, is a Conflict
	// email_taken. The name is trimmed and NFC-normalised. An email or
	// name holding a control or format character (NUL, a newline, a bidi
	// override, a zero-width space) is Invalid invalid_email or
	// invalid_name.
	Register(ctx context.Context, email, password, name string) (User, error)
	// Login exchanges an email and password for a token. A wrong
	// password and an unknown email are the same Unauthenticated
	// invalid_credentials error, so a caller cannot probe for accounts.
	//
	// Register and Login share a bounded number of bcrypt slots (see
	// Options.BcryptConcurrency); when none frees up in time they answer
	// RateLimited auth_busy at once, without hashing anything.
	Login(ctx context.Context, email, password string) (Token, error)
	// GetUser returns one user, or NotFound user_not_found.
	GetUser(ctx context.Context, id string) (User, error)
}

// User is an account as others see it: never with its password hash.
type User struct {
	ID    string `json:"id"` // a random (v4) UUID
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Token is a signed JWT naming a user, and when it stops being accepted.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Error codes this service returns, besides the generic ones.
const (
	CodeEmailTaken         = "email_taken"
	CodeInvalidEmail       = "invalid_email"
	CodeWeakPassword       = "weak_password"
	CodeInvalidName        = "invalid_name"
	CodeInvalidCredentials = "invalid_credentials"
	CodeUserNotFound       = "user_not_found"
	CodeTokenExpired       = "token_expired"
	CodeInvalidToken       = "invalid_token"
)

// Limits on what an account may hold.
const (
	maxEmailBytes    = 254 // the longest address SMTP can carry (RFC 5321)
	minPasswordBytes = 8
	maxPasswordBytes = 72 // bcrypt ignores every byte past the 72nd
	maxNameChars     = 100
)

type service struct {
	store  *Store
	issuer *Issuer
	cost   int
	// dummyHash is compared against when an email is unknown, so a login
	// for an account that does not exist costs the same bcrypt time as a
	// wrong password for one that does.
	dummyHash []byte
	gate      *bcryptGate
	// hash and compare are bcrypt's; tests count the calls through them
	// to prove a refused login ran no bcrypt at all.
	hash    func(password []byte, cost int) ([]byte, error)
	compare func(hash, password []byte) error
}

// NewService returns the users service backed by store, signing tokens
// with issuer and hashing and checking passwords under b (NewBcrypt,
// which checks the settings, so this cannot fail).
func NewService(store *Store, issuer *Issuer, b *Bcrypt) Service {
	return &service{
		store: store, issuer: issuer, cost: b.cost, dummyHash: b.dummyHash, gate: b.gate,
		hash: bcrypt.GenerateFromPassword, compare: bcrypt.CompareHashAndPassword,
	}
}

func (s *service) Register(ctx context.Context, email, password, name string) (User, error) {
	email, name = normalizeEmail(email), normalizeName(name)
	if err := validateEmail(email); err != nil {
		return User{}, err
	}
	if err := validatePassword(password); err != nil {
		return User{}, err
	}
	if err := validateName(name); err != nil {
		return User{}, err
	}
	// Hash before the store's insert: bcrypt is slow on purpose, and no
	// database lock may wait for it.
	release, err := s.gate.acquire(ctx, "register")
	if err != nil {
		return User{}, err
	}
	hash, err := s.hash([]byte(password), s.cost)
	release()
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err) // bcrypt's errors never quote the password
	}
	u := User{ID: uuid.NewString(), Email: email, Name: name}
	if err := s.store.CreateUser(ctx, u, hash, time.Now()); err != nil {
		return User{}, err
	}
	return u, nil
}

func (s *service) Login(ctx context.Context, email, password string) (Token, error) {
	user, hash, err := s.store.Credentials(ctx, normalizeEmail(email))
	found := err == nil
	if errs.KindOf(err) == errs.NotFound {
		hash = s.dummyHash
	} else if err != nil {
		return Token{}, err
	}
	// Always exactly one comparison, so the time a login takes does not
	// tell a wrong password from an unknown email. A login refused for
	// want of a slot is refused the same way for both.
	release, err := s.gate.acquire(ctx, "login")
	if err != nil {
		return Token{}, err
	}
	err = s.compare(hash, []byte(password))
	release()
	if err != nil && !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
		return Token{}, fmt.Errorf("compare with the password hash of user %q: %w", user.ID, err)
	}
	// bcrypt reads only the first 72 bytes, so a longer password could
	// match a hash it was not made from; no registered password is longer.
	if err != nil || !found || len(password) > maxPasswordBytes {
		return Token{}, errInvalidCredentials()
	}
	token, expiresAt, err := s.issuer.Issue(user.ID)
	if err != nil {
		return Token{}, err
	}
	return Token{Token: token, ExpiresAt: expiresAt}, nil
}

func (s *service) GetUser(ctx context.Context, id string) (User, error) {
	// Every ID this service hands out is a UUID; anything else cannot
	// name a user, and need not reach the database. The identifier
	// grammar goes first, so the detail of the 404 (which quotes the ID)
	// stays short.
	if !ident.Valid(id) {
		return User{}, errs.E(errs.NotFound, CodeUserNotFound, "no user with id %s", ident.Quote(id))
	}
	if _, err := uuid.Parse(id); err != nil {
		return User{}, errUserNotFound(id)
	}
	return s.store.GetUser(ctx, id)
}

// errInvalidCredentials is the one answer to every failed login: its
// detail must not say which of the two was wrong.
func errInvalidCredentials() error {
	return errs.E(errs.Unauthenticated, CodeInvalidCredentials, "email or password is incorrect")
}

func errUserNotFound(id string) error {
	return errs.E(errs.NotFound, CodeUserNotFound, "no user with id %q", id)
}

// normalizeEmail is the one canonical form of an email, used both to store
// it and to look it up, so "Ada@Example.com " and "ada@example.com" are
// the same account, and so are an address typed with a precomposed "é"
// and one with "e" and a combining accent (NFC).
func normalizeEmail(email string) string {
	return norm.NFC.String(strings.ToLower(strings.TrimSpace(email)))
}

// normalizeName trims a name and puts it in NFC, so one name has one
// stored form and its length in characters means what a reader sees.
func normalizeName(name string) string {
	return norm.NFC.String(strings.TrimSpace(name))
}

// unprintable returns the first character of s that has no place in a
// name or an address, and whether there is one: invalid UTF-8, control
// characters (Cc: NUL, tab, newline, escape), format characters (Cf: the
// bidi embeddings, overrides and isolates U+202A-U+202E and
// U+2066-U+2069, the marks U+200E/U+200F, zero-width spaces and joiners,
// the byte-order mark) and the line and paragraph separators. Each can
// make a name display as something else (after U+202E, a right-to-left
// override, the rest of the name reads backwards), hide in a log line or end it.
func unprintable(s string) (rune, bool) {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return r, true
			}
		}
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return r, true
		}
	}
	return 0, false
}

// validateEmail checks the shape of an address, not that it exists: only
// sending mail to it can prove that.
func validateEmail(email string) error {
	local, domain, _ := strings.Cut(email, "@")
	switch {
	case len(email) > maxEmailBytes:
		return errs.E(errs.Invalid, CodeInvalidEmail, "email must be at most %d bytes", maxEmailBytes)
	case strings.Count(email, "@") != 1 || local == "" || domain == "":
		return errs.E(errs.Invalid, CodeInvalidEmail, "email must have one @ with text on both sides")
	}
	if r, bad := unprintable(email); bad {
		return errs.E(errs.Invalid, CodeInvalidEmail, "email must not contain control or format characters, found %U", r)
	}
	return nil
}

// validatePassword checks only the length. Its detail never quotes the
// password, nor even says how long it was.
func validatePassword(password string) error {
	if len(password) < minPasswordBytes || len(password) > maxPasswordBytes {
		return errs.E(errs.Invalid, CodeWeakPassword, "password must be %d to %d bytes long", minPasswordBytes, maxPasswordBytes)
	}
	return nil
}

func validateName(name string) error {
	switch {
	case name == "":
		return errs.E(errs.Invalid, CodeInvalidName, "name must not be empty")
	case utf8.RuneCountInString(name) > maxNameChars:
		return errs.E(errs.Invalid, CodeInvalidName, "name must be at most %d characters", maxNameChars)
	}
	if r, bad := unprintable(name); bad {
		return errs.E(errs.Invalid, CodeInvalidName, "name must not contain control or format characters, found %U", r)
	}
	return nil
}
