package ident

import (
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"GH-MUG-01", true},
		{"ord_0123456789abcdef0123456789abcdef", true},
		{"6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f", true},
		{"a", true},
		{strings.Repeat("a", MaxLen), true},
		{strings.Repeat("a", MaxLen+1), false},
		{"", false},
		{".", false},
		{"..", false},
		{"a.b", false},
		{"-a", false},
		{"_a", false},
		{"a/b", false},
		{"a b", false},
		{"a%2Fb", false},
		{"é", false},
		{"a\x00", false},
		{"a\u202e", false},
	} {
		if got := Valid(tc.id); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestCheckNamesTheKindAndBoundsTheEcho(t *testing.T) {
	huge := strings.Repeat("x", 70_000) + "/.."
	err := SKU(huge)
	if errs.KindOf(err) != errs.Invalid || errs.CodeOf(err) != "invalid_sku" {
		t.Fatalf("SKU(huge) = %v, want invalid/invalid_sku", err)
	}
	if n := len(err.Error()); n > 300 {
		t.Errorf("error message is %d bytes; a rejected value must not be echoed whole", n)
	}
	if !strings.Contains(err.Error(), "70003 bytes") {
		t.Errorf("error %q should say how long the value was", err)
	}
	if err := OrderID("ord_1"); err != nil {
		t.Errorf("OrderID(ord_1) = %v", err)
	}
	if errs.CodeOf(OrderID("..")) != "invalid_order_id" || errs.CodeOf(UserID("")) != "invalid_user_id" {
		t.Error("codes must name the identifier")
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{"GH-MUG-01", "..", "", "a\x00", strings.Repeat("z", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !Valid(s) {
			if err := Check("sku", s); err == nil || len(err.Error()) > 400 {
				t.Fatalf("Check(%q) = %v", s, err)
			}
			return
		}
		// A valid identifier is a path segment as it stands.
		if strings.ContainsAny(s, "./%?#\\ ") || len(s) > MaxLen {
			t.Fatalf("Valid(%q) but it is not a safe path segment", s)
		}
	})
}
