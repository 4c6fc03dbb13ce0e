package payments

import (
	"testing"

	paymentsv1 "github.com/glasshouse-dev/glasshouse/api/proto/payments/v1"
	"github.com/glasshouse-dev/glasshouse/internal/fuzzcheck"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeGRPCRequests runs the bytes through every rpc's request
// decoding, as the gRPC server does: each refusal is the caller's fault,
// and a decoded request survives the trip from a client unchanged.
func FuzzDecodeGRPCRequests(f *testing.F) {
	for _, seed := range []proto.Message{
		&paymentsv1.ChargeRequest{OrderId: "ord_1", AmountCents: 2400, Currency: "EUR", CardNumber: TestCardApproved},
		&paymentsv1.ChargeRequest{OrderId: "..", AmountCents: -1, Currency: "€", CardNumber: "4242 4242"},
		&paymentsv1.ChargeIDRequest{ChargeId: "ch_1"},
		&paymentsv1.OrderRequest{OrderId: "ord_1"},
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
