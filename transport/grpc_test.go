package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	inventoryv1 "github.com/glasshouse-dev/glasshouse/api/proto/inventory/v1"
	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// stock is a service whose answers the test controls, bound to the
// inventory contract (the only thing it shares with inventory): every
// call answers what behave says, and Reserve needs the caller's token.
type stock interface {
	ListProducts(ctx context.Context) (stockAnswer, error)
	GetProduct(ctx context.Context, sku string) (stockAnswer, error)
	Reserve(ctx context.Context, user, orderID string) (stockAnswer, error)
	Commit(ctx context.Context, orderID string) (stockAnswer, error)
	Release(ctx context.Context, orderID string) (stockAnswer, error)
}

type (
	stockAnswer struct {
		ServedBy string `json:"served_by"`
		User     string `json:"user"`
	}
	skuRequest struct {
		SKU string `path:"sku" json:"-"`
	}
	stockOrder struct {
		OrderID string `path:"id" json:"-"`
	}
	stockReserve struct {
		User    string `auth:"user" json:"-"`
		OrderID string `json:"order_id"`
	}
)

type stockMethod[Req any] = transport.Method[stock, Req, stockAnswer]

var (
	stockList = stockMethod[struct{}]{Name: "ListProducts", Route: "GET /products", Idempotent: true,
		Serve: func(s stock, ctx context.Context, _ struct{}) (stockAnswer, error) { return s.ListProducts(ctx) }}
	stockGet = stockMethod[skuRequest]{Name: "GetProduct", Route: "GET /products/{sku}", Idempotent: true,
		Serve: func(s stock, ctx context.Context, r skuRequest) (stockAnswer, error) { return s.GetProduct(ctx, r.SKU) }}
	stockReserveM = stockMethod[stockReserve]{Name: "Reserve", Route: "POST /reservations", Idempotent: true,
		Serve: func(s stock, ctx context.Context, r stockReserve) (stockAnswer, error) {
			return s.Reserve(ctx, r.User, r.OrderID)
		}}
	stockCommit = stockMethod[stockOrder]{Name: "Commit", Route: "POST /reservations/{id}", Idempotent: true,
		Serve: func(s stock, ctx context.Context, r stockOrder) (stockAnswer, error) { return s.Commit(ctx, r.OrderID) }}
	stockRelease = stockMethod[stockOrder]{Name: "Release", Route: "DELETE /reservations/{id}", Idempotent: true,
		Serve: func(s stock, ctx context.Context, r stockOrder) (stockAnswer, error) {
			return s.Release(ctx, r.OrderID)
		}}

	stockAPI = transport.NewAPI[stock]("stock", stockList, stockGet, stockReserveM, stockCommit, stockRelease)

	// The answer travels in a reservation: served_by as its order ID, the
	// user as its first item's SKU.
	answerCodec = transport.Codec[stockAnswer, *inventoryv1.Reservation]{
		ToProto: func(a stockAnswer) *inventoryv1.Reservation {
			return &inventoryv1.Reservation{OrderId: a.ServedBy, Status: inventoryv1.ReservationStatus_RESERVATION_STATUS_HELD,
				Items: []*inventoryv1.Item{{Sku: a.User}}}
		},
		FromProto: func(m *inventoryv1.Reservation) (stockAnswer, error) {
			if m.GetStatus() != inventoryv1.ReservationStatus_RESERVATION_STATUS_HELD {
				return stockAnswer{}, fmt.Errorf("status %v", m.GetStatus())
			}
			return stockAnswer{ServedBy: m.GetOrderId(), User: m.GetItems()[0].GetSku()}, nil
		},
	}
	listAnswerCodec = transport.Codec[stockAnswer, *inventoryv1.ListProductsResponse]{
		ToProto: func(a stockAnswer) *inventoryv1.ListProductsResponse {
			return &inventoryv1.ListProductsResponse{Products: []*inventoryv1.Product{{Sku: a.ServedBy}}}
		},
		FromProto: func(m *inventoryv1.ListProductsResponse) (stockAnswer, error) {
			return stockAnswer{ServedBy: m.GetProducts()[0].GetSku()}, nil
		},
	}
	productAnswerCodec = transport.Codec[stockAnswer, *inventoryv1.Product]{
		ToProto:   func(a stockAnswer) *inventoryv1.Product { return &inventoryv1.Product{Sku: a.ServedBy} },
		FromProto: func(m *inventoryv1.Product) (stockAnswer, error) { return stockAnswer{ServedBy: m.GetSku()}, nil },
	}
	stockGRPC = transport.NewGRPCAPI(stockAPI, &inventoryv1.Inventory_ServiceDesc,
		transport.RPC(stockList, transport.Codec[struct{}, *inventoryv1.ListProductsRequest]{
			ToProto:   func(struct{}) *inventoryv1.ListProductsRequest { return &inventoryv1.ListProductsRequest{} },
			FromProto: func(*inventoryv1.ListProductsRequest) (struct{}, error) { return struct{}{}, nil },
		}, listAnswerCodec),
		transport.RPC(stockGet, transport.Codec[skuRequest, *inventoryv1.GetProductRequest]{
			ToProto:   func(r skuRequest) *inventoryv1.GetProductRequest { return &inventoryv1.GetProductRequest{Sku: r.SKU} },
			FromProto: func(m *inventoryv1.GetProductRequest) (skuRequest, error) { return skuRequest{SKU: m.GetSku()}, nil },
		}, productAnswerCodec),
		transport.RPC(stockReserveM, transport.Codec[stockReserve, *inventoryv1.ReserveRequest]{
			ToProto: func(r stockReserve) *inventoryv1.ReserveRequest {
				return &inventoryv1.ReserveRequest{OrderId: r.OrderID}
			},
			FromProto: func(m *inventoryv1.ReserveRequest) (stockReserve, error) {
				return stockReserve{OrderID: m.GetOrderId()}, nil
			},
		}, answerCodec),
		transport.RPC(stockCommit, stockOrderCodec, answerCodec),
		transport.RPC(stockRelease, stockOrderCodec, answerCodec),
	)
	stockOrderCodec = transport.Codec[stockOrder, *inventoryv1.OrderRequest]{
		ToProto:   func(r stockOrder) *inventoryv1.OrderRequest { return &inventoryv1.OrderRequest{OrderId: r.OrderID} },
		FromProto: func(m *inventoryv1.OrderRequest) (stockOrder, error) { return stockOrder{OrderID: m.GetOrderId()}, nil },
	}
)

