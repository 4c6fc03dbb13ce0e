package recommendations

import (
	"net/url"
	"testing"

	recommendationsv1 "github.com/glasshouse-dev/glasshouse/api/proto/recommendations/v1"
	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/fuzzcheck"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeRequests decodes the input as GetRecommendations' path and
// limit: each arrives unchanged, and a limit ParseLimit refuses is the
// caller's fault.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range [][2]string{{"MUG-01", ""}, {"MUG-01", "5"}, {"..", "-1"}, {"", "9999999999999"}, {"a b", "five"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, sku, limit string) {
		r := fuzzcheck.Request("GET", "/recommendations/"+url.PathEscape(sku)+"?limit="+url.QueryEscape(limit), nil)
		r.SetPathValue("sku", sku)
		v, err := API.Decode("GetRecommendations", r, nil)
		if err != nil {
			fuzzcheck.CallerError(t, err, errs.Invalid)
			return
		}
		req := v.(RecommendationsRequest)
		if req.SKU != sku || req.Limit != limit {
			t.Fatalf("decoded %+v from sku %q, limit %q", req, sku, limit)
		}
		if _, err := ParseLimit(req.Limit); err != nil {
			fuzzcheck.CallerError(t, err, errs.Invalid)
		}
	})
}

// FuzzDecodeGRPCRequests runs the bytes through the rpc's request
// decoding, as the gRPC server does.
func FuzzDecodeGRPCRequests(f *testing.F) {
	for _, seed := range []proto.Message{
		&recommendationsv1.RecommendationsRequest{Sku: "MUG-01", Limit: 5},
		&recommendationsv1.RecommendationsRequest{Sku: "..", Limit: -7},
	} {
		b, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) { fuzzcheck.GRPCRequests(t, GRPC, API.Methods(), body) })
}
