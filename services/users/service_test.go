package users_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/crypto/bcrypt"
)

const password = "correct horse battery staple"

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestMain(m *testing.M) { testenv.Main(m) }

// openStore opens a store in a fresh database on backend b.
func openStore(t testing.TB, b testenv.Backend) *users.Store {
	t.Helper()
	return testenv.OpenStoreOn(t, b, users.OpenStore, noop.NewTracerProvider())
}

// fixture is a users service on a real store (SQLite or PostgreSQL),
// signing with a fresh key on a fake clock, and a verifier for its tokens.
type fixture struct {
	svc      users.Service
	store    *users.Store
	verifier *users.Verifier
	clock    *testenv.Clock
}

const testTTL = time.Hour

func newFixture(t testing.TB, b testenv.Backend) fixture {
	t.Helper()
	store := openStore(t, b)
	key := newKey(t)
	clk := testenv.NewClock()
	// A long wait for a bcrypt slot: tests of concurrent callers are about
	// the store, not the bound on bcrypt work (bcrypt_test.go tests that).
	svc := newService(t, store, users.NewIssuer(key, testTTL, clk.Now), users.Options{BcryptCost: bcrypt.MinCost, BcryptWait: time.Minute})
	return fixture{svc: svc, store: store, verifier: users.NewVerifier(key.Public().(ed25519.PublicKey), clk.Now), clock: clk}
}

// newService is users.NewService with its bcrypt work built from opts.
func newService(t testing.TB, store *users.Store, issuer *users.Issuer, opts users.Options) users.Service {
	t.Helper()
	b, err := users.NewBcrypt(opts)
	if err != nil {
		t.Fatal(err)
	}
	return users.NewService(store, issuer, b)
}

func countUsers(t *testing.T, store *users.Store) int {
	t.Helper()
	n, err := store.CountUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRegisterNormalizesAndStores(t *testing.T) {
	testenv.OnEachBackend(t, testRegisterNormalizesAndStores)
}

func testRegisterNormalizesAndStores(t *testing.T, b testenv.Backend) {
	f := newFixture(t, b)
	ctx := context.Background()

	u, err := f.svc.Register(ctx, "  Ada@Example.COM ", password, " Ada Lovelace ")
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "ada@example.com" || u.Name != "Ada Lovelace" {
		t.Errorf("registered %+v, want email ada@example.com and name Ada Lovelace (trimmed, email lower-cased)", u)
	}
	if id, err := uuid.Parse(u.ID); err != nil || id.Version() != 4 || id.String() != u.ID {
		t.Errorf("ID %q is not a canonical v4 UUID (%v)", u.ID, err)
	}
	got, err := f.svc.GetUser(ctx, u.ID)
	if err != nil || got != u {
		t.Errorf("GetUser = %+v, %v; want %+v", got, err, u)
	}

	other, err := f.svc.Register(ctx, "grace@example.com", password, "Grace Hopper")
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == u.ID {
		t.Errorf("two users share the ID %s", u.ID)
	}
}

func TestRegisterRefusesATakenEmailInAnyCase(t *testing.T) {
	testenv.OnEachBackend(t, testRegisterRefusesATakenEmailInAnyCase)
}

func testRegisterRefusesATakenEmailInAnyCase(t *testing.T, b testenv.Backend) {
	f := newFixture(t, b)
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, "ada@example.com", password, "Ada"); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Register(ctx, " ADA@Example.com", "another password", "Impostor")
	testenv.WantError(t, err, errs.Conflict, users.CodeEmailTaken)
	if n := countUsers(t, f.store); n != 1 {
		t.Errorf("%d users after a refused registration, want 1", n)
	}
	// The first account is untouched: its password still works.
	if _, err := f.svc.Login(ctx, "ada@example.com", password); err != nil {
		t.Errorf("login of the first account: %v", err)
	}
}

func TestConcurrentRegistrationsOfOneEmailCreateOneUser(t *testing.T) {
	testenv.OnEachBackend(t, testConcurrentRegistrationsOfOneEmailCreateOneUser)
}