// stockPeer is a real gRPC server of stock, registered in a real Consul
// with a GRPC check.
type stockPeer struct {
	addr   string
	hits   atomic.Int64
	behave atomic.Value // func(ctx) error
	srv    *transport.GRPCServer
	reg    *transport.Registrar // nil when not registered in Consul
}

func (p *stockPeer) answer(ctx context.Context, user string) (stockAnswer, error) {
	p.hits.Add(1)
	if f, _ := p.behave.Load().(func(context.Context) error); f != nil {
		if err := f(ctx); err != nil {
			return stockAnswer{}, err
		}
	}
	return stockAnswer{ServedBy: p.addr, User: user}, nil
}

func (p *stockPeer) ListProducts(ctx context.Context) (stockAnswer, error) { return p.answer(ctx, "") }
func (p *stockPeer) GetProduct(ctx context.Context, _ string) (stockAnswer, error) {
	return p.answer(ctx, "")
}
func (p *stockPeer) Reserve(ctx context.Context, user, _ string) (stockAnswer, error) {
	return p.answer(ctx, user)
}
func (p *stockPeer) Commit(ctx context.Context, _ string) (stockAnswer, error) {
	return p.answer(ctx, "")
}
func (p *stockPeer) Release(ctx context.Context, _ string) (stockAnswer, error) {
	return p.answer(ctx, "")
}

// checkToken accepts the token "good" as user u1.
func checkToken(token string) (string, error) {
	if token != "good" {
		return "", errs.E(errs.Unauthenticated, "invalid_token", "the token is not valid")
	}
	return "u1", nil
}

