package observability_test

import (
	"context"
	"io"
	"testing"

	"github.com/glasshouse-dev/glasshouse/observability"
)

// BenchmarkEndpoint compares one call of a trivial endpoint bare and
// through the full server middleware stack (tracing with the real SDK and
// sampled, recording spans, the RED histogram with an exemplar, one JSON log
// line), so the cost of observing a call is a number, not a guess.
//
//	go test -bench Endpoint -benchmem ./observability/
func BenchmarkEndpoint(b *testing.B) {
	bare := func(_ context.Context, req any) (any, error) { return req, nil }
	ctx := context.Background()

	b.Run("bare", func(b *testing.B) {
		for b.Loop() {
			_, _ = bare(ctx, 1)
		}
	})
	b.Run("instrumented", func(b *testing.B) {
		tel, shutdown, err := observability.Setup(ctx, observability.Config{
			ServiceName: "bench", Getenv: func(string) string { return "" }, LogOutput: io.Discard,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer shutdown(ctx)
		ep := tel.ServerEndpoint("Op")(bare)
		for b.Loop() {
			_, _ = ep(ctx, 1)
		}
	})
}
