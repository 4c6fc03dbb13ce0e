package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLatestFix(t *testing.T) {
	r := func(events ...[2]string) osvRange {
		var out osvRange
		out.Type = "SEMVER"
		for _, e := range events {
			out.Events = append(out.Events, struct {
				Introduced string `json:"introduced"`
				Fixed      string `json:"fixed"`
			}{e[0], e[1]})
		}
		return out
	}
	tests := []struct {
		name   string
		ranges []osvRange
		want   string
	}{
		{"fixed once", []osvRange{r([2]string{"0", ""}, [2]string{"", "1.2.3"})}, "1.2.3"},
		{"latest of two branches", []osvRange{r([2]string{"0", ""}, [2]string{"", "1.25.9"}, [2]string{"1.26.0", ""}, [2]string{"", "1.26.2"})}, "1.26.2"},
		{"semver, not string, order", []osvRange{r([2]string{"0", ""}, [2]string{"", "1.9.0"}, [2]string{"1.10.0", ""}, [2]string{"", "1.10.1"})}, "1.10.1"},
		{"never fixed", []osvRange{r([2]string{"0", ""})}, ""},
		{"reintroduced after the fix", []osvRange{r([2]string{"0", ""}, [2]string{"", "1.0.0"}, [2]string{"2.0.0", ""})}, ""},
	}
	for _, tt := range tests {
		if got := latestFix(tt.ranges); got != tt.want {
			t.Errorf("%s: latestFix = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestBuildWritesTheLayoutGovulncheckReads(t *testing.T) {
	src := t.TempDir()
	entry := func(id, module, fixed string) string {
		return `{"id":"` + id + `","modified":"2026-01-02T03:04:05Z","affected":[{"package":{"name":"` + module +
			`","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"` + fixed + `"}]}]}]}`
	}
	for id, body := range map[string]string{
		"GO-2026-0001": entry("GO-2026-0001", "example.com/a", "1.2.0"),
		"GO-2026-0002": entry("GO-2026-0002", "stdlib", "1.26.9"),
	} {
		if err := os.WriteFile(filepath.Join(src, id+".json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "db")
	if err := run([]string{"build", "-osv", src, "-out", out}, nil, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var modules []moduleMeta
	readJSON(t, filepath.Join(out, "index", "modules.json"), &modules)
	if len(modules) != 2 || modules[0].Path != "example.com/a" || modules[0].Vulns[0].Fixed != "1.2.0" || modules[1].Path != "stdlib" {
		t.Errorf("modules.json = %+v", modules)
	}
	var meta struct{ Modified string }
	readJSON(t, filepath.Join(out, "index", "db.json"), &meta)
	if meta.Modified != "2026-01-02T03:04:05Z" {
		t.Errorf("db.json modified = %q", meta.Modified)
	}
	if b, err := os.ReadFile(filepath.Join(out, "ID", "GO-2026-0002.json")); err != nil || !strings.Contains(string(b), `"stdlib"`) {
		t.Errorf("ID/GO-2026-0002.json: %s, %v", b, err)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestCheckFailsOnlyOnReachableFindingsNotExcepted(t *testing.T) {
	stream := `{"config":{"go_version":"go1.26.8","db":"file:///db"}}
{"finding":{"osv":"GO-2026-0002","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http"}]}}
{"finding":{"osv":"GO-2026-0003","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Get"},{"module":"example.com/us","package":"example.com/us","function":"main","position":{"filename":"main.go","line":7}}]}}
`
	exceptions := filepath.Join(t.TempDir(), "exceptions")
	write := func(s string) {
		if err := os.WriteFile(exceptions, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func() error {
		return run([]string{"check", "-exceptions", exceptions}, strings.NewReader(stream), &bytes.Buffer{})
	}

	write("# only the imported-but-not-called one\nGO-2026-0002 stdlib@v1.26.8 not called anyway\n")
	if err := check(); err == nil {
		t.Error("a reachable finding without an exception passed")
	}
	write("GO-2026-0003 stdlib@v1.26.7 an older version\n")
	if err := check(); err == nil {
		t.Error("an exception for another version covered the finding")
	}
	write("GO-2026-0003 stdlib@v1.26.8 fixed by the Go upgrade\n")
	if err := check(); err != nil {
		t.Errorf("an excepted finding failed: %v", err)
	}
	write("GO-2026-0003 stdlib@v1.26.8\n")
	if err := check(); err == nil {
		t.Error("an exception without a reason was accepted")
	}
	if err := run([]string{"check"}, strings.NewReader(""), &bytes.Buffer{}); err == nil {
		t.Error("no govulncheck output passed as nothing found")
	}
}
