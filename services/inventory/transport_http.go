package inventory

import (
	"context"
	"net/http"
	"net/url"

	"github.com/glasshouse-dev/glasshouse/transport"
	httptransport "github.com/go-kit/kit/transport/http"
)

// NewHTTPHandler exposes the endpoints over HTTP. All routes are here:
//
//	GET    /products                       list the catalogue
//	GET    /products/{sku}                 one product
//	POST   /reservations                   reserve items for an order (201)
//	POST   /reservations/{orderID}/commit  commit an order's reservation
//	DELETE /reservations/{orderID}         release an order's reservation
func NewHTTPHandler(e Endpoints) http.Handler {
	r := transport.NewRouter()
	r.Endpoint("GET", "/products", e.ListProductsEndpoint, decodeListProducts, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("GET", "/products/{sku}", e.GetProductEndpoint, decodeGetProduct, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("POST", "/reservations", e.ReserveEndpoint, decodeReserve, transport.EncodeJSON(http.StatusCreated))
	r.Endpoint("POST", "/reservations/{orderID}/commit", e.CommitEndpoint, decodeCommit, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("DELETE", "/reservations/{orderID}", e.ReleaseEndpoint, decodeRelease, transport.EncodeJSON(http.StatusOK))
	return r
}

func decodeListProducts(context.Context, *http.Request) (any, error) {
	return ListProductsRequest{}, nil
}

func decodeGetProduct(_ context.Context, r *http.Request) (any, error) {
	return GetProductRequest{SKU: r.PathValue("sku")}, nil
}

func decodeReserve(_ context.Context, r *http.Request) (any, error) {
	return transport.DecodeJSON[ReserveRequest](r)
}

func decodeCommit(_ context.Context, r *http.Request) (any, error) {
	return CommitRequest{OrderID: r.PathValue("orderID")}, nil
}

func decodeRelease(_ context.Context, r *http.Request) (any, error) {
	return ReleaseRequest{OrderID: r.PathValue("orderID")}, nil
}

// Client-side request encoders: the mirror image of the decoders above.

func encodeListProducts(_ context.Context, r *http.Request, _ any) error {
	r.URL = transport.JoinPath(r.URL, "products")
	return nil
}

func encodeGetProduct(_ context.Context, r *http.Request, request any) error {
	r.URL = transport.JoinPath(r.URL, "products", request.(GetProductRequest).SKU)
	return nil
}

func encodeReserve(ctx context.Context, r *http.Request, request any) error {
	r.URL = transport.JoinPath(r.URL, "reservations")
	return httptransport.EncodeJSONRequest(ctx, r, request)
}

func encodeCommit(_ context.Context, r *http.Request, request any) error {
	r.URL = transport.JoinPath(r.URL, "reservations", request.(CommitRequest).OrderID, "commit")
	return nil
}

func encodeRelease(_ context.Context, r *http.Request, request any) error {
	r.URL = transport.JoinPath(r.URL, "reservations", request.(ReleaseRequest).OrderID)
	return nil
}

// makeClientEndpoints builds client endpoints for one inventory instance
// at base.
func makeClientEndpoints(base *url.URL, opts ...httptransport.ClientOption) Endpoints {
	return Endpoints{
		ListProductsEndpoint: httptransport.NewClient("GET", base, encodeListProducts, transport.DecodeJSONResponse[ListProductsResponse](), opts...).Endpoint(),
		GetProductEndpoint:   httptransport.NewClient("GET", base, encodeGetProduct, transport.DecodeJSONResponse[Product](), opts...).Endpoint(),
		ReserveEndpoint:      httptransport.NewClient("POST", base, encodeReserve, transport.DecodeJSONResponse[Reservation](), opts...).Endpoint(),
		CommitEndpoint:       httptransport.NewClient("POST", base, encodeCommit, transport.DecodeJSONResponse[Reservation](), opts...).Endpoint(),
		ReleaseEndpoint:      httptransport.NewClient("DELETE", base, encodeRelease, transport.DecodeJSONResponse[Reservation](), opts...).Endpoint(),
	}
}
