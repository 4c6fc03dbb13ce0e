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
)

// TestTwoProcessesRaceToRegisterOneEmailOnPostgreSQL is the race of
// TestTwoStoresRaceToRegisterOneEmailOnPostgreSQL between two users
// processes, the service binary started twice on one PostgreSQL database
// and one key directory: 20 sign-ups of one email (in two casings) at
// once over HTTP, alternating between the replicas. Exactly one account
// may be created, every other sign-up must get email_taken, and the
// account must log in on both replicas with tokens that the one
// published public key verifies.
func TestTwoProcessesRaceToRegisterOneEmailOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	url := testenv.Postgres.NewDatabase(t)
	keyFile := filepath.Join(t.TempDir(), "keys", "users-jwt.key")
	consul := testenv.StartConsul(t)
	// The key directory starts empty: the replicas race to generate the
	// signing key too, and must end up sharing one.
	replicas := testenv.StartReplicas(t, "users", 2,
		"DATABASE_URL="+url, "CONSUL_HTTP_ADDR="+consul.Addr, "OTEL_SDK_DISABLED=true",
		"JWT_PRIVATE_KEY_FILE="+keyFile, "BCRYPT_COST=4",
		// A long wait for a bcrypt slot: the race is about the
		// database, not the bound on bcrypt work.
		"BCRYPT_WAIT=1m")
	consul.WaitPassing(users.ServiceName, 2, 15*time.Second)
	tel := testenv.Telemetry(t, "gateway")
	var clients [2]users.Service
	for i, r := range replicas {
		// As long as the bcrypt wait: sign-ups queue for bcrypt slots and
		// on the email's unique key.
		clients[i] = users.NewClient(testenv.DirectWithin(t, r.URL, tel, time.Minute))
	}

	const callers = 20
	var (
		mu             sync.Mutex
		created, taken int
		perReplica     [2]int
		unexpected     []error
	)
	began := time.Now()
	testenv.AtOnce(callers, func(i int) {
		replica := i % 2
		email := "ada@example.com" // differently cased, all the same account
		if i%4 >= 2 {
			email = "ADA@example.com"
		}
		_, err := clients[replica].Register(ctx, email, password, fmt.Sprintf("Ada %d", i))
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
	store := testenv.OpenStoreAt(t, url, users.OpenStore, noop.NewTracerProvider())
	stored, err := store.CountUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sign-ups of one email over 2 users processes (%s): %d created (%d on replica 0, %d on replica 1), %d refused email_taken, %d other errors, %d users stored",
		callers, time.Since(began).Round(time.Millisecond), created, perReplica[0], perReplica[1], taken, len(unexpected), stored)
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if created != 1 || taken != callers-1 || stored != 1 {
		t.Errorf("created %d, refused %d, %d stored; want 1, %d and 1", created, taken, stored, callers-1)
	}

	// Whichever replica created it, the account logs in on both, and the
	// one public key verifies both replicas' tokens as that account.
	public, err := users.LoadPublicKey(users.PublicKeyPath(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	verifier := users.NewVerifier(public, nil)
	subjects := map[string]int{}
	for i, c := range clients {
		tok, err := c.Login(ctx, "ada@example.com", password)
		if err != nil {
			t.Errorf("login on replica %d: %v", i, err)
			continue
		}
		id, err := verifier.Verify(tok.Token)
		if err != nil {
			t.Errorf("replica %d's token does not verify with the published key: %v", i, err)
			continue
		}
		subjects[id]++
	}
	if len(subjects) != 1 {
		t.Errorf("tokens name users %v; want one account", subjects)
	}
}
