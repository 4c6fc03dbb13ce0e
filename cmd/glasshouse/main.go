// Command glasshouse is the operator's CLI for the platform on one
// machine: it brings the whole stack up (Consul, NATS, Jaeger, Prometheus
// and every service), shows its state, drives load through the gateway,
// draws traces in the terminal, and kills instances for chaos experiments.
//
//	glasshouse up       start everything and wait until it is healthy
//	glasshouse down     stop a running stack
//	glasshouse status   every instance, its health and breaker states
//	glasshouse load     open-loop load through the gateway
//	glasshouse trace ID a trace from Jaeger as a terminal waterfall
//	glasshouse kill SERVICE[/N]   SIGKILL one instance
//	glasshouse probe URL          a container healthcheck
//	glasshouse chaos    kill services under load and judge what users saw
//	glasshouse bench    a checkout's cost against a bare reference chain
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// A command runs one subcommand with its own arguments.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error
}

var commands = map[string]command{
	"up":     {"start the platform and wait until every instance is healthy", cmdUp},
	"down":   {"stop the platform started by up", cmdDown},
	"status": {"show every registered instance, its health and breaker states", cmdStatus},
	"load":   {"drive open-loop load through the gateway and report latency", cmdLoad},
	"trace":  {"print a trace from Jaeger as a waterfall", cmdTrace},
	"kill":   {"SIGKILL one instance: kill SERVICE[/N]", cmdKill},
	"probe":  {"GET a URL; fail unless it answers 2xx (container healthchecks)", cmdProbe},
	"chaos":  {"run the chaos experiments against a fresh stack and write a report", cmdChaos},
	"bench":  {"measure a checkout at saturation against the bare reference chain (bench/) and write a report", cmdBench},
	"keygen": {"write users' token key pair once, for docker compose (keeps an existing one)", cmdKeygen},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "glasshouse:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage(stdout)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd.run(ctx, args[1:], getenv, stdout)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: glasshouse COMMAND [flags]   (glasshouse COMMAND -h for its flags)")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
}
