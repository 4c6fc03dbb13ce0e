package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/traces"
)

// pollInterval is how often trace asks Jaeger again while it waits: short
// next to the services' span batch delay, long enough to be no load.
const pollInterval = 250 * time.Millisecond

// cmdTrace prints one trace from Jaeger as a waterfall:
//
//	glasshouse trace [-jaeger URL] [-width N] [-wait D] TRACE_ID
//
// The ID is the one every gateway response carries in X-Trace-Id (and
// error bodies in trace_id). Services export spans in batches, every few
// seconds, so a trace asked for right after its request is waited for,
// until it is in Jaeger and no service's part is still missing.
func cmdTrace(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	flags := config.NewFlags("glasshouse trace", getenv, stdout)
	jaegerURL := flags.String("jaeger", "GLASSHOUSE_JAEGER", "http://127.0.0.1:16686", "Jaeger query address (the UI's)")
	width := flags.Int("width", "", 60, "columns of the timeline")
	wait := flags.Duration("wait", "", 10*time.Second, "how long to wait for the trace to reach Jaeger")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: glasshouse trace [flags] TRACE_ID")
		flags.PrintDefaults()
	}
	// The ID may come before or after the flags: parse up to it, take it,
	// then parse the rest.
	if err := flags.FlagSet.Parse(args); err != nil {
		return err
	}
	if flags.NArg() == 0 {
		flags.Usage()
		return errors.New("trace: no trace ID given")
	}
	id := flags.Arg(0)
	if err := flags.Parse(flags.Args()[1:]); err != nil {
		return err
	}
	if *width < traces.MinWidth {
		return fmt.Errorf("trace: -width %d is too narrow (at least %d)", *width, traces.MinWidth)
	}
	if *wait <= 0 {
		return fmt.Errorf("trace: -wait %s must be positive", *wait)
	}

	waitCtx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	t, err := traces.NewClient(*jaegerURL, nil).Await(waitCtx, id, pollInterval)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err() // interrupted: not Jaeger's fault
	case errors.Is(err, traces.ErrTraceNotFound):
		return fmt.Errorf("trace %s not found in Jaeger at %s after %s", id, *jaegerURL, *wait)
	case errors.Is(err, traces.ErrIncomplete):
		fmt.Fprintf(stdout, "note: the trace still looks incomplete after %s; showing what arrived\n", *wait)
	default:
		return err
	}
	return traces.Waterfall(stdout, t, *width)
}