func startStockPeer(t testing.TB, consulAddr string) *stockPeer {
	t.Helper()
	tel := newTelemetry(t, io.Discard)
	p := &stockPeer{}
	endpoints := stockAPI.Endpoints(p).With(tel.ServerEndpoint)
	p.srv = testenv.ServeGRPC(t, tel, observability.NewHealth(), transport.GRPCServerConfig{},
		stockGRPC.Service(endpoints, transport.WithAuth(checkToken)))
	p.addr = p.srv.Addr().String()
	if consulAddr == "" {
		return p
	}
	client, err := transport.NewConsulClient(consulAddr)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(p.addr)
	portNum, _ := strconv.Atoi(port)
	reg := transport.NewRegistrar(client, transport.Registration{
		Service: "stock-grpc", Address: host, Port: portNum, GRPCCheck: true,
		ID: "stock-grpc-" + port, CheckInterval: time.Second,
	}, tel.Logger, tel.Registry)
	go reg.Run()
	t.Cleanup(func() { reg.Deregister(context.Background()) })
	p.reg = reg
	return p
}

func directStock(t testing.TB, addr string) stock {
	t.Helper()
	build, _ := testenv.DirectGRPC(t, addr, newTelemetry(t, io.Discard))
	return stockClient{stockAPI.Client(stockGRPC.Factory(build))}
}

// stockClient is stock over client endpoints, as a service's generated
// client is.
type stockClient struct{ e transport.Endpoints }

func (c stockClient) ListProducts(ctx context.Context) (stockAnswer, error) {
	return stockList.Call(ctx, c.e, struct{}{})
}
func (c stockClient) GetProduct(ctx context.Context, sku string) (stockAnswer, error) {
	return stockGet.Call(ctx, c.e, skuRequest{SKU: sku})
}
func (c stockClient) Reserve(ctx context.Context, user, orderID string) (stockAnswer, error) {
	return stockReserveM.Call(ctx, c.e, stockReserve{User: user, OrderID: orderID})
}
func (c stockClient) Commit(ctx context.Context, orderID string) (stockAnswer, error) {
	return stockCommit.Call(ctx, c.e, stockOrder{OrderID: orderID})
}
func (c stockClient) Release(ctx context.Context, orderID string) (stockAnswer, error) {
	return stockRelease.Call(ctx, c.e, stockOrder{OrderID: orderID})
}

func TestEveryErrorKindCrossesGRPCTyped(t *testing.T) {
	p := startStockPeer(t, "")
	client := directStock(t, p.addr)
	for kind := errs.Internal; kind <= errs.Timeout; kind++ {
		t.Run(kind.String(), func(t *testing.T) {
			sent := errs.E(kind, "some_"+kind.String(), "what went wrong with %s", kind)
			if kind == errs.Unavailable {
				sent.Upstream = "database"
			}
			p.behave.Store(func(context.Context) error { return sent })
			_, err := client.Commit(context.Background(), "o1")
			var got *errs.Error
			if !errors.As(err, &got) {
				t.Fatalf("error %v (%T) is not an *errs.Error", err, err)
			}
			want := *sent
			if kind == errs.Internal {
				want.Detail = "what went wrong with internal" // an *errs.Error's detail is its own, not a cause
			}
			if got.Kind != want.Kind || got.Code != want.Code || got.Detail != want.Detail || got.Upstream != want.Upstream {
				t.Errorf("got %+v; want %+v", got, want)
			}
		})
	}
	// An error that is not ours keeps its cause to itself.
	p.behave.Store(func(context.Context) error { return errors.New("disk on fire at /var/lib/x") })
	_, err := client.Commit(context.Background(), "o1")
	if errs.KindOf(err) != errs.Internal || errs.CodeOf(err) != "internal" || strings.Contains(err.Error(), "disk") || strings.Contains(err.Error(), "/var") {
		t.Errorf("an internal failure came back as %v; want internal, without its cause", err)
	}
}

