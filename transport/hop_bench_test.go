package transport_test

import (
	"context"
	"io"
	"testing"

	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/sd"
)

// BenchmarkHop is one call between two services on real loopback
// listeners, through everything a real call passes: on the caller the
// resilient client (client span, retry loop, breaker, attempt timeout)
// over a fixed instance, on the callee the whole server stack (otelhttp
// or otelgrpc, request ID, recovery, the endpoint middlewares: tracing,
// RED metrics, a log line), with the SDK sampling every span. The same
// endpoint is served over HTTP/JSON and gRPC/protobuf, so the two
// differ only by transport.
//
//	go test -run '^$' -bench Hop -benchmem -count 6 ./transport/ | benchstat -
func BenchmarkHop(b *testing.B) {
	tel := newTelemetry(b, io.Discard)
	p := &stockPeer{}
	endpoints := stockAPI.Endpoints(p).With(tel.ServerEndpoint)
	httpSrv := startServer(b, tel, stockAPI.Handler(endpoints, transport.WithAuth(checkToken)), transport.ServerConfig{})
	grpcSrv := startStockPeer(b, "")
	p.addr = httpSrv.Addr().String()

	caller := newTelemetry(b, io.Discard)
	remote := func(addr string) *transport.Remote {
		r := transport.NewRemoteWithInstancer(sd.FixedInstancer{addr}, transport.ClientConfig{Service: "stock"}, caller)
		b.Cleanup(r.Close)
		return r
	}
	clients := []struct {
		name   string
		client stock
	}{
		{"http", stockClient{stockAPI.Client(remote(httpSrv.Addr().String()).Factory())}},
		{"grpc", stockClient{stockAPI.Client(stockGRPC.Factory(remote(grpcSrv.addr).GRPC()))}},
	}
	ctx := context.Background()
	for _, c := range clients {
		b.Run(c.name, func(b *testing.B) {
			if _, err := c.client.Commit(ctx, "order-1"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.client.Commit(ctx, "order-1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
