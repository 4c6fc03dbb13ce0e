package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// govulncheck has no way to accept a known finding, so check reads its
// JSON stream and decides. Only findings whose trace reaches a function
// count (the code calls the vulnerable symbol); a vulnerable package that
// is imported but never called is listed, not failed.
//
// The exceptions file names each accepted finding on one line:
//
//	GO-2026-6617 stdlib@v1.26.8 the reason, in words
//
// An exception covers one ID at one module version, so an upgrade that is
// still vulnerable, or a new finding, fails again.

type message struct {
	Config *struct {
		GoVersion string `json:"go_version"`
		DB        string `json:"db"`
		DBModTime string `json:"db_last_modified"`
	} `json:"config"`
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
			Receiver string `json:"receiver"`
			Position *struct {
				Filename string `json:"filename"`
				Line     int    `json:"line"`
			} `json:"position"`
		} `json:"trace"`
	} `json:"finding"`
}

type finding struct {
	id, module, fixed string
	symbol, caller    string // the vulnerable function, and the first call of ours on the way to it
}

func runCheck(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("vulndb check", flag.ContinueOnError)
	exceptionsFile := fs.String("exceptions", "", "file naming the accepted findings, one per line: ID MODULE@VERSION REASON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	exceptions := map[string]string{}
	if *exceptionsFile != "" {
		var err error
		if exceptions, err = readExceptions(*exceptionsFile); err != nil {
			return err
		}
	}

	called := map[string]finding{} // key: ID MODULE@VERSION
	imported := map[string]bool{}
	var configured bool
	dec := json.NewDecoder(stdin)
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading govulncheck's JSON: %w", err)
		}
		if c := m.Config; c != nil {
			configured = true
			fmt.Fprintf(stdout, "govulncheck: %s, database %s (as of %s)\n", c.GoVersion, c.DB, c.DBModTime)
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 {
			continue
		}
		top := f.Trace[0]
		if top.Function == "" {
			imported[f.OSV] = true
			continue
		}
		key := f.OSV + " " + top.Module + "@" + top.Version
		if _, seen := called[key]; seen {
			continue
		}
		symbol := top.Package + "." + top.Function
		if top.Receiver != "" {
			symbol = top.Package + "." + strings.TrimPrefix(top.Receiver, "*") + "." + top.Function
		}
		var caller string
		if last := f.Trace[len(f.Trace)-1]; last.Position != nil {
			caller = fmt.Sprintf("%s:%d", last.Position.Filename, last.Position.Line)
		}
		called[key] = finding{id: f.OSV, module: top.Module + "@" + top.Version, fixed: f.FixedVersion, symbol: symbol, caller: caller}
	}

	if !configured {
		// An empty stream would otherwise pass as "nothing found".
		return errors.New("no govulncheck output on stdin")
	}
	keys := make([]string, 0, len(called))
	for k := range called {
		keys = append(keys, k)
		delete(imported, called[k].id)
	}
	slices.Sort(keys)
	var failed int
	for _, k := range keys {
		f := called[k]
		reason, ok := exceptions[k]
		verdict := "REACHABLE, not excepted"
		if ok {
			verdict = "excepted: " + reason
		} else {
			failed++
		}
		fmt.Fprintf(stdout, "  %s in %s (fixed in %s): calls %s from %s\n    %s\n", f.id, f.module, f.fixed, f.symbol, f.caller, verdict)
	}
	for k := range exceptions {
		if _, ok := called[k]; !ok {
			fmt.Fprintf(stdout, "  note: exception %q no longer matches a finding; remove it\n", k)
		}
	}
	fmt.Fprintf(stdout, "govulncheck: %d reachable (%d excepted), %d more in imported code that is never called\n",
		len(called), len(called)-failed, len(imported))
	if failed > 0 {
		return fmt.Errorf("%d reachable known vulnerabilities are not excepted", failed)
	}
	return nil
}

func readExceptions(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	exceptions := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 || !strings.Contains(fields[1], "@") {
			return nil, fmt.Errorf("%s:%d: want ID MODULE@VERSION REASON, got %q", path, n, line)
		}
		exceptions[fields[0]+" "+fields[1]] = strings.Join(fields[2:], " ")
	}
	return exceptions, sc.Err()
}
