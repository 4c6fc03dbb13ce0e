package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/glasshouse-dev/glasshouse/services/users"
)

// signingKey returns the private key in keyFile that signs tokens,
// generating a key pair there on the first start, and publishes its public
// half at publicKey too (publishPublicKey).
func signingKey(keyFile, publicKey string, logger *slog.Logger) (ed25519.PrivateKey, error) {
	key, generated, err := users.EnsureKeyPair(keyFile)
	if err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	if generated {
		// The gateway needs the public key to check tokens: say where it is.
		logger.Info("generated a token signing key pair", "private_key", keyFile, "public_key", users.PublicKeyPath(keyFile))
	}
	if err := publishPublicKey(users.PublicKeyPath(keyFile), publicKey); err != nil {
		return nil, fmt.Errorf("publish the public key (-jwt-public-key / JWT_PUBLIC_KEY_FILE): %w", err)
	}
	return key, nil
}

// publishPublicKey copies the public key that users keeps beside its
// private key (from) to to, when to is another file: services that check
// tokens can then mount a volume that holds the public key and nothing
// else, instead of the one where the signing key lives. The copy is
// written to a temporary file and renamed into place, so a reader waiting
// for the file never reads half a key, and replicas publishing at the same
// moment leave one whole file.
func publishPublicKey(from, to string) (err error) {
	if to == "" || filepath.Clean(to) == filepath.Clean(from) {
		return nil
	}
	// Parse before publishing: a damaged key must not reach the readers.
	if _, err := users.LoadPublicKey(from); err != nil {
		return err
	}
	pem, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	dir := filepath.Dir(to)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".publish-*.pub")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreMissing(os.Remove(tmp.Name())))
		}
	}()
	if _, err := tmp.Write(pem); err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", tmp.Name(), err), tmp.Close())
	}
	// 0644 like the .pub beside the private key: a public key is no secret.
	if err := tmp.Chmod(0o644); err != nil {
		return errors.Join(err, tmp.Close())
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), to)
}

func ignoreMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
