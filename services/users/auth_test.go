package users_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/users"
	"github.com/golang-jwt/jwt/v5"
)

func TestIssuedTokenVerifiesToTheUser(t *testing.T) {
	key := newKey(t)
	clk := testenv.NewClock()
	clk.Advance(500 * time.Millisecond) // 12:00:00.5
	token, expiresAt, err := users.NewIssuer(key, 15*time.Minute, clk.Now).Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	// JWT times are whole seconds: the half second is dropped.
	if want := time.Date(2026, 1, 1, 12, 15, 0, 0, time.UTC); !expiresAt.Equal(want) {
		t.Errorf("expiresAt = %s, want %s", expiresAt, want)
	}

	// The claims are the documented ones, aud as an array.
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"sub": "user-1", "iss": "glasshouse", "aud": []any{"glasshouse"},
		"iat": float64(clk.Now().Unix()), "exp": float64(expiresAt.Unix()),
	}
	if got, want := mustJSON(t, claims), mustJSON(t, want); got != want {
		t.Errorf("claims = %s, want %s", got, want)
	}

	verifier := users.NewVerifier(key.Public().(ed25519.PublicKey), clk.Now)
	clk.Advance(15*time.Minute - 501*time.Millisecond) // the last instant before exp
	if id, err := verifier.Verify(token); err != nil || id != "user-1" {
		t.Errorf("Verify = %q, %v; want user-1", id, err)
	}
	clk.Advance(time.Millisecond) // exactly exp: no longer valid
	_, err = verifier.Verify(token)
	testenv.WantError(t, err, errs.Unauthenticated, users.CodeTokenExpired)
	if !strings.Contains(errDetail(err), "2026-01-01T12:15:00Z") {
		t.Errorf("detail %q does not say when the token expired", errDetail(err))
	}
}

func TestVerifyRejectsForgedAndMalformedTokens(t *testing.T) {
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	now := time.Now()
	valid := jwt.RegisteredClaims{
		Subject:   "user-1",
		Issuer:    users.TokenIssuer,
		Audience:  jwt.ClaimStrings{users.TokenIssuer},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}
	with := func(change func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := valid
		change(&c)
		return c
	}
	sign := func(method jwt.SigningMethod, claims jwt.Claims, key any) string {
		t.Helper()
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign(jwt.SigningMethodEdDSA, valid, key)
	parts := strings.Split(good, ".")

	tests := []struct {
		name, token, code string
	}{
		{"signed by another key", sign(jwt.SigningMethodEdDSA, valid, newKey(t)), users.CodeInvalidToken},
		{"expired and signed by another key", sign(jwt.SigningMethodEdDSA, with(func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute))
		}), newKey(t)), users.CodeInvalidToken},
		{"alg none", sign(jwt.SigningMethodNone, valid, jwt.UnsafeAllowNoneSignatureType), users.CodeInvalidToken},
		// The classic confusion attack: HMAC keyed with the public key.
		{"HS256 keyed with the public key", sign(jwt.SigningMethodHS256, valid, []byte(pub)), users.CodeInvalidToken},
		{"wrong issuer", sign(jwt.SigningMethodEdDSA, with(func(c *jwt.RegisteredClaims) { c.Issuer = "evil" }), key), users.CodeInvalidToken},
		{"wrong audience", sign(jwt.SigningMethodEdDSA, with(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"payments"} }), key), users.CodeInvalidToken},
		{"no expiry", sign(jwt.SigningMethodEdDSA, with(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }), key), users.CodeInvalidToken},
		{"no subject", sign(jwt.SigningMethodEdDSA, with(func(c *jwt.RegisteredClaims) { c.Subject = "" }), key), users.CodeInvalidToken},
		{"claims swapped under a valid signature", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","iss":"glasshouse","aud":["glasshouse"],"exp":9999999999}`)) + "." + parts[2], users.CodeInvalidToken},
		{"truncated", good[:len(good)-10], users.CodeInvalidToken},
		{"not a JWT", "hello", users.CodeInvalidToken},
		{"empty", "", users.CodeInvalidToken},
		{"expired", sign(jwt.SigningMethodEdDSA, with(func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Second))
		}), key), users.CodeTokenExpired},
	}
	verifier := users.NewVerifier(pub, nil)
	if id, err := verifier.Verify(good); err != nil || id != "user-1" {
		t.Fatalf("the untampered token: Verify = %q, %v; want user-1", id, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := verifier.Verify(tt.token)
			testenv.WantError(t, err, errs.Unauthenticated, tt.code)
			if id != "" {
				t.Errorf("Verify returned user %q with its error", id)
			}
		})
	}
}

