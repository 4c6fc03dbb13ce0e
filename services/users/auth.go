package users

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Tokens are JWTs signed with Ed25519 (alg EdDSA): the users service holds
// the private key and is the only one that can issue them; whoever holds
// the public key can check them, with no call back here.
//
// How the gateway gets the public key: on its first start, users generates
// a key pair if its private key file (-jwt-key / JWT_PRIVATE_KEY_FILE) does
// not exist, and writes the public key beside it, "users-jwt.key" giving
// "users-jwt.pub" (PublicKeyPath). The gateway reads that file, named by
// its -jwt-public-key / JWT_PUBLIC_KEY_FILE, with LoadPublicKey and checks
// every request with a Verifier. That is enough on one host. In production
// neither service generates anything: both files are mounted from a secret
// (the private key into users only, the public key into the gateway), and
// rotating the key means replacing the secret and restarting both.
//
// The gateway imports this package for Verifier and LoadPublicKey only:
// they are the users service's client code for authentication.

// TokenIssuer is the issuer (iss) and sole audience (aud) of every token.
const TokenIssuer = "glasshouse"

// DefaultTokenTTL is how long a token is valid when NewIssuer is given no
// TTL: long enough for a shopping session, short enough that a leaked
// token is soon worthless, since tokens cannot be revoked.
const DefaultTokenTTL = time.Hour

// Issuer signs tokens for users who logged in.
type Issuer struct {
	key ed25519.PrivateKey
	ttl time.Duration
	now func() time.Time
}

// NewIssuer returns an Issuer signing with key, each token valid for ttl
// (DefaultTokenTTL if ttl <= 0) from now(); a nil now means time.Now.
func NewIssuer(key ed25519.PrivateKey, ttl time.Duration, now func() time.Time) *Issuer {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Issuer{key: key, ttl: ttl, now: now}
}

// Issue returns a signed token naming userID as its subject, and the
// instant it expires.
func (i *Issuer) Issue(userID string) (token string, expiresAt time.Time, err error) {
	now := i.now()
	// JWT times are whole seconds; returning the truncated expiry makes
	// expires_at in the response the exact exp inside the token.
	exp := jwt.NewNumericDate(now.Add(i.ttl))
	claims := jwt.RegisteredClaims{
		Subject:   userID,
		Issuer:    TokenIssuer,
		Audience:  jwt.ClaimStrings{TokenIssuer},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: exp,
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(i.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return token, exp.UTC(), nil
}

// Verifier checks tokens with the public key. It is safe for concurrent
// use.
//
// A token that passed is remembered, by its whole text, with its subject
// and expiry: a customer's every request carries the same token, and
// checking its Ed25519 signature again was a sixth of the gateway's CPU
// per checkout. A remembered token is still refused once it expires.
// Only tokens that passed are remembered: a client sending forged ones
// pays for every check and evicts nothing.
type Verifier struct {
	key    ed25519.PublicKey
	parser *jwt.Parser
	now    func() time.Time
	passed *lru.Cache[string, verified]
}

// verified is what a token that passed said.
type verified struct {
	subject string
	expires time.Time
}

// VerifiedTokens bounds the tokens a Verifier remembers, least recently
// used forgotten first: about 300 bytes each, 3 MiB in all.
const VerifiedTokens = 10_000

// NewVerifier returns a Verifier for tokens signed by key's private half,
// judging expiry by now(); a nil now means time.Now.
func NewVerifier(key ed25519.PublicKey, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	passed, err := lru.New[string, verified](VerifiedTokens)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &Verifier{key: key, now: now, passed: passed, parser: jwt.NewParser(
		// Only EdDSA: the algorithm named in a token's header is chosen by
		// whoever made the token, so trusting it would let "none" or HS256
		// (keyed with our public key, which is no secret) through.
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(TokenIssuer),
		jwt.WithAudience(TokenIssuer),
		jwt.WithExpirationRequired(),
		// No leeway and no iat or nbf check: only exp is compared with
		// the clock, so skew between hosts moves expiry by the skew and
		// never rejects a fresh token.
		jwt.WithTimeFunc(now),
	)}
}

// Verify checks token's signature, algorithm, issuer, audience and expiry,
// and returns the user ID it names. It fails with Unauthenticated
// token_expired for a token past its expiry, and Unauthenticated
// invalid_token for any other fault; the detail does not say which check
// failed, but the wrapped cause (logged, never sent) does.
func (v *Verifier) Verify(token string) (userID string, err error) {
	if seen, ok := v.passed.Get(token); ok {
		// As jwt's own check: expired once the clock reaches exp.
		if !v.now().Before(seen.expires) {
			return "", errs.E(errs.Unauthenticated, CodeTokenExpired, "token expired at %s", seen.expires.UTC().Format(time.RFC3339))
		}
		return seen.subject, nil
	}
	var claims jwt.RegisteredClaims
	_, err = v.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return v.key, nil })
	switch {
	// The signature is checked before the claims, so only a token we
	// issued can be reported as expired.
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", errs.Wrap(errs.Unauthenticated, CodeTokenExpired, err, "token expired at %s", claims.ExpiresAt.UTC().Format(time.RFC3339))
	case err != nil:
		return "", errs.Wrap(errs.Unauthenticated, CodeInvalidToken, err, "token is not valid")
	case claims.Subject == "":
		return "", errs.E(errs.Unauthenticated, CodeInvalidToken, "token names no user")
	}
	v.passed.Add(token, verified{subject: claims.Subject, expires: claims.ExpiresAt.Time})
	return claims.Subject, nil
}

