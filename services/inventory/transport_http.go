package inventory

import (
	"context"
	"net/http"

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
	if err := transport.SetPath(r, "products"); err != nil {
		return err
	}
	return nil
}

func encodeGetProduct(_ context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "products", request.(GetProductRequest).SKU); err != nil {
		return err
	}
	return nil
}

func encodeReserve(ctx context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "reservations"); err != nil {
		return err
	}
	return httptransport.EncodeJSONRequest(ctx, r, request)
}

func encodeCommit(_ context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "reservations", request.(CommitRequest).OrderID, "commit"); err != nil {
		return err
	}
	return nil
}

func encodeRelease(_ context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "reservations", request.(ReleaseRequest).OrderID); err != nil {
		return err
	}
	return nil
}

// makeClientEndpoints describes every call on the wire and builds each
// with build: against one instance, or over discovery with breakers and
// retries. Every inventory call is idempotent: reads, and writes keyed by
// order ID.
func makeClientEndpoints(build transport.ClientFactory) Endpoints {
	return Endpoints{
		ListProductsEndpoint: build(transport.ClientRoute{Name: "ListProducts", Method: "GET", Idempotent: true,
			Encode: encodeListProducts, Decode: transport.DecodeJSONResponse[ListProductsResponse]()}),
		GetProductEndpoint: build(transport.ClientRoute{Name: "GetProduct", Method: "GET", Idempotent: true,
			Encode: encodeGetProduct, Decode: transport.DecodeJSONResponse[Product]()}),
		ReserveEndpoint: build(transport.ClientRoute{Name: "Reserve", Method: "POST", Idempotent: true,
			Encode: encodeReserve, Decode: transport.DecodeJSONResponse[Reservation]()}),
		CommitEndpoint: build(transport.ClientRoute{Name: "Commit", Method: "POST", Idempotent: true,
			Encode: encodeCommit, Decode: transport.DecodeJSONResponse[Reservation]()}),
		ReleaseEndpoint: build(transport.ClientRoute{Name: "Release", Method: "DELETE", Idempotent: true,
			Encode: encodeRelease, Decode: transport.DecodeJSONResponse[Reservation]()}),
	}
}
