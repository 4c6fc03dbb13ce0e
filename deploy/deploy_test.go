package deploy_test

// These tests check the deployment files against the code they deploy,
// without Docker or a cluster: the Dockerfile, .dockerignore and
// docker-compose.yml at the root, and the Kubernetes base in k8s/. Each
// test states one property that, if broken, would show up only when the
// platform is started somewhere else: a service nobody deploys, a
// healthcheck that runs a program the image lacks, an image that floats,
// a replica without a reachable address, a manifest field that Kubernetes
// silently drops.

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/services"
)

// root is the repository root: go test runs in the package directory.
const root = ".."

// tokenReaders are the services that check tokens with users' public key.
func tokenReaders() []string {
	var names []string
	for _, s := range services.All() {
		if s.Tokens == services.ChecksTokens {
			names = append(names, s.Name)
		}
	}
	return names
}

// grpcCalls lists the services caller calls over gRPC, as the catalogue
// means it to: each of its GRPCCalls that it calls and that serves gRPC
// (TestCatalogueGRPCCallsAreGRPCServicesItCalls checks there is no
// other).
func grpcCalls(caller services.Spec) []services.Spec {
	var out []services.Spec
	for _, name := range caller.GRPCCalls {
		if callee, ok := services.Lookup(name); ok && callee.GRPC && slices.Contains(caller.Calls, name) {
			out = append(out, callee)
		}
	}
	return out
}

// transportVar is the variable that picks the transport of a caller's
// calls to callee: INVENTORY_TRANSPORT=grpc or http.
func transportVar(callee string) string { return strings.ToUpper(callee) + "_TRANSPORT" }

// serviceNames lists the services in the repository: one per directory
// under services/. Deployment files must cover each of them.
func serviceNames(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "services"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("no service directories under services/")
	}
	return names
}

// programs lists the commands under cmd/: the binaries in the image.
func programs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "internal" {
			names = append(names, e.Name())
		}
	}
	return names
}

// imageRef splits an image reference into its repository, tag and digest.
// A colon is a tag separator only after the last slash, since a registry
// host may carry a port (localhost:5000/glasshouse).
func imageRef(ref string) (repo, tag, digest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref, digest = ref[:i], ref[i+1:]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref, tag = ref[:i], ref[i+1:]
	}
	return ref, tag, digest
}

// checkPinned reports an image that names no version: no tag and no
// digest means "latest", and "latest" changes under you.
func checkPinned(t *testing.T, where, ref string) {
	t.Helper()
	_, tag, digest := imageRef(ref)
	switch {
	case digest != "":
	case tag == "":
		t.Errorf("%s: image %q has no tag, so it means latest: pin a version", where, ref)
	case tag == "latest":
		t.Errorf("%s: image %q is not pinned: name a version, not latest", where, ref)
	}
}

// listenPort is the port of a LISTEN_ADDR such as ":8082".
func listenPort(t *testing.T, where, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		t.Errorf("%s: listen address %q names no port", where, addr)
	}
	return port
}

// hostOf returns the host of "host:port" or of a URL.
func hostOf(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		return u.Hostname()
	}
	host, _, _ := net.SplitHostPort(addr)
	return host
}

// checkGoMemLimit: Go does not read the container's memory limit, so each
// container of a Go program sets GOMEMLIMIT a little below it. Without
// it, the garbage collector paces itself by heap growth alone, and the
// kernel kills the process before the collector tries any harder.
func checkGoMemLimit(t *testing.T, where, value string, limit int64) {
	t.Helper()
	m := regexp.MustCompile(`^(\d+)(B|KiB|MiB|GiB)?$`).FindStringSubmatch(value)
	if m == nil {
		t.Errorf("%s: GOMEMLIMIT=%q, want a size such as 56MiB", where, value)
		return
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	n <<= map[string]int{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30}[m[2]]
	if limit > 0 && (n >= limit || n < limit/2) {
		t.Errorf("%s: GOMEMLIMIT=%s (%d bytes) should sit a little below the memory limit of %d bytes", where, value, n, limit)
	}
}

// mustAbs is p as an absolute path; compose-go resolves paths that way.
func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
