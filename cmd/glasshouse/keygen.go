package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/glasshouse-dev/glasshouse/services/users"
)

// cmdKeygen writes the users service's token key pair once, before any
// replica of users starts: docker compose runs it as a one-shot job, so
// that every users replica loads the same private key from a read-only
// volume and the token checkers read the public half from another one.
// A pair that is already there is kept: tokens stay valid across
// restarts, and a second run is harmless.
func cmdKeygen(_ context.Context, args []string, _ func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stdout)
	private := fs.String("key", "", "the private key file (PEM, PKCS#8); its public half is written beside it as .pub")
	public := fs.String("public", "", "also publish the public key here, e.g. on a volume that holds nothing else")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *private == "" || fs.NArg() != 0 {
		return errors.New("usage: glasshouse keygen -key FILE [-public FILE]")
	}
	_, generated, err := users.EnsureKeyPair(*private)
	if err != nil {
		return fmt.Errorf("token signing key: %w", err)
	}
	if err := users.PublishPublicKey(users.PublicKeyPath(*private), *public); err != nil {
		return fmt.Errorf("publish the public key: %w", err)
	}
	if generated {
		fmt.Fprintf(stdout, "generated a token key pair in %s\n", *private)
	} else {
		fmt.Fprintf(stdout, "kept the token key pair in %s\n", *private)
	}
	return nil
}
