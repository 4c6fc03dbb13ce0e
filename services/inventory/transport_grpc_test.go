package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	inventoryv1 "github.com/glasshouse-dev/glasshouse/api/proto/inventory/v1"
	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/transport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// bothServers serves one inventory's endpoints over HTTP and gRPC at
// once, as the service's main does: one store, one endpoint set, two
// listeners.
func bothServers(t *testing.T) (httpURL, grpcAddr string, store *inventory.Store, health *observability.Health) {
	t.Helper()
	tel := testenv.Telemetry(t, inventory.ServiceName)
	store = openTracedStore(t, testenv.SQLite, tel.TracerProvider)
	svc := inventory.Instrumenting(tel.Registry)(inventory.NewService(store, inventory.Options{}))
	health = observability.NewHealth()
	health.AddCheck("store", store.Ping)
	endpoints := inventory.API.Endpoints(svc).With(tel.ServerEndpoint)
	srv := httptest.NewServer(transport.Handler(tel, health, inventory.API.Handler(endpoints), transport.ServerConfig{}))
	t.Cleanup(srv.Close)
	g := testenv.ServeGRPC(t, tel, health, transport.GRPCServerConfig{MaxMessageBytes: 4 << 10}, inventory.GRPC.Service(endpoints))
	return srv.URL, g.Addr().String(), store, health
}

func TestGRPCAnswersAsHTTPDoes(t *testing.T) {
	httpURL, grpcAddr, store, _ := bothServers(t)
	tel := testenv.Telemetry(t, "orders")
	overHTTP := inventory.NewClient(testenv.Direct(t, httpURL, tel))
	build, _ := testenv.DirectGRPC(t, grpcAddr, tel)
	overGRPC := inventory.NewClient(inventory.GRPC.Factory(build))
	ctx := context.Background()

	viaHTTP, err := overHTTP.ListProducts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	viaGRPC, err := overGRPC.ListProducts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(viaHTTP, viaGRPC) || len(viaGRPC) != len(testCatalogue) {
		t.Fatalf("ListProducts over gRPC = %+v\nover HTTP = %+v", viaGRPC, viaHTTP)
	}

	r, err := overGRPC.Reserve(ctx, "o1", []inventory.Item{{SKU: "B", Quantity: 2}})
	if err != nil || r.Status != inventory.Held || r.OrderID != "o1" || len(r.Items) != 1 || r.ExpiresAt.IsZero() {
		t.Fatalf("Reserve over gRPC = %+v, %v", r, err)
	}
	// What gRPC changed, HTTP reads, and the other way round.
	if p, err := overHTTP.GetProduct(ctx, "B"); err != nil || p.Available != 3 {
		t.Fatalf("GetProduct(B) over HTTP after a gRPC reservation of 2 = %+v, %v; want 3 available", p, err)
	}
	again, err := overHTTP.Reserve(ctx, "o1", []inventory.Item{{SKU: "B", Quantity: 2}})
	if err != nil || !again.ExpiresAt.Equal(r.ExpiresAt) || again.Status != r.Status {
		t.Fatalf("the same reservation over HTTP = %+v, %v; want %+v", again, err, r)
	}
	if c, err := overGRPC.Commit(ctx, "o1"); err != nil || c.Status != inventory.Committed {
		t.Fatalf("Commit over gRPC = %+v, %v", c, err)
	}

	// Business errors cross the wire typed, kind, code and detail.
	typed := []struct {
		name string
		call func(inventory.Service) error
		kind errs.Kind
		code string
	}{
		{"out of stock", func(c inventory.Service) error {
			_, err := c.Reserve(ctx, "o2", []inventory.Item{{SKU: "B", Quantity: 4}})
			return err
		}, errs.Conflict, inventory.CodeOutOfStock},
		{"unknown product", func(c inventory.Service) error { _, err := c.GetProduct(ctx, "NOPE"); return err }, errs.NotFound, inventory.CodeUnknownProduct},
		{"invalid", func(c inventory.Service) error { _, err := c.Reserve(ctx, "o3", nil); return err }, errs.Invalid, inventory.CodeInvalidItems},
		{"committed", func(c inventory.Service) error { _, err := c.Release(ctx, "o1"); return err }, errs.Conflict, inventory.CodeReservationCommitted},
	}
	for _, tt := range typed {
		t.Run(tt.name, func(t *testing.T) {
			var fromHTTP, fromGRPC *errs.Error
			if !errors.As(tt.call(overHTTP), &fromHTTP) || !errors.As(tt.call(overGRPC), &fromGRPC) {
				t.Fatalf("errors are not *errs.Error: HTTP %v, gRPC %v", fromHTTP, fromGRPC)
			}
			if fromGRPC.Kind != tt.kind || fromGRPC.Code != tt.code || fromGRPC.Detail != fromHTTP.Detail {
				t.Errorf("over gRPC: %+v; over HTTP: %+v; want kind %v code %q, the same detail", fromGRPC, fromHTTP, tt.kind, tt.code)
			}
		})
	}
	assertConserved(t, store)
}

