package users

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/fuzzcheck"
	"github.com/golang-jwt/jwt/v5"
)

// The fuzzed tokens are signed with a fixed key at a fixed time, so a
// committed corpus file means the same token on every run.
var (
	fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	fuzzNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
)

// fuzzTokens are the tokens signed with fuzzKey, by the subject they name.
func fuzzTokens(tb testing.TB) map[string]string {
	tb.Helper()
	issue := func(ttl time.Duration, at time.Time, subject string) string {
		token, _, err := NewIssuer(fuzzKey, ttl, func() time.Time { return at }).Issue(subject)
		if err != nil {
			tb.Fatal(err)
		}
		return token
	}
	return map[string]string{
		"user-1":   issue(time.Hour, fuzzNow, "user-1"),
		"expired":  issue(time.Minute, fuzzNow.Add(-time.Hour), "expired"),
		"":         issue(time.Hour, fuzzNow, ""),
		"ünïcode/": issue(time.Hour, fuzzNow, "ünïcode/"),
	}
}

// FuzzVerify checks that only a token we signed is ever accepted (or
// called expired), and that every refusal is a typed Unauthenticated
// error that does not echo the token.
func FuzzVerify(f *testing.F) {
	signed := fuzzTokens(f)
	for _, token := range signed {
		f.Add(token)
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	forged, _, _ := NewIssuer(other, time.Hour, func() time.Time { return fuzzNow }).Issue("user-1")
	claims := jwt.MapClaims{"sub": "user-1", "iss": TokenIssuer, "aud": TokenIssuer, "exp": fuzzNow.Add(time.Hour).Unix()}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	// HS256 keyed with the public key, which is no secret.
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(fuzzKey.Public().(ed25519.PublicKey)))
	for _, seed := range []string{forged, none, hs, "", ".", "..", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30.", strings.Repeat("A", 5000)} {
		f.Add(seed)
	}
	// The payloads we signed: a token is ours when its payload is one.
	ours := map[string]bool{}
	for _, token := range signed {
		ours[payload(token)] = true
	}
	verifier := NewVerifier(fuzzKey.Public().(ed25519.PublicKey), func() time.Time { return fuzzNow })

	f.Fuzz(func(t *testing.T, token string) {
		userID, err := verifier.Verify(token)
		if err != nil {
			e := fuzzcheck.CallerError(t, err, errs.Unauthenticated)
			if e.Code != CodeInvalidToken && e.Code != CodeTokenExpired {
				t.Fatalf("code %q, want %s or %s", e.Code, CodeInvalidToken, CodeTokenExpired)
			}
			if len(token) >= 16 && strings.Contains(e.Detail, token) {
				t.Fatalf("detail echoes the token: %q", e.Detail)
			}
			if e.Code == CodeTokenExpired && !ours[payload(token)] {
				t.Fatalf("a token we never signed is reported as expired: %q", token)
			}
			if userID != "" {
				t.Fatalf("refused token but returned user %q", userID)
			}
			return
		}
		if !ours[payload(token)] {
			t.Fatalf("accepted a token we never signed, for user %q: %q", userID, token)
		}
		if _, named := signed[userID]; !named || userID == "" || userID == "expired" {
			t.Fatalf("accepted token names user %q, which no valid token we signed names", userID)
		}
	})
}

// payload is a token's decoded claims segment, or "" when it has none.
func payload(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	return string(b)
}

// FuzzDecodeRequests runs every request decoder on the input, as a body
// (sign-up, login) or a path value (GetUser): a refusal is the caller's
// fault, a decoded request survives the trip to the users service, and a
// password never reaches a log line or a formatted value.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []string{
		`{"email":"ada@example.com","password":"correct horse battery","name":"Ada"}`,
		`{"email":"ada@example.com","password":"correct horse battery"}`,
		`{"email":"a@b","password":12345678}`,
		`{"email":"a@b","password":"x","admin":true}`,
		`{"email":"\u0000@\u202e","password":"\ud800\udc00","name":"\u0007"}`,
		`{"password":"` + strings.Repeat("p", 3000) + `"}`,
		`null`,
		``,
		"3f1c0a52-5e2b-4d8e-9a0e-1b2c3d4e5f60",
		"..",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := fuzzcheck.Request("GET", "/users/x", nil)
		r.SetPathValue("id", string(body))
		if v, err := API.Decode("GetUser", r, nil); err != nil {
			fuzzcheck.CallerError(t, err, errs.Invalid, errs.NotFound)
		} else if got := v.(GetUserRequest).ID; got != string(body) {
			t.Fatalf("decoded ID %q from path value %q", got, body)
		}

		decode := func(b []byte) (RegisterRequest, error) {
			v, err := API.Decode("Register", fuzzcheck.Request("POST", "/users", b), nil)
			req, _ := v.(RegisterRequest)
			return req, err
		}
		if reg, err := decode(body); err != nil {
			fuzzcheck.CallerError(t, err, errs.Invalid, errs.TooLarge)
		} else {
			fuzzcheck.RoundTrip(t, reg, decode)
			checkRedacted(t, string(reg.Password), reg, reg.Email+reg.Name)
		}

		v, err := API.Decode("Login", fuzzcheck.Request("POST", "/login", body), nil)
		if err != nil {
			fuzzcheck.CallerError(t, err, errs.Invalid, errs.TooLarge)
			return
		}
		login := v.(LoginRequest)
		fuzzcheck.RoundTrip(t, login, func(b []byte) (LoginRequest, error) {
			v, err := API.Decode("Login", fuzzcheck.Request("POST", "/login", b), nil)
			req, _ := v.(LoginRequest)
			return req, err
		})
		checkRedacted(t, string(login.Password), login, login.Email)
	})
}

// checkRedacted fails when password appears in req formatted or logged
// (others is the request's other text, where it may appear by chance).
func checkRedacted(t *testing.T, password string, req any, others string) {
	t.Helper()
	if len(password) < 6 || strings.Contains(others, password) || strings.Contains(redacted, password) {
		return
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("request", "req", req)
	for _, out := range []string{fmt.Sprintf("%v %+v %s", req, req, req), logged.String()} {
		if strings.Contains(out, password) {
			t.Fatalf("password %q shows in %s", password, out)
		}
	}
}
