// Command clientgen writes client_gen.go, the typed client of the service
// package in the working directory, from its declared API (see package
// transport/clientgen). Each service's api.go runs it:
//
//	//go:generate go run github.com/glasshouse-dev/glasshouse/transport/cmd/clientgen
//
// so `make generate` (go generate ./...) rewrites every client. It writes
// the file only when it changes.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/glasshouse-dev/glasshouse/transport/clientgen"
)

func main() {
	if err := run("."); err != nil {
		fmt.Fprintln(os.Stderr, "clientgen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	src, err := clientgen.Generate(dir)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, clientgen.FileName)
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, src) {
		return nil
	}
	if err := os.WriteFile(path, src, 0o644); err != nil {
		return err
	}
	abs, _ := filepath.Abs(path)
	fmt.Printf("wrote %s\n", abs)
	return nil
}
