package deploy_test

// The image: one Dockerfile, its build context, and what it puts in the
// final stage.

import (
	"bytes"
	"go/version"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A dockerStage is one FROM and the instructions after it.
type dockerStage struct {
	from, name   string
	instructions []instruction
}

type instruction struct {
	cmd  string // upper-cased: RUN, COPY, USER...
	args string
}

// parseDockerfile reads the parser directive `# syntax=` and the stages.
// Continuation lines are joined, and comment lines (also those inside a
// continued instruction, as Docker allows) are dropped.
func parseDockerfile(t *testing.T) (syntax string, stages []dockerStage) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if m := regexp.MustCompile(`^#\s*syntax\s*=\s*(\S+)`).FindStringSubmatch(lines[0]); m != nil {
		syntax = m[1]
	}
	var current strings.Builder
	flush := func() {
		text := strings.TrimSpace(current.String())
		current.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			var s dockerStage
			fields := strings.Fields(in.args)
			for i := 0; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					s.name = fields[i+1]
					i++
				case s.from == "":
					s.from = fields[i]
				}
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			return // ARG before the first FROM
		}
		last := &stages[len(stages)-1]
		last.instructions = append(last.instructions, in)
	}
	for _, line := range lines {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			current.WriteString(body + " ")
			continue
		}
		current.WriteString(trimmed)
		flush()
	}
	flush()
	if len(stages) == 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	return syntax, stages
}

// goModVersion is the go line of go.mod: the oldest Go that may build it.
func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

func TestDockerfilePinsItsBaseImages(t *testing.T) {
	syntax, stages := parseDockerfile(t)
	if syntax == "" {
		t.Error("Dockerfile has no `# syntax=` line: the Dockerfile frontend (RUN --mount, COPY --chown) would be whatever the builder bundles")
	} else {
		checkPinned(t, "Dockerfile syntax", syntax)
	}
	names := map[string]bool{}
	for _, s := range stages {
		if !names[s.from] { // FROM an earlier stage is not an image
			checkPinned(t, "Dockerfile FROM", s.from)
		}
		if s.name != "" {
			names[s.name] = true
		}
	}
}

func TestDockerfileBuildsWithTheGoOfGoMod(t *testing.T) {
	_, stages := parseDockerfile(t)
	want := goModVersion(t)
	found := false
	for _, s := range stages {
		repo, tag, _ := imageRef(s.from)
		if path.Base(repo) != "golang" {
			continue
		}
		found = true
		// The golang image sets GOTOOLCHAIN=local: an older Go than go.mod
		// asks for fails the build instead of fetching a newer one.
		have, _, _ := strings.Cut(tag, "-")
		if !version.IsValid("go"+have) || version.Compare("go"+have, "go"+want) < 0 {
			t.Errorf("build stage %s: Go %q is older than go.mod's go %s (or not a version)", s.from, have, want)
		}
		if version.Lang("go"+have) != version.Lang("go"+want) {
			t.Errorf("build stage %s: Go %s is not the Go %s release line that go.mod names", s.from, have, version.Lang("go"+want))
		}
		var build string
		for _, in := range s.instructions {
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				build = in.args
			}
		}
		for _, must := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "./cmd/..."} {
			if !strings.Contains(build, must) {
				t.Errorf("the go build step lacks %q: %s", must, build)
			}
		}
	}
	if !found {
		t.Error("no build stage FROM a golang image")
	}
}

func TestDockerfileRunsAsNonRoot(t *testing.T) {
	_, stages := parseDockerfile(t)
	final := stages[len(stages)-1]
	user := ""
	for _, in := range final.instructions {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	name, _, _ := strings.Cut(user, ":")
	if name == "" || name == "root" || name == "0" {
		t.Errorf("the final stage must end as a non-root user, stated with USER; it has USER %q", user)
	}
	// Kubernetes' runAsNonRoot can verify only a numeric user.
	if _, err := strconv.Atoi(name); err != nil {
		t.Errorf("USER %q: give the numeric UID, so that runAsNonRoot can check it", user)
	}
}

// imagePrograms lists the absolute paths of the programs that the final
// stage copies in: its own files, and every cmd/ binary from the
// directory the build stage's `go build -o` writes to.
func imagePrograms(t *testing.T) map[string]bool {
	t.Helper()
	_, stages := parseDockerfile(t)
	binDirs := map[string]string{} // stage name -> go build output directory
	for _, s := range stages {
		for _, in := range s.instructions {
			if m := regexp.MustCompile(`go build .*-o (\S+/) `).FindStringSubmatch(in.args); in.cmd == "RUN" && m != nil {
				binDirs[s.name] = m[1]
			}
		}
	}
	have := map[string]bool{}
	for _, in := range stages[len(stages)-1].instructions {
		if in.cmd != "COPY" {
			continue
		}
		var from string
		var paths []string
		for _, f := range strings.Fields(in.args) {
			if v, ok := strings.CutPrefix(f, "--from="); ok {
				from = v
			} else if !strings.HasPrefix(f, "--") {
				paths = append(paths, f)
			}
		}
		if len(paths) != 2 {
			continue
		}
		src, dst := paths[0], paths[1]
		switch {
		case binDirs[from] != "" && src == binDirs[from] && strings.HasSuffix(dst, "/"):
			for _, p := range programs(t) {
				have[dst+p] = true
			}
		case !strings.HasSuffix(src, "/"):
			if strings.HasSuffix(dst, "/") {
				dst += path.Base(src)
			}
			have[dst] = true
		}
	}
	return have
}

func TestDockerignoreKeepsWhatTheBuildNeeds(t *testing.T) {
	patterns := dockerignore(t)
	for _, local := range []string{".git", "bin", "run", "data", "bin/tools/consul-v1.14.0", "run/logs/users-1.log"} {
		if !ignored(patterns, local) {
			t.Errorf(".dockerignore lets %s into the build context", local)
		}
	}
	// Every file of every package the binaries are built from, go.mod and
	// go.sum must reach the builder, or `go build ./cmd/...` fails there.
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}{{end}}`,
		"./cmd/...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, f := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(abs, f)
		if err != nil {
			t.Fatal(err)
		}
		needed = append(needed, filepath.ToSlash(rel))
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %v: the check would prove nothing", needed)
	}
	for _, f := range needed {
		if ignored(patterns, f) {
			t.Errorf(".dockerignore excludes %s, which `go build ./cmd/...` needs", f)
		}
	}
}

// dockerignore reads the patterns of .dockerignore, in order.
func dockerignore(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	return patterns
}

// ignored tells whether Docker leaves file out of the build context: the
// last pattern that matches the file or one of its parent directories
// decides, and a leading ! includes again. It covers the syntax
// .dockerignore files use (*, ?, ** and !), not character classes.
func ignored(patterns []string, file string) bool {
	excluded := false
	for _, p := range patterns {
		include := strings.HasPrefix(p, "!")
		p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		match := regexp.MustCompile(re.String())
		for dir := file; dir != "." && dir != "/"; dir = path.Dir(dir) {
			if match.MatchString(dir) {
				excluded = !include
				break
			}
		}
	}
	return excluded
}
