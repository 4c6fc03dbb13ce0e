// Command vulndb builds a local copy of the Go vulnerability database for
// govulncheck -db file://DIR, from data that travels through the Go module
// proxy instead of the public vulnerability service (which the build
// machines cannot reach).
//
// The golang.org/x/vulndb module carries every published report as an
// OSV file under data/osv. The go command downloads a pinned version of it
// (checked against the checksum database like any module), and vulndb
// writes the layout govulncheck's file:// client reads:
//
//	DIR/index/db.json       {"modified": ...}
//	DIR/index/modules.json  [{"path": ..., "vulns": [{"id", "modified", "fixed"}]}]
//	DIR/ID/<id>.json        each OSV entry, byte for byte
//
// Usage:
//
//	vulndb build -version v0.0.0-20261105234957-e22db6528018 -out DIR
//	vulndb build -osv path/to/data/osv -out DIR   (OSV files already on disk)
//
// vulndb check reads govulncheck -format json on stdin and fails when the
// code calls a vulnerable function, unless the finding is named in the
// exceptions file with its reason (see check.go).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

// vulndbModule is the module that carries the OSV reports.
const vulndbModule = "golang.org/x/vulndb"

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "build":
			return runBuild(args[1:], stdout)
		case "check":
			return runCheck(args[1:], stdin, stdout)
		}
	}
	return errors.New("usage: vulndb build -version V -out DIR | vulndb check -exceptions FILE < govulncheck.json")
}

func runBuild(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("vulndb build", flag.ContinueOnError)
	version := fs.String("version", "", "version of "+vulndbModule+" to download through the module proxy")
	osvDir := fs.String("osv", "", "a directory of OSV files to index instead of downloading")
	out := fs.String("out", "", "directory to write the database to (replaced when complete)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || (*version == "") == (*osvDir == "") {
		return errors.New("build needs -out and exactly one of -version or -osv")
	}

	var asOf time.Time
	if *version != "" {
		mod, err := download(*version)
		if err != nil {
			return err
		}
		*osvDir, asOf = filepath.Join(mod.Dir, "data", "osv"), mod.Time
	}
	db, err := build(*osvDir, asOf)
	if err != nil {
		return err
	}
	if err := db.write(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "vulndb: %d entries for %d modules, as of %s, in %s\n",
		len(db.entries), len(db.modules), db.modified.Format(time.DateOnly), *out)
	return nil
}

type module struct {
	Dir   string
	Info  string // the .info file, which holds the commit time
	Time  time.Time
	Error string
}

// download fetches vulndb@version into the module cache; the go command
// verifies it against go.sum's checksum database.
func download(version string) (module, error) {
	cmd := exec.Command("go", "mod", "download", "-json", vulndbModule+"@"+version)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	var m module
	if jerr := json.Unmarshal(b, &m); jerr == nil && m.Error != "" {
		return m, fmt.Errorf("download %s@%s: %s", vulndbModule, version, m.Error)
	}
	if err != nil {
		return m, fmt.Errorf("download %s@%s: %w", vulndbModule, version, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("download %s@%s: %w", vulndbModule, version, err)
	}
	info, err := os.ReadFile(m.Info)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(info, &m); err != nil {
		return m, fmt.Errorf("%s: %w", m.Info, err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "data", "osv")); err != nil {
		return m, fmt.Errorf("%s@%s carries no data/osv: %w", vulndbModule, version, err)
	}
	return m, nil
}

// entry is the part of an OSV report the index needs.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []osvRange `json:"ranges"`
	} `json:"affected"`
}

type osvRange struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced string `json:"introduced"`
		Fixed      string `json:"fixed"`
	} `json:"events"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

// add records v once per entry: a report that lists a module in several
// blocks is fixed only from the latest of their fixes, and never when one
// block has no fix.
func (m *moduleMeta) add(v moduleVuln) {
	for i, old := range m.Vulns {
		if old.ID != v.ID {
			continue
		}
		if old.Fixed == "" || v.Fixed == "" {
			m.Vulns[i].Fixed = ""
		} else if less(old.Fixed, v.Fixed) {
			m.Vulns[i].Fixed = v.Fixed
		}
		return
	}
	m.Vulns = append(m.Vulns, v)
}

type database struct {
	modified time.Time
	entries  map[string][]byte // id -> the OSV file as published
	modules  map[string]*moduleMeta
}

// build reads every <ID>.json in dir. asOf, when later than every entry's
// modified time, is the database's: the source repository leaves the
// entries' times unset and the deployed database fills them in at publish
// time, so the commit time is the honest "data as of".
func build(dir string, asOf time.Time) (*database, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no OSV files in %s", dir)
	}
	db := &database{modified: asOf, entries: map[string][]byte{}, modules: map[string]*moduleMeta{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if e.ID == "" || filepath.Base(f) != e.ID+".json" {
			return nil, fmt.Errorf("%s: file name does not match its id %q", f, e.ID)
		}
		db.entries[e.ID] = b
		if e.Modified.After(db.modified) {
			db.modified = e.Modified
		}
		for _, a := range e.Affected {
			m := db.modules[a.Package.Name]
			if m == nil {
				m = &moduleMeta{Path: a.Package.Name, Vulns: []moduleVuln{}}
				db.modules[a.Package.Name] = m
			}
			m.add(moduleVuln{ID: e.ID, Modified: e.Modified, Fixed: latestFix(a.Ranges)})
		}
	}
	return db, nil
}

// latestFix is the version from which none of the ranges applies any
// more, or "" when there is none (never fixed, or reintroduced after its
// last fix). govulncheck reads it only to skip entries early; it decides
// from the full entry.
func latestFix(ranges []osvRange) string {
	var fixed string
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, ev := range r.Events {
			if ev.Fixed != "" && less(fixed, ev.Fixed) {
				fixed = ev.Fixed
			}
		}
	}
	if fixed == "" {
		return ""
	}
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, ev := range r.Events {
			if ev.Introduced != "" && ev.Introduced != "0" && !less(ev.Introduced, fixed) {
				return ""
			}
		}
	}
	return fixed
}

// less compares OSV versions, which carry no "v"; "" sorts first.
func less(a, b string) bool {
	if a == "" {
		return b != ""
	}
	return semver.Compare("v"+a, "v"+b) < 0
}

// write fills a fresh directory beside out and renames it into place, so
// an interrupted build never leaves a half database that looks complete.
func (db *database) write(out string) error {
	tmp := out + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	for _, d := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return err
		}
	}
	meta, err := json.Marshal(struct {
		Modified time.Time `json:"modified"`
	}{db.modified})
	if err != nil {
		return err
	}
	paths := make([]string, 0, len(db.modules))
	for p := range db.modules {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	metas := make([]*moduleMeta, 0, len(paths))
	for _, p := range paths {
		m := db.modules[p]
		slices.SortFunc(m.Vulns, func(a, b moduleVuln) int { return strings.Compare(a.ID, b.ID) })
		metas = append(metas, m)
	}
	var modules bytes.Buffer
	if err := json.NewEncoder(&modules).Encode(metas); err != nil {
		return err
	}
	files := map[string][]byte{
		filepath.Join("index", "db.json"):      meta,
		filepath.Join("index", "modules.json"): modules.Bytes(),
	}
	for id, b := range db.entries {
		files[filepath.Join("ID", id+".json")] = b
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
