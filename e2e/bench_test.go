package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/bench"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
)

// `make bench`, shortened: the bare chain and two real stacks (traced and
// not) each measured under the closed loop. Every checkout succeeds, every
// process of each target is charged CPU, the report is written in its
// three forms, and each service's CPU profile is a real one. The figures
// themselves are for the README, not for a test to judge.
func TestBenchComparesGlasshouseWithTheBareChain(t *testing.T) {
	root := testenv.RepoRoot(t)
	chain := filepath.Join(t.TempDir(), "benchchain")
	build := exec.Command("go", "build", "-o", chain, "./bench/chain")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./bench/chain: %v\n%s", err, out)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, testenv.Binary(t, "glasshouse"), "bench", "-root", root, "-chain", chain,
		"-connections", "4", "-warmup", "1s", "-duration", "3s", "-half-load", "2s", "-profile", "-report-dir", dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("glasshouse bench: %v\n%s", err, out.String())
	}
	t.Logf("glasshouse bench:\n%s", out.String())

	b, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	want := []string{"bare chain", "glasshouse", "glasshouse, tracing off"}
	if len(rep.Results) != len(want) {
		t.Fatalf("%d results, want %v", len(rep.Results), want)
	}
	for i, res := range rep.Results {
		if res.Name != want[i] {
			t.Errorf("result %d is %q, want %q", i, res.Name, want[i])
		}
		if res.Checkouts == 0 || res.Failed != 0 {
			t.Errorf("%s: %d checkouts, %d failed %v; want every checkout to succeed", res.Name, res.Checkouts, res.Failed, res.Errors)
		}
		if h := res.HalfLoad; h == nil || h.Rate != res.PerSecond()/2 || h.Checkouts == 0 || h.Failed != 0 {
			t.Errorf("%s: open loop at half of %.0f/s: %+v; want every checkout to succeed", res.Name, res.PerSecond(), h)
		}
		names := map[string]bool{}
		for _, u := range res.Usage {
			names[strings.SplitN(u.Name, "/", 2)[0]] = true
			if u.PeakRSS == 0 {
				t.Errorf("%s: %s has no peak RSS", res.Name, u.Name)
			}
		}
		busy := []string{"gateway", "orders", "inventory", "payments"}
		if i > 0 {
			busy = append(busy, "consul", "jaeger", "prometheus", "nats", "users", "recommendations")
		}
		for _, n := range busy {
			if !names[n] {
				t.Errorf("%s: no usage of %s among %v", res.Name, n, res.Usage)
			}
		}
	}
	if _, ok := rep.TracingCost(); !ok {
		t.Error("the report does not price tracing")
	}
	md, err := os.ReadFile(filepath.Join(dir, "bench.md"))
	if err != nil || !strings.Contains(string(md), "| glasshouse, tracing off |") {
		t.Errorf("bench.md (%v) lacks the untraced row:\n%s", err, md)
	}
	if svg, err := os.ReadFile(filepath.Join(dir, "bench.svg")); err != nil || !bytes.HasPrefix(svg, []byte("<svg")) {
		t.Errorf("bench.svg: %v, %.40q", err, svg)
	}
	for _, svc := range []string{"gateway-1", "orders-1", "inventory-1", "payments-1"} {
		p, err := os.ReadFile(filepath.Join(dir, "profiles", svc+".pprof"))
		// A CPU profile is a gzipped protobuf.
		if err != nil || len(p) < 100 || !bytes.HasPrefix(p, []byte{0x1f, 0x8b}) {
			t.Errorf("profile of %s: %v, %d bytes; want a gzipped pprof profile", svc, err, len(p))
		}
	}
}
