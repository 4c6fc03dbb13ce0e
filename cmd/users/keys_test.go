package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/glasshouse-dev/glasshouse/services/users"
)

func TestPublishPublicKeyCopiesOnlyThePublicHalf(t *testing.T) {
	private := filepath.Join(t.TempDir(), "keys", "users-jwt.key")
	if _, _, err := users.EnsureKeyPair(private); err != nil {
		t.Fatal(err)
	}
	publicDir := filepath.Join(t.TempDir(), "public-keys")
	published := filepath.Join(publicDir, "users-jwt.pub")
	if err := users.PublishPublicKey(users.PublicKeyPath(private), published); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(users.PublicKeyPath(private))
	got, err := os.ReadFile(published)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("published key = %q, %v; want a copy of %s", got, err, users.PublicKeyPath(private))
	}
	if _, err := users.LoadPublicKey(published); err != nil {
		t.Errorf("the published key does not load: %v", err)
	}
	// The public volume holds the public key and nothing else: no
	// private key, no temporary file left behind.
	entries, _ := os.ReadDir(publicDir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the public key directory holds %v; want only users-jwt.pub", names)
	}
	// Publishing again (a restart) replaces the file.
	if err := users.PublishPublicKey(users.PublicKeyPath(private), published); err != nil {
		t.Errorf("publishing again: %v", err)
	}
}

func TestPublishPublicKeyRefusesAKeyThatDoesNotParse(t *testing.T) {
	dir := t.TempDir()
	from := filepath.Join(dir, "users-jwt.pub")
	if err := os.WriteFile(from, []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dir, "public", "users-jwt.pub")
	if err := users.PublishPublicKey(from, to); err == nil {
		t.Fatal("a damaged key was published")
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Errorf("%s exists after a refused publish (%v)", to, err)
	}
}

func TestPublishPublicKeyBesideItselfIsANoOp(t *testing.T) {
	private := filepath.Join(t.TempDir(), "users-jwt.key")
	if _, _, err := users.EnsureKeyPair(private); err != nil {
		t.Fatal(err)
	}
	pub := users.PublicKeyPath(private)
	for _, to := range []string{"", pub, filepath.Join(filepath.Dir(pub), ".", "users-jwt.pub")} {
		if err := users.PublishPublicKey(pub, to); err != nil {
			t.Errorf("users.PublishPublicKey(%q, %q) = %v", pub, to, err)
		}
	}
}
