package proto

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates every .proto file into a
// temporary folder with the pinned generators and fails on any difference
// from the committed code, or on a generated file that is not committed
// (or committed but no longer generated).
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc is not installed: `make protoc` installs Debian's protobuf-compiler, which the contracts are generated with")
	}
	out := t.TempDir()
	cmd := exec.Command("./generate.sh", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, msg)
	}
	fresh := generated(t, out)
	committed := generated(t, ".")
	if len(fresh) == 0 {
		t.Fatal("generate.sh wrote no Go file")
	}
	for name, want := range fresh {
		got, ok := committed[name]
		switch {
		case !ok:
			t.Errorf("%s is generated but not committed: run `make generate`", name)
		case !bytes.Equal(got, want):
			t.Errorf("%s differs from what the pinned generators write: run `make generate` (protoc %s)", name, protocVersion(t))
		}
	}
	for name := range committed {
		if _, ok := fresh[name]; !ok {
			t.Errorf("%s is committed but no .proto file generates it any more: delete it", name)
		}
	}
}

// generated reads every *.pb.go file below root, by relative path.
func generated(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pb.go") {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		files[rel], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func protocVersion(t *testing.T) string {
	out, err := exec.Command("protoc", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
