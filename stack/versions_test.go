package stack

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
)

// A pinned tool's version is written three times: in the Makefile (which
// builds it), in its tools/ module (which pins it) and here (which finds
// the build by its name). Bumping one and not the others would run, or
// build, a version nobody chose.
func TestPinnedToolVersionsAgreeWithTheMakefileAndTheirModules(t *testing.T) {
	root := testenv.RepoRoot(t)
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []struct{ variable, version, module, path string }{
		{"CONSUL_VERSION", ConsulVersion, "consul", "github.com/hashicorp/consul"},
		{"JAEGER_VERSION", JaegerVersion, "jaeger", "github.com/jaegertracing/jaeger"},
		{"PROMETHEUS_VERSION", PrometheusVersion, "prometheus", "github.com/prometheus/prometheus"},
		{"NATS_VERSION", NATSVersion, "nats", "github.com/nats-io/nats-server/v2"},
	} {
		if v := submatch(`(?m)^`+tool.variable+`\s*:=\s*(\S+)$`, makefile); v != tool.version {
			t.Errorf("Makefile's %s is %q; stack pins %s", tool.variable, v, tool.version)
		}
		gomod, err := os.ReadFile(filepath.Join(root, "tools", tool.module, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		if v := submatch(`(?m)^\s*`+regexp.QuoteMeta(tool.path)+`\s+(\S+)`, gomod); v != tool.version {
			t.Errorf("tools/%s/go.mod requires %s %q; stack pins %s", tool.module, tool.path, v, tool.version)
		}
	}
}

// submatch is the first group of pattern's first match in b, or "".
func submatch(pattern string, b []byte) string {
	if m := regexp.MustCompile(pattern).FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}
