package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/glasshouse-dev/glasshouse/services/users"
)

func TestKeygenWritesOnePairAndKeepsIt(t *testing.T) {
	dir := t.TempDir()
	private := filepath.Join(dir, "keys", "users-jwt.key")
	public := filepath.Join(dir, "public-keys", "users-jwt.pub")
	keygen := func() {
		t.Helper()
		if err := run(context.Background(), []string{"keygen", "-key", private, "-public", public}, os.Getenv, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	keygen()
	first, err := users.LoadPrivateKey(private)
	if err != nil {
		t.Fatal(err)
	}
	published, err := users.LoadPublicKey(public)
	if err != nil {
		t.Fatalf("no public key where keygen was told to publish it: %v", err)
	}
	if !published.Equal(first.Public()) {
		t.Error("the published public key is not the private key's half")
	}
	// A second run, as when the compose project is started again, keeps
	// the pair, so tokens signed before it stay valid.
	keygen()
	second, err := users.LoadPrivateKey(private)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Error("a second keygen replaced the key pair")
	}
}

func TestKeygenNeedsAKeyFile(t *testing.T) {
	if err := run(context.Background(), []string{"keygen"}, os.Getenv, io.Discard); err == nil {
		t.Error("keygen without -key succeeded")
	}
}
