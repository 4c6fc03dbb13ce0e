package testenv

import (
	"net"
	"testing"

	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
	"google.golang.org/grpc"
)

// ServeGRPC serves services on a loopback port through the whole gRPC
// server stack (transport.NewGRPCServer), stopped when the test ends; it
// returns the server, whose Addr is the address to dial.
func ServeGRPC(t testing.TB, tel observability.Telemetry, health *observability.Health, cfg transport.GRPCServerConfig, services ...transport.GRPCService) *transport.GRPCServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := transport.NewGRPCServer(ln, tel, health, cfg, services...)
	done := make(chan error, 1)
	go func() { done <- srv.Run() }()
	t.Cleanup(func() {
		srv.Stop(nil)
		if err := <-done; err != nil {
			t.Errorf("gRPC server: %v", err)
		}
	})
	return srv
}

// DirectGRPC builds client calls over gRPC to the one server at addr, as
// transport.NewGRPCDirectFactory does with the default timeout; the
// connection is closed when the test ends. It also returns the
// connection, for calls a typed client cannot make (malformed messages).
func DirectGRPC(t testing.TB, addr string, tel observability.Telemetry) (transport.GRPCClientFactory, *grpc.ClientConn) {
	t.Helper()
	build, conn, err := transport.NewGRPCDirectFactory(addr, tel, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return build, conn
}
