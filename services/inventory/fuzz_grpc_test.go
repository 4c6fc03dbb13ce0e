package inventory

import (
	"testing"

	inventoryv1 "github.com/glasshouse-dev/glasshouse/api/proto/inventory/v1"
	"github.com/glasshouse-dev/glasshouse/internal/fuzzcheck"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeGRPCRequests runs the bytes through every rpc's request
// decoding, as the gRPC server does: each refusal is the caller's fault,
// and a decoded request survives the trip from a client unchanged.
func FuzzDecodeGRPCRequests(f *testing.F) {
	for _, seed := range []proto.Message{
		&inventoryv1.ReserveRequest{OrderId: "ord_1", Items: []*inventoryv1.Item{{Sku: "GH-MUG-01", Quantity: 2}}},
		&inventoryv1.ReserveRequest{OrderId: "..", Items: []*inventoryv1.Item{{Sku: "/", Quantity: -9223372036854775808}}},
		&inventoryv1.OrderRequest{OrderId: "ord_1"},
		&inventoryv1.GetProductRequest{Sku: "GH-MUG-01"},
	} {
		b, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) { fuzzcheck.GRPCRequests(t, GRPC, API.Methods(), body) })
}