func TestEnsureKeyPairGeneratesOnceThenLoads(t *testing.T) {
	privPath := filepath.Join(t.TempDir(), "keys", "users-jwt.key")
	pubPath := users.PublicKeyPath(privPath)
	if want := strings.TrimSuffix(privPath, "users-jwt.key") + "users-jwt.pub"; pubPath != want {
		t.Fatalf("PublicKeyPath = %s, want %s", pubPath, want)
	}

	key, generated, err := users.EnsureKeyPair(privPath)
	if err != nil || !generated {
		t.Fatalf("first EnsureKeyPair = generated %v, %v; want a new key", generated, err)
	}
	for path, mode := range map[string]fs.FileMode{privPath: 0o600, pubPath: 0o644} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", filepath.Base(path), info.Mode().Perm(), mode)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(privPath)); len(entries) != 2 {
		t.Errorf("key directory holds %d files, want the 2 keys and no temporary file", len(entries))
	}

	again, generated, err := users.EnsureKeyPair(privPath)
	if err != nil || generated {
		t.Fatalf("second EnsureKeyPair = generated %v, %v; want the key loaded", generated, err)
	}
	if !key.Equal(again) {
		t.Error("second EnsureKeyPair returned a different key")
	}

	// What the gateway does: load the .pub and verify a token signed with
	// the private key.
	pub, err := users.LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := users.NewIssuer(again, time.Minute, nil).Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := users.NewVerifier(pub, nil).Verify(token); err != nil || id != "user-1" {
		t.Errorf("Verify with the loaded .pub = %q, %v; want user-1", id, err)
	}
}

func TestEnsureKeyPairRaceLeavesOneKey(t *testing.T) {
	privPath := filepath.Join(t.TempDir(), "users-jwt.key")
	const replicas = 8
	var (
		wg        sync.WaitGroup
		keys      [replicas]ed25519.PrivateKey
		generated [replicas]bool
		failures  [replicas]error
	)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], generated[i], failures[i] = users.EnsureKeyPair(privPath)
		}()
	}
	wg.Wait()
	winners := 0
	for i := range replicas {
		if failures[i] != nil {
			t.Fatalf("replica %d: %v", i, failures[i])
		}
		if generated[i] {
			winners++
		}
		if !keys[i].Equal(keys[0]) {
			t.Errorf("replica %d holds a different key than replica 0", i)
		}
	}
	if winners != 1 {
		t.Errorf("%d replicas report generating the key, want 1", winners)
	}
	pub, err := users.LoadPublicKey(users.PublicKeyPath(privPath))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(keys[0].Public()) {
		t.Error("the .pub on disk does not match the private key every replica uses")
	}
}

func TestLoadKeysRejectsTheWrongFile(t *testing.T) {
	dir := t.TempDir()
	privPath := filepath.Join(dir, "users-jwt.key")
	if _, _, err := users.EnsureKeyPair(privPath); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all"), 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := users.LoadPrivateKey(filepath.Join(dir, "missing.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadPrivateKey(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := users.LoadPublicKey(filepath.Join(dir, "missing.pub")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadPublicKey(missing) = %v, want fs.ErrNotExist", err)
	}
	// Each file holds the other kind of PEM block.
	if _, err := users.LoadPublicKey(privPath); err == nil || !strings.Contains(err.Error(), `"PUBLIC KEY"`) {
		t.Errorf("LoadPublicKey(private key file) = %v, want an error naming the PUBLIC KEY block", err)
	}
	if _, err := users.LoadPrivateKey(users.PublicKeyPath(privPath)); err == nil || !strings.Contains(err.Error(), `"PRIVATE KEY"`) {
		t.Errorf("LoadPrivateKey(public key file) = %v, want an error naming the PRIVATE KEY block", err)
	}
	if _, _, err := users.EnsureKeyPair(garbage); err == nil {
		t.Error("EnsureKeyPair over a file that is not a key succeeded; it must never overwrite it")
	}
	if b, _ := os.ReadFile(garbage); string(b) != "not PEM at all" {
		t.Errorf("EnsureKeyPair changed an unreadable key file to %q", b)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func errDetail(err error) string {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return ""
}

func TestEnsureKeyPairRestoresAMissingPublicKey(t *testing.T) {
	priv := filepath.Join(t.TempDir(), "keys", "users-jwt.key")
	key, _, err := users.EnsureKeyPair(priv)
	if err != nil {
		t.Fatal(err)
	}
	// As if users crashed after publishing the private key only.
	if err := os.Remove(users.PublicKeyPath(priv)); err != nil {
		t.Fatal(err)
	}
	again, generated, err := users.EnsureKeyPair(priv)
	if err != nil || generated || !again.Equal(key) {
		t.Fatalf("EnsureKeyPair = generated %v, %v; want the same key loaded", generated, err)
	}
	pub, err := users.LoadPublicKey(users.PublicKeyPath(priv))
	if err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("public key = %v, %v; want it rewritten from the private key", pub, err)
	}
}

// What checking a customer's token costs per request: the first time
// (the signature), and every time after (remembered).
func BenchmarkVerify(b *testing.B) {
	key := newKey(b)
	token, _, err := users.NewIssuer(key, time.Hour, nil).Issue("user-1")
	if err != nil {
		b.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			if _, err := users.NewVerifier(pub, nil).Verify(token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		v := users.NewVerifier(pub, nil)
		for b.Loop() {
			if _, err := v.Verify(token); err != nil {
				b.Fatal(err)
			}
		}
	})
}
