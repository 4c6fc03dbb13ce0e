package loadgen

import (
	"flag"
	"io"
	"maps"
	"strings"
	"testing"
)

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  Mix
		error string
	}{
		{in: "browse=60,login=10,checkout=20,orders=10", want: DefaultMix()},
		{in: " checkout = 1 , browse=3", want: Mix{Checkout: 1, Browse: 3}},
		{in: "browse=1,orders=0", want: Mix{Browse: 1, Orders: 0}},
		{in: "browse", error: `"browse" is not op=weight`},
		{in: "browse=lots", error: "weight of browse is not an integer"},
		{in: "browse=1,browse=2", error: "browse given twice"},
		{in: "search=1", error: `unknown operation "search"`},
		{in: "browse=-1,login=2", error: "weight of browse is negative"},
		{in: "browse=0", error: "every weight is zero"},
		{in: "", error: "is not op=weight"},
	} {
		got, err := ParseMix(tc.in)
		if tc.error != "" {
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("ParseMix(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.error)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("ParseMix(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestMixIsAFlag(t *testing.T) {
	mix := DefaultMix()
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&mix, "mix", "operation weights")

	if err := fs.Parse([]string{"-mix", "orders=2,browse=1"}); err != nil {
		t.Fatal(err)
	}
	if got, want := mix.String(), "browse=1,orders=2"; got != want {
		t.Errorf("after -mix orders=2,browse=1: %s, want %s", got, want)
	}
	if err := fs.Parse([]string{"-mix", "browse=x"}); err == nil {
		t.Error("-mix browse=x was accepted")
	}
}

func TestPickFollowsTheWeights(t *testing.T) {
	// An operation of weight zero is never drawn, however many draws.
	mix := Mix{Browse: 1, Login: 0, Checkout: 1}
	seen := map[Op]int{}
	for range 1000 {
		seen[mix.pick()]++
	}
	if seen[Login] != 0 || seen[Orders] != 0 || seen[Browse] == 0 || seen[Checkout] == 0 {
		t.Errorf("drawn %v; want browse and checkout only", seen)
	}
}