func testConcurrentRegistrationsOfOneEmailCreateOneUser(t *testing.T, b testenv.Backend) {
	f := newFixture(t, b)
	ctx := context.Background()

	const callers = 20
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		created, taken int
		unexpected     []error
	)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Differently cased, all the same account.
			email := "ada@example.com"
			if i%2 == 1 {
				email = "ADA@example.com"
			}
			_, err := f.svc.Register(ctx, email, password, fmt.Sprintf("Ada %d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errs.CodeOf(err) == users.CodeEmailTaken:
				taken++
			default:
				unexpected = append(unexpected, err)
			}
		}()
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if created != 1 || taken != callers-1 {
		t.Errorf("created %d, refused %d; want 1 and %d", created, taken, callers-1)
	}
	if n := countUsers(t, f.store); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
}

func TestRegisterRejectsInvalidInput(t *testing.T) {
	testenv.OnEachBackend(t, testRegisterRejectsInvalidInput)
}

func testRegisterRejectsInvalidInput(t *testing.T, b testenv.Backend) {
	f := newFixture(t, b)
	tests := []struct {
		name, email, password, userName string
		code                            string
	}{
		{"no at sign", "ada.example.com", password, "Ada", users.CodeInvalidEmail},
		{"two at signs", "ada@lovelace@example.com", password, "Ada", users.CodeInvalidEmail},
		{"empty local part", "@example.com", password, "Ada", users.CodeInvalidEmail},
		{"empty domain", "ada@", password, "Ada", users.CodeInvalidEmail},
		{"blank", "   ", password, "Ada", users.CodeInvalidEmail},
		{"email too long", strings.Repeat("a", 243) + "@example.com", password, "Ada", users.CodeInvalidEmail},
		{"password too short", "ada@example.com", "s3cr3t!", "Ada", users.CodeWeakPassword},
		{"password past bcrypt's limit", "ada@example.com", strings.Repeat("p", 73), "Ada", users.CodeWeakPassword},
		{"empty name", "ada@example.com", password, "", users.CodeInvalidName},
		{"blank name", "ada@example.com", password, " \t ", users.CodeInvalidName},
		{"name too long", "ada@example.com", password, strings.Repeat("é", 101), users.CodeInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.Register(context.Background(), tt.email, tt.password, tt.userName)
			testenv.WantError(t, err, errs.Invalid, tt.code)
			if strings.Contains(err.Error(), tt.password) {
				t.Errorf("error %q quotes the password", err)
			}
		})
	}
	if n := countUsers(t, f.store); n != 0 {
		t.Errorf("%d users after invalid registrations, want 0", n)
	}

	// The limits themselves are allowed.
	limits := []struct{ email, password, name string }{
		{strings.Repeat("a", 242) + "@example.com", strings.Repeat("p", 8), "A"},
		{"b@example.com", strings.Repeat("p", 72), strings.Repeat("é", 100)},
	}
	for _, l := range limits {
		if _, err := f.svc.Register(context.Background(), l.email, l.password, l.name); err != nil {
			t.Errorf("Register at the limits (email %d bytes, password %d bytes, name %d chars): %v",
				len(l.email), len(l.password), len([]rune(l.name)), err)
		}
	}
}

func TestLoginIssuesATokenNamingTheUser(t *testing.T) {
	testenv.OnEachBackend(t, testLoginIssuesATokenNamingTheUser)
}

func testLoginIssuesATokenNamingTheUser(t *testing.T, b testenv.Backend) {
	f := newFixture(t, b)
	ctx := context.Background()
	u, err := f.svc.Register(ctx, "ada@example.com", password, "Ada")
	if err != nil {
		t.Fatal(err)
	}

	tok, err := f.svc.Login(ctx, " Ada@EXAMPLE.com", password)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.clock.Now().Add(testTTL); !tok.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %s, want %s", tok.ExpiresAt, want)
	}
	id, err := f.verifier.Verify(tok.Token)
	if err != nil || id != u.ID {
		t.Errorf("Verify(token) = %q, %v; want %q", id, err, u.ID)
	}
}

