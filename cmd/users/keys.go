package main

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"

	"github.com/glasshouse-dev/glasshouse/services/users"
)

// signingKey returns the private key in keyFile that signs tokens,
// generating a key pair there on the first start, and publishes its public
// half at publicKey too (users.PublishPublicKey).
func signingKey(keyFile, publicKey string, logger *slog.Logger) (ed25519.PrivateKey, error) {
	key, generated, err := users.EnsureKeyPair(keyFile)
	if err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	if generated {
		// The gateway needs the public key to check tokens: say where it is.
		logger.Info("generated a token signing key pair", "private_key", keyFile, "public_key", users.PublicKeyPath(keyFile))
	}
	if err := users.PublishPublicKey(users.PublicKeyPath(keyFile), publicKey); err != nil {
		return nil, fmt.Errorf("publish the public key (-jwt-public-key / JWT_PUBLIC_KEY_FILE): %w", err)
	}
	return key, nil
}