func TestGRPCCallerMustAuthenticateWhereHTTPDoes(t *testing.T) {
	p := startStockPeer(t, "")
	client := directStock(t, p.addr)
	ctx := context.Background()
	if _, err := client.Reserve(ctx, "", "o1"); errs.KindOf(err) != errs.Unauthenticated || errs.CodeOf(err) != "missing_token" {
		t.Errorf("Reserve without a token = %v; want unauthenticated missing_token", err)
	}
	if _, err := client.Reserve(transport.WithBearerToken(ctx, "forged"), "", "o1"); errs.CodeOf(err) != "invalid_token" {
		t.Errorf("Reserve with a bad token = %v; want invalid_token", err)
	}
	if p.hits.Load() != 0 {
		t.Errorf("the service was called %d times by unauthenticated callers", p.hits.Load())
	}
	// The user comes from the verified token, never from the caller.
	a, err := client.Reserve(transport.WithBearerToken(ctx, "good"), "someone-else", "o1")
	if err != nil || a.User != "u1" {
		t.Errorf("Reserve with a good token = %+v, %v; want user u1", a, err)
	}
	// Calls that need no token do without.
	if _, err := client.Commit(ctx, "o1"); err != nil {
		t.Errorf("Commit without a token = %v", err)
	}
}

func TestGRPCPanicIsAnInternalStatus(t *testing.T) {
	p := startStockPeer(t, "")
	client := directStock(t, p.addr)
	p.behave.Store(func(context.Context) error { panic("boom") })
	if _, err := client.Commit(context.Background(), "o1"); errs.KindOf(err) != errs.Internal {
		t.Errorf("a panicking call = %v; want internal", err)
	}
	p.behave.Store(func(context.Context) error { return nil })
	if _, err := client.Commit(context.Background(), "o1"); err != nil {
		t.Errorf("the server after a panic: %v", err)
	}
}

