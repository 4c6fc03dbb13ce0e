package users_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/services/users"
)

func TestPasswordsNeverPrint(t *testing.T) {
	const secret = "Secr3t-password"
	register := users.RegisterRequest{Email: "ada@example.com", Password: secret, Name: "Ada"}
	login := users.LoginRequest{Email: "ada@example.com", Password: secret}

	var printed []string
	for _, v := range []any{register, &register, login, &login, register.Password} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			printed = append(printed, fmt.Sprintf(verb, v))
		}
		var text, js bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("request", "req", v)
		slog.New(slog.NewJSONHandler(&js, nil)).Info("request", "req", v)
		printed = append(printed, text.String(), js.String())
	}
	for _, p := range printed {
		if strings.Contains(p, secret) {
			t.Errorf("printed a password: %s", p)
		}
		if !strings.Contains(p, "[REDACTED]") {
			t.Errorf("printed %s, want the password shown as [REDACTED]", p)
		}
	}

	// The wire still carries it: the server needs it.
	b, err := json.Marshal(register)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"email":"ada@example.com","password":"Secr3t-password","name":"Ada"}`; string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
}
