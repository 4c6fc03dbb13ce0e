package recommendations

import (
	"context"
	"strconv"

	"github.com/glasshouse-dev/glasshouse/transport"
)

// ServiceName is the recommendations service's name in Consul, metrics
// and traces.
const ServiceName = "recommendations"

// API is the recommendations service on the wire: one read.
var API = transport.NewAPI[Service](ServiceName, getRecommendations)

var getRecommendations = transport.Method[Service, RecommendationsRequest, Recommendations]{
	Name: "GetRecommendations", Route: "GET /recommendations/{sku}", Idempotent: true,
	Serve: func(s Service, ctx context.Context, req RecommendationsRequest) (Recommendations, error) {
		limit, err := ParseLimit(req.Limit)
		if err != nil {
			return Recommendations{}, err
		}
		return s.GetRecommendations(ctx, req.SKU, limit)
	}}

// RecommendationsRequest is a product and, in the query, how many
// recommendations to return (?limit=1..50, DefaultLimit when empty).
type RecommendationsRequest struct {
	SKU   string `path:"sku" json:"-"`
	Limit string `query:"limit" json:"-"`
}

//go:generate go run github.com/glasshouse-dev/glasshouse/transport/cmd/clientgen

// NewClient returns recommendations over the calls build makes: over
// discovery with breakers and retries (transport.Remote.Factory), or to
// one instance (transport.NewDirectFactory).
func NewClient(build transport.ClientFactory) Service { return client{API.Client(build)} }

// GetRecommendations is written by hand: the limit travels as a query
// string.
//
//clientgen:handwritten
func (c client) GetRecommendations(ctx context.Context, sku string, limit int) (Recommendations, error) {
	return getRecommendations.Call(ctx, c.e, RecommendationsRequest{SKU: sku, Limit: strconv.Itoa(limit)})
}
