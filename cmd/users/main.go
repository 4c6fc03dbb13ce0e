// Command users runs the users service: accounts, password hashes and the
// tokens the gateway checks, over HTTP.
package main

import (
	"context"
	"io"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/cmd/internal/platform"
	"github.com/glasshouse-dev/glasshouse/services/users"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { platform.Main(users.ServiceName, run) }

// run wires the service inside-out (signing key and store → service →
// endpoints → HTTP) and serves until ctx is cancelled, registered in
// Consul. Then it shuts down in order: deregister, drain, close the store,
// flush spans.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := config.NewFlags(users.ServiceName, getenv, stdout)
	common := platform.CommonFlags(flags, users.ServiceName)
	storeFlags := platform.NewStoreFlags(flags, users.ServiceName)
	keyFile := flags.String("jwt-key", "JWT_PRIVATE_KEY_FILE", "data/keys/users-jwt.key",
		"Ed25519 private key (PEM, PKCS#8) that signs tokens; if missing, a key pair is generated and the public key written beside it as .pub")
	publicKey := flags.String("jwt-public-key", "JWT_PUBLIC_KEY_FILE", "",
		"also publish the public key here (default: only beside the private key), e.g. on a volume that token checkers mount without the private key")
	ttl := flags.Duration("token-ttl", "TOKEN_TTL", users.DefaultTokenTTL, "how long an issued token is valid")
	cost := flags.Int("bcrypt-cost", "BCRYPT_COST", users.DefaultBcryptCost, "bcrypt work factor of new password hashes (4-31; each step doubles the time)")
	bcryptSlots := flags.Int("bcrypt-concurrency", "BCRYPT_CONCURRENCY", users.DefaultBcryptConcurrency(),
		"bcrypt hashes and comparisons run at once; logins and sign-ups beyond it wait -bcrypt-wait, then get 429 auth_busy")
	bcryptWait := flags.Duration("bcrypt-wait", "BCRYPT_WAIT", users.DefaultBcryptWait, "how long a login or sign-up waits for a bcrypt slot")
	if err := flags.Parse(args); err != nil {
		return err
	}

	proc, err := common.Start(ctx, users.ServiceName, version, getenv, stdout)
	if err != nil {
		return err
	}
	defer proc.Close(ctx, &err)
	tel := proc.Telemetry

	key, err := signingKey(*keyFile, *publicKey, tel.Logger)
	if err != nil {
		return err
	}

	store, err := platform.OpenStore(ctx, proc, storeFlags, users.OpenStore)
	if err != nil {
		return err
	}
	passwords, err := users.NewBcrypt(users.Options{
		BcryptCost: *cost, BcryptConcurrency: *bcryptSlots, BcryptWait: *bcryptWait, Registerer: tel.Registry,
	})
	if err != nil {
		return err
	}

	svc := users.NewService(store, users.NewIssuer(key, *ttl, nil), passwords)
	svc = users.Instrumenting(tel.Registry)(svc)
	return proc.Serve(ctx, users.API.Server(svc, proc.EndpointMiddleware))
}
