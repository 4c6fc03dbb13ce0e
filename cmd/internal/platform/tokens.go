package platform

import (
	"context"
	"fmt"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/services/users"
)

// VerifierFlags say where a service that checks bearer tokens finds
// users' public key: -jwt-public-key / JWT_PUBLIC_KEY_FILE, and how long
// to wait for it at start (-jwt-key-wait / JWT_KEY_WAIT), since users
// writes it on its first start.
type VerifierFlags struct {
	path *string
	wait *time.Duration
}

// NewVerifierFlags defines the flags on f.
func NewVerifierFlags(f *config.Flags) VerifierFlags {
	return VerifierFlags{
		path: f.String("jwt-public-key", "JWT_PUBLIC_KEY_FILE", "data/keys/users-jwt.pub", "users' public key (PEM), to check bearer tokens"),
		wait: f.Duration("jwt-key-wait", "JWT_KEY_WAIT", 30*time.Second, "how long to wait for the public key file at start"),
	}
}

// Verifier waits for the key file, loads it and returns the verifier of
// users' tokens.
func (v VerifierFlags) Verifier(ctx context.Context) (*users.Verifier, error) {
	if err := WaitForFile(ctx, *v.path, *v.wait); err != nil {
		return nil, fmt.Errorf("users' public key (-jwt-public-key / JWT_PUBLIC_KEY_FILE): %w", err)
	}
	key, err := users.LoadPublicKey(*v.path)
	if err != nil {
		return nil, err
	}
	return users.NewVerifier(key, nil), nil
}
