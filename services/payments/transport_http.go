package payments

import (
	"context"
	"net/http"

	"github.com/glasshouse-dev/glasshouse/transport"
	httptransport "github.com/go-kit/kit/transport/http"
)

// NewHTTPHandler exposes the endpoints over HTTP, on the public
// listener. All its routes are here:
//
//	POST /charges                  charge a card for an order (201; a replay answers the same)
//	POST /charges/{id}/refund      refund a charge
//	GET  /charges/{id}             one charge
//	GET  /orders/{orderID}/charge  the charge made for an order
//	POST /orders/{orderID}/void    void the charge of an order that will not complete
//
// The fault knobs are not here: see NewAdminHTTPHandler.
func NewHTTPHandler(e Endpoints) http.Handler {
	r := transport.NewRouter()
	r.Endpoint("POST", "/charges", e.ChargeEndpoint, decodeCharge, transport.EncodeJSON(http.StatusCreated))
	r.Endpoint("POST", "/charges/{id}/refund", e.RefundEndpoint, decodeRefund, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("GET", "/charges/{id}", e.GetChargeEndpoint, decodeGetCharge, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("GET", "/orders/{orderID}/charge", e.FindChargeEndpoint, decodeFindCharge, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("POST", "/orders/{orderID}/void", e.VoidEndpoint, decodeVoid, transport.EncodeJSON(http.StatusOK))
	return r
}

// NewAdminHTTPHandler exposes the fault knobs, on the admin listener only:
// whoever can reach the public API must not be able to make payments
// fail. Its routes:
//
//	GET  /admin/faults             the fault knobs
//	PUT  /admin/faults             turn the fault knobs
func NewAdminHTTPHandler(admin AdminEndpoints) http.Handler {
	r := transport.NewRouter()
	r.Endpoint("GET", "/admin/faults", admin.GetFaultsEndpoint, decodeGetFaults, transport.EncodeJSON(http.StatusOK))
	r.Endpoint("PUT", "/admin/faults", admin.SetFaultsEndpoint, decodeSetFaults, transport.EncodeJSON(http.StatusOK))
	return r
}

func decodeCharge(_ context.Context, r *http.Request) (any, error) {
	return transport.DecodeJSON[ChargeRequest](r)
}

func decodeRefund(_ context.Context, r *http.Request) (any, error) {
	return RefundRequest{ChargeID: r.PathValue("id")}, nil
}

func decodeGetCharge(_ context.Context, r *http.Request) (any, error) {
	return GetChargeRequest{ChargeID: r.PathValue("id")}, nil
}

func decodeFindCharge(_ context.Context, r *http.Request) (any, error) {
	return FindChargeRequest{OrderID: r.PathValue("orderID")}, nil
}

func decodeVoid(_ context.Context, r *http.Request) (any, error) {
	return VoidRequest{OrderID: r.PathValue("orderID")}, nil
}

func decodeGetFaults(context.Context, *http.Request) (any, error) {
	return GetFaultsRequest{}, nil
}

// decodeSetFaults reads the whole settings: a field left out is set to
// zero, so PUT {"error_rate": 0.2} also turns the latency off.
func decodeSetFaults(_ context.Context, r *http.Request) (any, error) {
	return transport.DecodeJSON[FaultSettings](r)
}

// Client-side request encoders: the mirror image of the decoders above.
// The admin routes have none: operators call them with curl.

func encodeCharge(ctx context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "charges"); err != nil {
		return err
	}
	return httptransport.EncodeJSONRequest(ctx, r, request)
}

func encodeRefund(_ context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "charges", request.(RefundRequest).ChargeID, "refund"); err != nil {
		return err
	}
	return nil
}

func encodeGetCharge(_ context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "charges", request.(GetChargeRequest).ChargeID); err != nil {
		return err
	}
	return nil
}

func encodeFindCharge(_ context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "orders", request.(FindChargeRequest).OrderID, "charge"); err != nil {
		return err
	}
	return nil
}

func encodeVoid(_ context.Context, r *http.Request, request any) error {
	if err := transport.SetPath(r, "orders", request.(VoidRequest).OrderID, "void"); err != nil {
		return err
	}
	return nil
}

// makeClientEndpoints describes every call on the wire and builds each
// with build: against one instance, or over discovery with breakers and
// retries. Every payments call is idempotent: reads, refunds (refunding
// twice changes nothing) and charges, which are keyed by order ID, so a
// retried Charge can never charge twice.
func makeClientEndpoints(build transport.ClientFactory) Endpoints {
	return Endpoints{
		ChargeEndpoint: build(transport.ClientRoute{Name: "Charge", Method: "POST", Idempotent: true,
			Encode: encodeCharge, Decode: transport.DecodeJSONResponse[Charge]()}),
		RefundEndpoint: build(transport.ClientRoute{Name: "Refund", Method: "POST", Idempotent: true,
			Encode: encodeRefund, Decode: transport.DecodeJSONResponse[Charge]()}),
		GetChargeEndpoint: build(transport.ClientRoute{Name: "GetCharge", Method: "GET", Idempotent: true,
			Encode: encodeGetCharge, Decode: transport.DecodeJSONResponse[Charge]()}),
		FindChargeEndpoint: build(transport.ClientRoute{Name: "FindCharge", Method: "GET", Idempotent: true,
			Encode: encodeFindCharge, Decode: transport.DecodeJSONResponse[Charge]()}),
		VoidEndpoint: build(transport.ClientRoute{Name: "Void", Method: "POST", Idempotent: true,
			Encode: encodeVoid, Decode: transport.DecodeJSONResponse[Charge]()}),
	}
}
