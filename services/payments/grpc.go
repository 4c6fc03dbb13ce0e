package payments

import (
	paymentsv1 "github.com/glasshouse-dev/glasshouse/api/proto/payments/v1"
	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/transport"
	"google.golang.org/protobuf/proto"
)

// GRPC is the payments API over gRPC: each method of API bound to its
// rpc in api/proto/payments/v1, with the conversions between the
// protobuf messages and the wire types. The endpoints, middlewares and
// typed client are API's; only the encoding differs. AdminAPI stays on
// the admin listener, over HTTP only.
var GRPC = transport.NewGRPCAPI(API, &paymentsv1.Payments_ServiceDesc,
	transport.RPC(charge, chargeRequest, chargeCodec),
	transport.RPC(refund, chargeIDRequest, chargeCodec),
	transport.RPC(getCharge, chargeIDRequest, chargeCodec),
	transport.RPC(findCharge, orderRequest, chargeCodec),
	transport.RPC(void, orderRequest, chargeCodec),
)

type codec[T any, P proto.Message] = transport.Codec[T, P]

var (
	chargeRequest = codec[ChargeRequest, *paymentsv1.ChargeRequest]{
		ToProto: func(r ChargeRequest) *paymentsv1.ChargeRequest {
			return &paymentsv1.ChargeRequest{OrderId: r.OrderID, AmountCents: r.AmountCents, Currency: r.Currency, CardNumber: r.CardNumber}
		},
		FromProto: func(m *paymentsv1.ChargeRequest) (ChargeRequest, error) {
			return ChargeRequest{OrderID: m.GetOrderId(), AmountCents: m.GetAmountCents(), Currency: m.GetCurrency(), CardNumber: m.GetCardNumber()}, nil
		},
	}
	chargeIDRequest = codec[ChargeIDRequest, *paymentsv1.ChargeIDRequest]{
		ToProto: func(r ChargeIDRequest) *paymentsv1.ChargeIDRequest {
			return &paymentsv1.ChargeIDRequest{ChargeId: r.ChargeID}
		},
		FromProto: func(m *paymentsv1.ChargeIDRequest) (ChargeIDRequest, error) {
			return ChargeIDRequest{ChargeID: m.GetChargeId()}, nil
		},
	}
	orderRequest = codec[OrderRequest, *paymentsv1.OrderRequest]{
		ToProto: func(r OrderRequest) *paymentsv1.OrderRequest { return &paymentsv1.OrderRequest{OrderId: r.OrderID} },
		FromProto: func(m *paymentsv1.OrderRequest) (OrderRequest, error) {
			return OrderRequest{OrderID: m.GetOrderId()}, nil
		},
	}
	chargeCodec = codec[Charge, *paymentsv1.Charge]{
		ToProto: func(c Charge) *paymentsv1.Charge {
			m := &paymentsv1.Charge{Id: c.ID, OrderId: c.OrderID, AmountCents: c.AmountCents, Currency: c.Currency,
				Status: chargeStatus[c.Status], CardLast4: c.CardLast4, CreatedAt: transport.Timestamp(c.CreatedAt)}
			if c.RefundedAt != nil {
				m.RefundedAt = transport.Timestamp(*c.RefundedAt)
			}
			return m
		},
		FromProto: func(m *paymentsv1.Charge) (Charge, error) {
			status, ok := chargeStatusOf[m.GetStatus()]
			if !ok {
				return Charge{}, errs.E(errs.Invalid, "unknown_status", "charge status %v is not one this client knows", m.GetStatus())
			}
			c := Charge{ID: m.GetId(), OrderID: m.GetOrderId(), AmountCents: m.GetAmountCents(), Currency: m.GetCurrency(),
				Status: status, CardLast4: m.GetCardLast4(), CreatedAt: transport.FromTimestamp(m.GetCreatedAt())}
			if m.GetRefundedAt() != nil {
				t := transport.FromTimestamp(m.GetRefundedAt())
				c.RefundedAt = &t
			}
			return c, nil
		},
	}
)

var (
	chargeStatus = map[ChargeStatus]paymentsv1.ChargeStatus{
		Succeeded: paymentsv1.ChargeStatus_CHARGE_STATUS_SUCCEEDED,
		Declined:  paymentsv1.ChargeStatus_CHARGE_STATUS_DECLINED,
		Refunded:  paymentsv1.ChargeStatus_CHARGE_STATUS_REFUNDED,
		Voided:    paymentsv1.ChargeStatus_CHARGE_STATUS_VOIDED,
	}
	chargeStatusOf = transport.Invert(chargeStatus)
)
