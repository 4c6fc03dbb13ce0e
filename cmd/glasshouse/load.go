package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/loadgen"
)

// cmdLoad drives open-loop load through the gateway (see package loadgen):
// it signs customers up, sends a mix of requests at a fixed rate while
// printing progress, and ends with latency and errors by operation.
// Failed requests are what it measures, not a failure of the command: it
// fails only when it cannot set up.
func cmdLoad(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	flags := config.NewFlags("glasshouse load", getenv, stdout)
	target := flags.String("target", "GLASSHOUSE_GATEWAY", "http://127.0.0.1:8080", "the gateway's base URL")
	rate := flags.Float("rate", "", 50, "requests per second, sent on schedule whatever the answers (mind the gateway's per-client -rate-limit)")
	duration := flags.Duration("duration", "", 30*time.Second, "how long to send requests for")
	concurrency := flags.Int("concurrency", "", loadgen.DefaultMaxInFlight, "most requests in flight; a request due beyond it is skipped and counted")
	connections := flags.Int("connections", "", 0, "when set, a closed loop instead of -rate: this many connections, each sending its next request once the last is answered (finds saturation; blind to stalls)")
	items := flags.Int("items", "", 0, "products per checkout (0: one or two at random)")
	users := flags.Int("users", "", loadgen.DefaultUsers, "customers to sign up and log in before the load")
	timeout := flags.Duration("timeout", "", loadgen.DefaultTimeout, "how long a request may take before it counts as a transport_error")
	mix := loadgen.DefaultMix()
	flags.Var(&mix, "mix", "operation weights: browse, login, checkout, orders")
	if err := flags.Parse(args); err != nil {
		return err
	}

	// Customers log in in turn; past the gateway's default per-email
	// limit some of their logins are refused, by design, not by a fault.
	if perCustomer := *rate * mix.Share(loadgen.Login) / float64(max(*users, 1)); perCustomer > 1 {
		fmt.Fprintf(stdout, "note: each customer logs in %.1f times a second, more than the gateway's default -login-email-rate-limit (1/s): expect rate_limited logins, or raise -users\n", perCustomer)
	}
	load := fmt.Sprintf("%g req/s", *rate)
	if *connections > 0 {
		load = fmt.Sprintf("a closed loop over %d connections", *connections)
	}
	fmt.Fprintf(stdout, "signing up %d customers at %s, then %s for %s (mix %s)\n", *users, *target, load, *duration, mix)
	report, err := loadgen.Run(ctx, loadgen.Config{
		Target: *target, Rate: *rate, Duration: *duration, MaxInFlight: *concurrency, Connections: *connections,
		Users: *users, Mix: mix, Items: *items, Timeout: *timeout, Progress: stdout,
	})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	report.WriteText(stdout)
	return nil
}
