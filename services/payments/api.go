package payments

import (
	"context"
	"net/http"

	"github.com/glasshouse-dev/glasshouse/transport"
)

// ServiceName is the payments service's name in Consul, metrics and traces.
const ServiceName = "payments"

// API is the payments service on the wire, each method declared once
// below: the server's routes and endpoints and the client are built from
// it. Every call is idempotent: reads, refunds (refunding twice changes
// nothing), voids, and charges, which are keyed by order ID, so a retried
// Charge can never charge twice.
var API = transport.NewAPI[Service](ServiceName, charge, refund, getCharge, findCharge, void)

// AdminAPI is the fault knobs on the wire, served on the admin listener
// only: whoever can reach the public API must not be able to make
// payments fail. Operators and chaos tests call it with plain HTTP, so it
// has no typed client; the gateway never routes it.
var AdminAPI = transport.NewAPI[Admin](ServiceName, getFaults, setFaults)

type (
	method[Req any]      = transport.Method[Service, Req, Charge]
	adminMethod[Req any] = transport.Method[Admin, Req, FaultSettings]
)

var (
	// A replay of a charge answers 201 too, byte for byte the same.
	charge = method[ChargeRequest]{Name: "Charge", Route: "POST /charges", Status: http.StatusCreated, Idempotent: true,
		Serve: Service.Charge}
	refund = method[ChargeIDRequest]{Name: "Refund", Route: "POST /charges/{id}/refund", Idempotent: true,
		Serve: byChargeID(Service.Refund)}
	getCharge = method[ChargeIDRequest]{Name: "GetCharge", Route: "GET /charges/{id}", Idempotent: true,
		Serve: byChargeID(Service.GetCharge)}
	findCharge = method[OrderRequest]{Name: "FindCharge", Route: "GET /orders/{orderID}/charge", Idempotent: true,
		Serve: byOrderID(Service.FindCharge)}
	void = method[OrderRequest]{Name: "Void", Route: "POST /orders/{orderID}/void", Idempotent: true,
		Serve: byOrderID(Service.Void)}

	getFaults = adminMethod[struct{}]{Name: "GetFaults", Route: "GET /admin/faults", Idempotent: true,
		Serve: func(a Admin, ctx context.Context, _ struct{}) (FaultSettings, error) { return a.GetFaults(ctx) }}
	// PUT takes the whole settings: a field left out is set to zero, so
	// PUT {"error_rate": 0.2} also turns the latency off.
	setFaults = adminMethod[FaultSettings]{Name: "SetFaults", Route: "PUT /admin/faults", Idempotent: true,
		Serve: Admin.SetFaults}
)

// byChargeID and byOrderID serve a method that takes the one identifier
// its route carries in the path.
func byChargeID(serve func(Service, context.Context, string) (Charge, error)) func(Service, context.Context, ChargeIDRequest) (Charge, error) {
	return func(s Service, ctx context.Context, req ChargeIDRequest) (Charge, error) {
		return serve(s, ctx, req.ChargeID)
	}
}

func byOrderID(serve func(Service, context.Context, string) (Charge, error)) func(Service, context.Context, OrderRequest) (Charge, error) {
	return func(s Service, ctx context.Context, req OrderRequest) (Charge, error) {
		return serve(s, ctx, req.OrderID)
	}
}

// Requests besides ChargeRequest and FaultSettings, which travel as they
// are: an identifier in the path, no body.
type (
	ChargeIDRequest struct {
		ChargeID string `path:"id" json:"-"`
	}
	OrderRequest struct {
		OrderID string `path:"orderID" json:"-"`
	}
)

//go:generate go run github.com/glasshouse-dev/glasshouse/transport/cmd/clientgen

// NewClient returns payments over the calls build makes: over discovery
// with breakers and retries (transport.Remote.Factory), or to one
// instance (transport.NewDirectFactory). Errors come back typed, as the
// service returned them (a declined card is errs.Declined, never
// retried); an unreachable payments is errs.Unavailable.
//
// Its methods are in client_gen.go, which clientgen writes from the
// declarations above.
func NewClient(build transport.ClientFactory) Service { return client{API.Client(build)} }
