package transport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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
// bare, server and client measure the two sides' overhead over a plain
// net/http handler and client on the same listeners.
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
	// The reference: a plain net/http handler and client, same route and
	// JSON, nothing else. "server" is a bare client calling the whole
	// server stack, "client" the whole client calling the bare handler:
	// each one's overhead over "bare" is what that side costs.
	bare := startBareStock(b)
	bareClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	clients := []struct {
		name   string
		client interface {
			Commit(context.Context, string) (stockAnswer, error)
		}
	}{
		{"bare", bareStock{bareClient, bare}},
		{"server", bareStock{bareClient, httpSrv.Addr().String()}},
		{"client", stockClient{stockAPI.Client(remote(bare).Factory())}},
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

// startBareStock serves Commit's route with a plain net/http handler on
// a loopback listener, and returns its address.
func startBareStock(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reservations/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(stockAnswer{ServedBy: l.Addr().String()})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// bareStock calls Commit with a plain net/http client.
type bareStock struct {
	client *http.Client
	addr   string
}

func (s bareStock) Commit(ctx context.Context, id string) (stockAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+s.addr+"/reservations/"+id, nil)
	if err != nil {
		return stockAnswer{}, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return stockAnswer{}, err
	}
	defer resp.Body.Close()
	var a stockAnswer
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("POST /reservations/%s: %s", id, resp.Status)
	}
	return a, json.NewDecoder(resp.Body).Decode(&a)
}