// LoadPrivateKey reads an Ed25519 private key from a PEM "PRIVATE KEY"
// (PKCS#8) file, as written by EnsureKeyPair or `openssl genpkey -algorithm
// ed25519`. A missing file's error matches fs.ErrNotExist.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	return loadKey[ed25519.PrivateKey](path, "private", "PRIVATE KEY", x509.ParsePKCS8PrivateKey)
}

// LoadPublicKey reads an Ed25519 public key from a PEM "PUBLIC KEY" (PKIX)
// file, such as the one EnsureKeyPair writes at PublicKeyPath.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	return loadKey[ed25519.PublicKey](path, "public", "PUBLIC KEY", x509.ParsePKIXPublicKey)
}

// loadKey reads the PEM block of blockType at path, parses it, and checks
// that it holds an Ed25519 key K; which ("private" or "public") names it
// in errors.
func loadKey[K ed25519.PrivateKey | ed25519.PublicKey](path, which, blockType string, parse func([]byte) (any, error)) (K, error) {
	der, err := readPEM(path, blockType)
	if err != nil {
		return nil, err
	}
	key, err := parse(der)
	if err != nil {
		return nil, fmt.Errorf("parse %s key %s: %w", which, path, err)
	}
	ed, ok := key.(K)
	if !ok {
		return nil, fmt.Errorf("%s key %s is %T, want Ed25519", which, path, key)
	}
	return ed, nil
}

func readPEM(path, blockType string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // an *fs.PathError: it names the file, and matches fs.ErrNotExist
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != blockType {
		return nil, fmt.Errorf("%s holds no PEM %q block", path, blockType)
	}
	return block.Bytes, nil
}

// PublicKeyPath is where EnsureKeyPair writes the public key for the
// private key at privPath: beside it, ".key" replaced by ".pub".
func PublicKeyPath(privPath string) string {
	return strings.TrimSuffix(privPath, ".key") + ".pub"
}

// EnsureKeyPair loads the private key at privPath. If there is no file
// there, it generates a key pair, writes the private key to privPath
// (0600) and the public key to PublicKeyPath(privPath) (0644), creating
// the directory, and reports true.
//
// Replicas sharing a directory may start at the same moment: each then
// generates a key, but only the first to publish its private key wins,
// and the others load the winner's key, so every replica signs with the
// same key and the public key on disk matches it.
func EnsureKeyPair(privPath string) (ed25519.PrivateKey, bool, error) {
	key, err := LoadPrivateKey(privPath)
	if err == nil {
		// A crash between publishing the private key and the public one
		// would otherwise leave readers waiting for the .pub forever.
		return key, false, ensurePublicKey(key, PublicKeyPath(privPath))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	pub, priv, err := ed25519.GenerateKey(nil) // nil: crypto/rand
	if err != nil {
		return nil, false, fmt.Errorf("generate key pair: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, false, fmt.Errorf("encode public key: %w", err)
	}
	dir := filepath.Dir(privPath)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, false, fmt.Errorf("create key directory: %w", err)
	}
	privTmp, err := writeTemp(dir, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600)
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(privTmp)
	pubTmp, err := writeTemp(dir, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(pubTmp)

	// A hard link publishes the complete file in one step and fails if
	// privPath exists: a reader never sees half a key, and a replica that
	// lost the race learns it here.
	if err := os.Link(privTmp, privPath); errors.Is(err, fs.ErrExist) {
		key, err := LoadPrivateKey(privPath)
		return key, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("write private key: %w", err)
	}
	// Only the winner writes the public key, so it always matches.
	if err := os.Rename(pubTmp, PublicKeyPath(privPath)); err != nil {
		return nil, false, fmt.Errorf("write public key: %w", err)
	}
	return priv, true, nil
}

// ensurePublicKey writes key's public half to path unless it is there.
func ensurePublicKey(key ed25519.PrivateKey, path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	tmp, err := writeTemp(filepath.Dir(path), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	return nil
}

// writeTemp writes data to a new file in dir with mode perm and returns
// its name. It is synced, so a crash cannot leave a linked but empty key.
func writeTemp(dir string, data []byte, perm fs.FileMode) (name string, err error) {
	f, err := os.CreateTemp(dir, ".key-*.tmp")
	if err != nil {
		return "", fmt.Errorf("write key: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return "", errors.Join(fmt.Errorf("write key: %w", err), f.Close())
	}
	if _, err := f.Write(data); err != nil {
		return "", errors.Join(fmt.Errorf("write key: %w", err), f.Close())
	}
	if err := f.Sync(); err != nil {
		return "", errors.Join(fmt.Errorf("write key: %w", err), f.Close())
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write key: %w", err)
	}
	return f.Name(), nil
}

// PublishPublicKey copies the public key that users keeps beside its
// private key (from) to to, when to is another file: services that check
// tokens can then mount a volume that holds the public key and nothing
// else, instead of the one where the signing key lives. The copy is
// written to a temporary file and renamed into place, so a reader waiting
// for the file never reads half a key, and replicas publishing at the same
// moment leave one whole file.
func PublishPublicKey(from, to string) (err error) {
	if to == "" || filepath.Clean(to) == filepath.Clean(from) {
		return nil
	}
	// Parse before publishing: a damaged key must not reach the readers.
	if _, err := LoadPublicKey(from); err != nil {
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
