package users_test

import (
	"context"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/services/users"
)

func TestNamesAndEmailsRejectControlAndFormatCharacters(t *testing.T) {
	f := newFixture(t, testenv.SQLite)
	ctx := context.Background()
	for _, tt := range []struct {
		name, email, userName, code string
	}{
		{"NUL in a name", "a@example.com", "Ada\x00", users.CodeInvalidName},
		{"newline in a name", "a@example.com", "Ada\nLovelace", users.CodeInvalidName},
		{"tab in a name", "a@example.com", "Ada\tLovelace", users.CodeInvalidName},
		{"escape in a name", "a@example.com", "Ada\x1b[31m", users.CodeInvalidName},
		{"DEL in a name", "a@example.com", "Ada\x7f", users.CodeInvalidName},
		{"C1 control in a name", "a@example.com", "Ada\u0085Lovelace", users.CodeInvalidName},
		{"right-to-left override", "a@example.com", "Ada\u202egnp.exe", users.CodeInvalidName},
		{"left-to-right embedding", "a@example.com", "\u202aAda", users.CodeInvalidName},
		{"pop directional formatting", "a@example.com", "Ada\u202c", users.CodeInvalidName},
		{"right-to-left isolate", "a@example.com", "Ada\u2067x", users.CodeInvalidName},
		{"pop directional isolate", "a@example.com", "Ada\u2069", users.CodeInvalidName},
		{"left-to-right mark", "a@example.com", "Ada\u200e", users.CodeInvalidName},
		{"right-to-left mark", "a@example.com", "Ada\u200f", users.CodeInvalidName},
		{"zero-width space", "a@example.com", "A\u200bda", users.CodeInvalidName},
		{"zero-width joiner", "a@example.com", "A\u200dda", users.CodeInvalidName},
		{"word joiner", "a@example.com", "A\u2060da", users.CodeInvalidName},
		{"byte-order mark", "a@example.com", "A\ufeffda", users.CodeInvalidName},
		{"soft hyphen", "a@example.com", "A\u00adda", users.CodeInvalidName},
		{"line separator", "a@example.com", "Ada\u2028Lovelace", users.CodeInvalidName},
		{"invalid UTF-8", "a@example.com", "Ada\xff", users.CodeInvalidName},
		{"NUL in an email", "ada\x00@example.com", "Ada", users.CodeInvalidEmail},
		{"newline in an email", "ada@example.com\nBcc: x@evil.example", "Ada", users.CodeInvalidEmail},
		{"bidi override in an email", "ada@\u202emoc.elpmaxe", "Ada", users.CodeInvalidEmail},
		{"zero-width space in an email", "a\u200bda@example.com", "Ada", users.CodeInvalidEmail},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.Register(ctx, tt.email, password, tt.userName)
			testenv.WantError(t, err, errs.Invalid, tt.code)
		})
	}
	if n := countUsers(t, f.store); n != 0 {
		t.Errorf("%d users after refused registrations, want 0", n)
	}
}

func TestNamesAndEmailsAreStoredInNFC(t *testing.T) {
	testenv.OnEachBackend(t, testNamesAndEmailsAreStoredInNFC)
}

func testNamesAndEmailsAreStoredInNFC(t *testing.T, b testenv.Backend) {
	f := newFixture(t, b)
	ctx := context.Background()
	// "e" and a combining acute accent, and the decomposed "Å".
	decomposedName, composedName := "Ame\u0301lie A\u030angstro\u0308m", "Am\u00e9lie \u00c5ngstr\u00f6m"
	decomposedEmail, composedEmail := "  Ame\u0301lie@Example.com ", "am\u00e9lie@example.com"
	u, err := f.svc.Register(ctx, decomposedEmail, password, decomposedName)
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != composedName || u.Email != composedEmail {
		t.Errorf("registered %q <%q>; want NFC %q <%q>", u.Name, u.Email, composedName, composedEmail)
	}
	stored, err := f.svc.GetUser(ctx, u.ID)
	if err != nil || stored.Name != composedName || stored.Email != composedEmail {
		t.Errorf("stored %+v, %v; want NFC", stored, err)
	}
	// Either spelling, in any case, is the same account.
	for _, email := range []string{composedEmail, decomposedEmail, strings.ToUpper(composedEmail)} {
		if _, err := f.svc.Login(ctx, email, password); err != nil {
			t.Errorf("Login(%q) = %v; want the account registered as %q", email, err, decomposedEmail)
		}
	}
	if _, err := f.svc.Register(ctx, composedEmail, password, "Other"); errs.CodeOf(err) != users.CodeEmailTaken {
		t.Errorf("registering the composed spelling again = %v; want email_taken", err)
	}
	// Length counts characters after composition: 100 decomposed "é"
	// are 200 code points but 100 characters.
	if _, err := f.svc.Register(ctx, "long@example.com", password, strings.Repeat("e\u0301", 100)); err != nil {
		t.Errorf("100 composed characters typed decomposed: %v", err)
	}
}

func TestGetUserNeverEchoesAHugeID(t *testing.T) {
	f := newFixture(t, testenv.SQLite)
	for _, id := range []string{strings.Repeat("f", 70_000), "../" + strings.Repeat("a", 40), "a\x00b"} {
		_, err := f.svc.GetUser(context.Background(), id)
		testenv.WantError(t, err, errs.NotFound, users.CodeUserNotFound)
		if len(err.Error()) > 200 {
			t.Errorf("GetUser(%.20q): an error of %d bytes", id, len(err.Error()))
		}
	}
}
