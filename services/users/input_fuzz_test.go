package users

import (
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzNamesAndEmails: whatever a client sends, a name or an email that
// passes validation is valid UTF-8 in NFC, within its length, and holds no
// control or format character.
func FuzzNamesAndEmails(f *testing.F) {
	for _, s := range []string{"Ada", " Ame\u0301lie ", "Ada\u202egnp.exe", "a\x00b", "\xff", "ada@example.com", "A\u200bda@x", "e\u0301@\u212b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		check := func(what, v string, maxRunes int) {
			if !utf8.ValidString(v) || !norm.NFC.IsNormalString(v) || utf8.RuneCountInString(v) > maxRunes {
				t.Fatalf("%s %q accepted: not NFC UTF-8 within %d characters", what, v, maxRunes)
			}
			for _, r := range v {
				if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
					t.Fatalf("%s %q accepted with %U", what, v, r)
				}
			}
		}
		if name := normalizeName(s); validateName(name) == nil {
			check("name", name, maxNameChars)
		}
		if email := normalizeEmail(s); validateEmail(email) == nil {
			check("email", email, maxEmailBytes)
			if normalizeEmail(email) != email {
				t.Fatalf("email %q is not in its own canonical form", email)
			}
		}
	})
}