func TestDeadlinesPropagateOverGRPC(t *testing.T) {
	p := startStockPeer(t, "")
	client := directStock(t, p.addr)
	var left atomic.Int64
	p.behave.Store(func(ctx context.Context) error {
		d, ok := ctx.Deadline()
		if !ok {
			return errors.New("no deadline")
		}
		left.Store(int64(time.Until(d)))
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := client.Commit(ctx, "o1"); err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(left.Load()); d <= 0 || d > 300*time.Millisecond {
		t.Errorf("the server saw %s left; want the caller's 300ms deadline, less the time on the way", d)
	}
}

func remoteStock(t *testing.T, consulAddr string, cfg transport.ClientConfig) (stock, *caller) {
	t.Helper()
	cfg.ConsulName = "stock-grpc"
	c := newCaller(t, consulAddr, "stock", cfg)
	return stockClient{stockAPI.Client(stockGRPC.Factory(c.remote.GRPC()))}, c
}

func TestRemoteOverGRPCRetriesADeadInstanceAndNeverABusinessError(t *testing.T) {
	consul := testenv.StartConsul(t)
	a, b := startStockPeer(t, consul.Addr), startStockPeer(t, consul.Addr)
	// Consul's GRPC check against grpc.health.v1 passes for both.
	consul.WaitPassing("stock-grpc", 2, 15*time.Second)
	client, c := remoteStock(t, consul.Addr, transport.ClientConfig{})
	c.waitInstances(t, 2)
	ctx := context.Background()
	served := map[string]int{}
	for range 20 {
		ans, err := client.Commit(ctx, "o1")
		if err != nil {
			t.Fatal(err)
		}
		served[ans.ServedBy]++
	}
	if served[a.addr] == 0 || served[b.addr] == 0 {
		t.Errorf("calls served %v; want both instances used", served)
	}

	// A business answer is passed on at once: one call, no retry, no
	// breaker counting it.
	b.behave.Store(func(context.Context) error { return errs.E(errs.Conflict, "out_of_stock", "none left") })
	a.behave.Store(func(context.Context) error { return errs.E(errs.Conflict, "out_of_stock", "none left") })
	hitsBefore := a.hits.Load() + b.hits.Load()
	for range 12 {
		if _, err := client.Commit(ctx, "o1"); errs.CodeOf(err) != "out_of_stock" || errs.KindOf(err) != errs.Conflict {
			t.Fatalf("Commit = %v; want the conflict out_of_stock", err)
		}
	}
	if n := a.hits.Load() + b.hits.Load() - hitsBefore; n != 12 {
		t.Errorf("12 calls answered out_of_stock reached the servers %d times; want 12 (no retries)", n)
	}
	for key, state := range c.remote.BreakerStates() {
		if state != "closed" {
			t.Errorf("breaker %s is %s after business errors; want closed", key, state)
		}
	}
	a.behave.Store(func(context.Context) error { return nil })

	// b dies without leaving Consul: its connection fails, and every call
	// is retried on a.
	b.srv.Stop(nil)
	for i := range 20 {
		ans, err := client.Commit(ctx, "o1")
		if err != nil || ans.ServedBy != a.addr {
			t.Fatalf("call %d with b dead = %+v, %v; want served by a", i, ans, err)
		}
	}
	if retries := metricValue(t, c, "glasshouse_client_retries_total", `endpoint="Commit"`); retries < 1 {
		t.Errorf("retries = %v; want the dead instance's failures retried", retries)
	}
	// Consul's GRPC check finds b critical, and it leaves discovery.
	consul.WaitPassing("stock-grpc", 1, 15*time.Second)
}

func TestRemoteOverGRPCOpensBreakersOnASlowInstance(t *testing.T) {
	consul := testenv.StartConsul(t)
	slow := startStockPeer(t, consul.Addr)
	consul.WaitPassing("stock-grpc", 1, 15*time.Second)
	client, c := remoteStock(t, consul.Addr, transport.ClientConfig{
		CallTimeout: 50 * time.Millisecond, Deadline: 200 * time.Millisecond, MaxAttempts: 1,
		Breaker: transport.BreakerConfig{ConsecutiveFailures: 3, OpenFor: time.Minute},
	})
	c.waitInstances(t, 1)
	slow.behave.Store(func(ctx context.Context) error {
		select {
		case <-ctx.Done(): // the caller's deadline reached the server
			return ctx.Err()
		case <-time.After(time.Second):
			return nil
		}
	})
	for i := range 3 {
		if _, err := client.Commit(context.Background(), "o1"); errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("slow call %d = %v; want unavailable", i, err)
		}
	}
	hits := slow.hits.Load()
	_, err := client.Commit(context.Background(), "o1")
	if errs.KindOf(err) != errs.Unavailable || slow.hits.Load() != hits {
		t.Errorf("with the breaker open: %v after %d more hits; want unavailable without calling", err, slow.hits.Load()-hits)
	}
	if states := c.remote.BreakerStates(); states[slow.addr+"/Commit"] != "open" {
		t.Errorf("breakers = %v; want %s/Commit open", states, slow.addr)
	}
}

func TestACallInFlightWhenItsInstanceLeavesDiscoveryFinishes(t *testing.T) {
	consul := testenv.StartConsul(t)
	peers := []*stockPeer{startStockPeer(t, consul.Addr), startStockPeer(t, consul.Addr)}
	consul.WaitPassing("stock-grpc", 2, 15*time.Second)
	client, c := remoteStock(t, consul.Addr, transport.ClientConfig{})
	c.waitInstances(t, 2)
	entered, release := make(chan *stockPeer, 2), make(chan struct{})
	for _, p := range peers {
		p.behave.Store(func(context.Context) error { entered <- p; <-release; return nil })
	}
	type result struct {
		ans stockAnswer
		err error
	}
	done := make(chan result, 1)
	go func() {
		ans, err := client.Commit(context.Background(), "o1")
		done <- result{ans, err}
	}()
	// The instance serving the call leaves Consul, as a draining one
	// does first thing, and the caller forgets it, while the call runs.
	serving := <-entered
	if err := serving.reg.Deregister(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.waitInstances(t, 1)
	close(release)
	if r := <-done; r.err != nil || r.ans.ServedBy != serving.addr {
		t.Errorf("the call in flight = %+v, %v; want it answered by %s, which was still serving it", r.ans, r.err, serving.addr)
	}
}
