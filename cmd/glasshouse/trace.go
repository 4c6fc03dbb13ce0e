package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
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
	if err := traces.Waterfall(stdout, t, *width); err != nil {
		return err
	}
	return printLinked(ctx, traces.NewClient(*jaegerURL, nil), t, stdout)
}

// printLinked lists, under a trace, the traces linked to its PRODUCER
// spans: each event's consumers, which run in traces of their own (the
// wait between the two is not work, and may last a restart) with a link
// back to the producer. They are found by the event ID
// (messaging.message.id) in Jaeger's search, in every service.
func printLinked(ctx context.Context, c *traces.Client, t *traces.Trace, stdout io.Writer) error {
	ids := map[string]bool{}
	for _, s := range t.Spans {
		if id := s.Tags["messaging.message.id"]; s.Kind == "producer" && id != "" {
			ids[id] = true
		}
	}
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	services, err := c.Services(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nlinked traces (consumers of this trace's events):")
	found := 0
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		for _, svc := range services {
			linked, err := c.Linked(ctx, svc, "messaging.message.id", id, 24*time.Hour)
			if err != nil {
				return err
			}
			for _, lt := range linked {
				for _, s := range lt.Spans {
					if s.Kind == "consumer" && slices.ContainsFunc(s.Links, func(l traces.Link) bool { return l.TraceID == t.ID }) {
						found++
						fmt.Fprintf(stdout, "  %s  %s %q in %s, %s after the trace began (glasshouse trace %s)\n",
							id, lt.ID, s.Operation, s.Service, s.Start.Sub(t.Spans[0].Start).Round(time.Millisecond), lt.ID)
					}
				}
			}
		}
	}
	if found == 0 {
		fmt.Fprintln(stdout, "  none yet: no consumer has processed them, or its spans have not reached Jaeger")
	}
	return nil
}
