package payments

import (
	"context"

	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
)

// Endpoints is the payments service as a set of go-kit endpoints, one per
// method. On the server it wraps the Service; on the client it wraps HTTP
// calls, and its methods implement Service again, so a caller holding a
// payments.Service cannot tell the difference.
type Endpoints struct {
	ChargeEndpoint     endpoint.Endpoint
	RefundEndpoint     endpoint.Endpoint
	GetChargeEndpoint  endpoint.Endpoint
	FindChargeEndpoint endpoint.Endpoint
	VoidEndpoint       endpoint.Endpoint
}

// Middleware returns the endpoint middleware for the named endpoint, such
// as observability's tracing, metrics and logging stack.
type Middleware func(name string) endpoint.Middleware

// NewEndpoints wraps svc's methods as endpoints, each decorated by mw.
func NewEndpoints(svc Service, mw Middleware) Endpoints {
	return Endpoints{
		ChargeEndpoint: transport.Endpoint(func(ctx context.Context, req ChargeRequest) (Charge, error) {
			return svc.Charge(ctx, req)
		}),
		RefundEndpoint: transport.Endpoint(func(ctx context.Context, req RefundRequest) (Charge, error) {
			return svc.Refund(ctx, req.ChargeID)
		}),
		GetChargeEndpoint: transport.Endpoint(func(ctx context.Context, req GetChargeRequest) (Charge, error) {
			return svc.GetCharge(ctx, req.ChargeID)
		}),
		FindChargeEndpoint: transport.Endpoint(func(ctx context.Context, req FindChargeRequest) (Charge, error) {
			return svc.FindCharge(ctx, req.OrderID)
		}),
		VoidEndpoint: transport.Endpoint(func(ctx context.Context, req VoidRequest) (Charge, error) {
			return svc.Void(ctx, req.OrderID)
		}),
	}.With(mw)
}

// With returns the set with each endpoint decorated by mw(its name).
func (e Endpoints) With(mw Middleware) Endpoints {
	return Endpoints{
		ChargeEndpoint:     mw("Charge")(e.ChargeEndpoint),
		RefundEndpoint:     mw("Refund")(e.RefundEndpoint),
		GetChargeEndpoint:  mw("GetCharge")(e.GetChargeEndpoint),
		FindChargeEndpoint: mw("FindCharge")(e.FindChargeEndpoint),
		VoidEndpoint:       mw("Void")(e.VoidEndpoint),
	}
}

// Requests of the endpoints besides ChargeRequest, which the service takes
// as it is. Their JSON forms are the wire contract (snake_case, money in
// integer cents).
type (
	RefundRequest struct {
		ChargeID string `json:"charge_id"`
	}
	GetChargeRequest struct {
		ChargeID string `json:"charge_id"`
	}
	FindChargeRequest struct {
		OrderID string `json:"order_id"`
	}
	VoidRequest struct {
		OrderID string `json:"order_id"`
	}
)

// Charge implements Service over the endpoints.
func (e Endpoints) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	return transport.Call[Charge](ctx, e.ChargeEndpoint, req)
}

// Refund implements Service over the endpoints.
func (e Endpoints) Refund(ctx context.Context, chargeID string) (Charge, error) {
	return transport.Call[Charge](ctx, e.RefundEndpoint, RefundRequest{ChargeID: chargeID})
}

// GetCharge implements Service over the endpoints.
func (e Endpoints) GetCharge(ctx context.Context, chargeID string) (Charge, error) {
	return transport.Call[Charge](ctx, e.GetChargeEndpoint, GetChargeRequest{ChargeID: chargeID})
}

// FindCharge implements Service over the endpoints.
func (e Endpoints) FindCharge(ctx context.Context, orderID string) (Charge, error) {
	return transport.Call[Charge](ctx, e.FindChargeEndpoint, FindChargeRequest{OrderID: orderID})
}

// Void implements Service over the endpoints.
func (e Endpoints) Void(ctx context.Context, orderID string) (Charge, error) {
	return transport.Call[Charge](ctx, e.VoidEndpoint, VoidRequest{OrderID: orderID})
}

// AdminEndpoints turn the fault knobs. They are not part of Service: only
// operators and chaos tests call them, directly on an instance, and the
// gateway never routes them. They still pass through the endpoint
// middlewares, so every change of the knobs is traced and logged.
type AdminEndpoints struct {
	GetFaultsEndpoint endpoint.Endpoint
	SetFaultsEndpoint endpoint.Endpoint
}

// NewAdminEndpoints exposes f's settings as endpoints, each decorated by mw.
func NewAdminEndpoints(f *Faults, mw Middleware) AdminEndpoints {
	return AdminEndpoints{
		GetFaultsEndpoint: mw("GetFaults")(transport.Endpoint(func(context.Context, GetFaultsRequest) (FaultSettings, error) {
			return f.Get(), nil
		})),
		SetFaultsEndpoint: mw("SetFaults")(transport.Endpoint(func(_ context.Context, req FaultSettings) (FaultSettings, error) {
			if err := f.Set(req); err != nil {
				return FaultSettings{}, err
			}
			return req, nil
		})),
	}
}

// GetFaultsRequest asks for the fault knobs' positions.
type GetFaultsRequest struct{}