func TestFailedLoginsAreIndistinguishable(t *testing.T) {
	testenv.OnEachBackend(t, testFailedLoginsAreIndistinguishable)
}

func testFailedLoginsAreIndistinguishable(t *testing.T, b testenv.Backend) {
	f := newFixture(t, b)
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, "ada@example.com", password, "Ada"); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("p", 72)
	if _, err := f.svc.Register(ctx, "long@example.com", long, "Long"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(ctx, "long@example.com", long); err != nil {
		t.Fatalf("login with a 72-byte password: %v", err)
	}

	_, wrongPassword := f.svc.Login(ctx, "ada@example.com", "not the password")
	testenv.WantError(t, wrongPassword, errs.Unauthenticated, users.CodeInvalidCredentials)
	_, unknownEmail := f.svc.Login(ctx, "nobody@example.com", password)
	testenv.WantError(t, unknownEmail, errs.Unauthenticated, users.CodeInvalidCredentials)
	if wrongPassword.Error() != unknownEmail.Error() {
		t.Errorf("a wrong password and an unknown email give different errors:\n%v\n%v", wrongPassword, unknownEmail)
	}

	// bcrypt reads 72 bytes only: a longer password starting with the
	// real one must still be refused.
	_, err := f.svc.Login(ctx, "long@example.com", long+"-and-more")
	testenv.WantError(t, err, errs.Unauthenticated, users.CodeInvalidCredentials)
	_, err = f.svc.Login(ctx, "", "")
	testenv.WantError(t, err, errs.Unauthenticated, users.CodeInvalidCredentials)
	// Text no account can have, which PostgreSQL would refuse to compare,
	// is an unknown email too.
	for _, email := range []string{"ada\x00@example.com", "\xffada@example.com"} {
		_, err = f.svc.Login(ctx, email, password)
		testenv.WantError(t, err, errs.Unauthenticated, users.CodeInvalidCredentials)
	}
}

func TestGetUserNotFound(t *testing.T) { testenv.OnEachBackend(t, testGetUserNotFound) }

func testGetUserNotFound(t *testing.T, b testenv.Backend) {
	f := newFixture(t, b)
	for _, id := range []string{uuid.NewString(), "not-a-uuid", ""} {
		_, err := f.svc.GetUser(context.Background(), id)
		testenv.WantError(t, err, errs.NotFound, users.CodeUserNotFound)
	}
}

func TestNewBcryptRejectsACostOutOfRange(t *testing.T) {
	for _, cost := range []int{bcrypt.MinCost - 1, bcrypt.MaxCost + 1} {
		if _, err := users.NewBcrypt(users.Options{BcryptCost: cost}); err == nil {
			t.Errorf("NewBcrypt with bcrypt cost %d succeeded, want an error", cost)
		}
	}
}

// BenchmarkFailedLogin shows that a login for an unknown email costs a
// bcrypt comparison like a wrong password does: the two sub-benchmarks
// should report the same time per operation (compare them with
// benchstat), so response times do not reveal which emails have accounts.
func BenchmarkFailedLogin(b *testing.B) {
	store := openStore(b, testenv.SQLite)
	svc := newService(b, store, users.NewIssuer(newKey(b), 0, nil), users.Options{})
	ctx := context.Background()
	if _, err := svc.Register(ctx, "ada@example.com", password, "Ada"); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, email string }{
		{"wrong_password", "ada@example.com"},
		{"unknown_email", "nobody@example.com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := svc.Login(ctx, bc.email, "wrong password"); !errors.Is(err, errs.E(errs.Unauthenticated, users.CodeInvalidCredentials, "")) {
					b.Fatalf("login = %v, want invalid_credentials", err)
				}
			}
		})
	}
}