// rawCodec sends bytes as they are, under the proto codec's name, so the
// server decodes them as a protobuf message.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)      { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error { *(v.(*[]byte)) = data; return nil }
func (rawCodec) Name() string                       { return "proto" }

func TestBadInputOverGRPCIsRefusedAndChangesNothing(t *testing.T) {
	_, grpcAddr, store, _ := bothServers(t)
	_, conn := testenv.DirectGRPC(t, grpcAddr, testenv.Telemetry(t, "orders"))
	before, err := store.StockLedger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reserve := "/" + inventory.GRPC.Name() + "/Reserve"
	valid := &inventoryv1.ReserveRequest{OrderId: "o1", Items: []*inventoryv1.Item{{Sku: "B", Quantity: 1}}}
	withUnknown := &inventoryv1.ReserveRequest{OrderId: "o1", Items: []*inventoryv1.Item{{Sku: "B", Quantity: 1}}}
	withUnknown.Items[0].ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1))

	tests := []struct {
		name   string
		call   func(ctx context.Context) error
		noDead bool // call without a deadline
		code   codes.Code
		reason string // the ErrorInfo reason, our stable code; "" for gRPC's own
		detail string
	}{
		{"malformed message", func(ctx context.Context) error {
			var out []byte
			return conn.Invoke(ctx, reserve, []byte{0x0a, 0xff, 0xff}, &out, grpc.ForceCodec(rawCodec{}))
		}, false, codes.InvalidArgument, "malformed_message", "glasshouse.inventory.v1.ReserveRequest"},
		{"unknown field", func(ctx context.Context) error {
			return conn.Invoke(ctx, reserve, withUnknown, &inventoryv1.Reservation{})
		}, false, codes.InvalidArgument, "unknown_field", "items[0]"},
		{"oversized message", func(ctx context.Context) error {
			big := &inventoryv1.ReserveRequest{OrderId: strings.Repeat("x", 5<<10), Items: valid.Items}
			return conn.Invoke(ctx, reserve, big, &inventoryv1.Reservation{})
		}, false, codes.ResourceExhausted, "", "larger than max"},
		{"no deadline", func(ctx context.Context) error {
			return conn.Invoke(ctx, reserve, valid, &inventoryv1.Reservation{})
		}, true, codes.InvalidArgument, "deadline_required", "without a deadline"},
		{"zero quantity", func(ctx context.Context) error {
			zero := &inventoryv1.ReserveRequest{OrderId: "o1", Items: []*inventoryv1.Item{{Sku: "B"}}}
			return conn.Invoke(ctx, reserve, zero, &inventoryv1.Reservation{})
		}, false, codes.InvalidArgument, inventory.CodeInvalidItems, "items[0].quantity"},
		{"unknown sku", func(ctx context.Context) error {
			unknown := &inventoryv1.ReserveRequest{OrderId: "o1", Items: []*inventoryv1.Item{{Sku: "ZZZ", Quantity: 1}}}
			return conn.Invoke(ctx, reserve, unknown, &inventoryv1.Reservation{})
		}, false, codes.NotFound, inventory.CodeUnknownProduct, `"ZZZ"`},
		{"unknown method", func(ctx context.Context) error {
			return conn.Invoke(ctx, "/"+inventory.GRPC.Name()+"/Restock", valid, &inventoryv1.Reservation{})
		}, false, codes.Unimplemented, "", "Restock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if !tt.noDead {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
			}
			st := status.Convert(tt.call(ctx))
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.detail) {
				t.Errorf("status = %v %q; want %v with a message containing %q", st.Code(), st.Message(), tt.code, tt.detail)
			}
			if tt.reason != "" && errs.CodeOf(transport.DecodeGRPCError(st.Err())) != tt.reason {
				t.Errorf("status %v decodes to %v; want code %q", st, transport.DecodeGRPCError(st.Err()), tt.reason)
			}
		})
	}
	after, err := store.StockLedger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("bad calls changed the store:\nbefore %v\nafter  %v", before, after)
	}
}

func TestGRPCHealthFollowsReadiness(t *testing.T) {
	_, grpcAddr, _, health := bothServers(t)
	_, conn := testenv.DirectGRPC(t, grpcAddr, testenv.Telemetry(t, "consul"))
	client := healthpb.NewHealthClient(conn)
	check := func(service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		return resp.GetStatus(), err
	}
	for _, name := range []string{"", inventory.GRPC.Name()} {
		if got, err := check(name); err != nil || got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q = %v, %v; want SERVING", name, got, err)
		}
	}
	if _, err := check("glasshouse.payments.v1.Payments"); status.Code(err) != codes.NotFound {
		t.Errorf("health of a service not served here = %v; want NOT_FOUND", err)
	}
	health.Drain() // what shutdown does first; /readyz says "draining"
	if got, err := check(inventory.GRPC.Name()); err != nil || got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health while draining = %v, %v; want NOT_SERVING", got, err)
	}
}
