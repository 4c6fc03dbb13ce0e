package recommendations

import (
	"strconv"

	recommendationsv1 "github.com/glasshouse-dev/glasshouse/api/proto/recommendations/v1"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// GRPC is the recommendations API over gRPC: its one method bound to its
// rpc in api/proto/recommendations/v1. The gateway calls it this way.
var GRPC = transport.NewGRPCAPI(API, &recommendationsv1.Recommendations_ServiceDesc,
	transport.RPC(getRecommendations, requestCodec, responseCodec),
)

var (
	// The limit is a number in protobuf, 0 for the default; the wire
	// type's is the query string, which the server's ParseLimit reads
	// either way. A limit that is no number travels as -1, so the server
	// refuses it as it would over HTTP.
	requestCodec = transport.Codec[RecommendationsRequest, *recommendationsv1.RecommendationsRequest]{
		ToProto: func(r RecommendationsRequest) *recommendationsv1.RecommendationsRequest {
			limit, err := strconv.ParseInt(r.Limit, 10, 32)
			if err != nil && r.Limit != "" {
				limit = -1
			}
			return &recommendationsv1.RecommendationsRequest{Sku: r.SKU, Limit: int32(limit)}
		},
		FromProto: func(m *recommendationsv1.RecommendationsRequest) (RecommendationsRequest, error) {
			r := RecommendationsRequest{SKU: m.GetSku()}
			if m.GetLimit() != 0 {
				r.Limit = strconv.Itoa(int(m.GetLimit()))
			}
			return r, nil
		},
	}
	responseCodec = transport.Codec[Recommendations, *recommendationsv1.RecommendationsResponse]{
		ToProto: func(r Recommendations) *recommendationsv1.RecommendationsResponse {
			m := &recommendationsv1.RecommendationsResponse{Sku: r.SKU}
			for _, rec := range r.Recommendations {
				m.Recommendations = append(m.Recommendations, &recommendationsv1.Recommendation{Sku: rec.SKU, Customers: int64(rec.Customers)})
			}
			return m
		},
		FromProto: func(m *recommendationsv1.RecommendationsResponse) (Recommendations, error) {
			r := Recommendations{SKU: m.GetSku(), Recommendations: []Recommendation{}}
			for _, rec := range m.GetRecommendations() {
				r.Recommendations = append(r.Recommendations, Recommendation{SKU: rec.GetSku(), Customers: int(rec.GetCustomers())})
			}
			return r, nil
		},
	}
)
