package payments_test

import (
	"context"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	paymentsv1 "github.com/glasshouse-dev/glasshouse/api/proto/payments/v1"
	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"github.com/glasshouse-dev/glasshouse/transport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// overBoth serves one payments' endpoints over HTTP and gRPC, as
// cmd/payments does, and returns a typed client over each.
func overBoth(t *testing.T) (overHTTP, overGRPC payments.Service, conn *grpc.ClientConn, store *payments.Store) {
	t.Helper()
	tel := testenv.Telemetry(t, payments.ServiceName)
	store = openTracedStore(t, testenv.SQLite, tel.TracerProvider)
	health := observability.NewHealth()
	endpoints := payments.API.Endpoints(payments.NewService(store, payments.Options{})).With(tel.ServerEndpoint)
	srv := httptest.NewServer(transport.Handler(tel, health, payments.API.Handler(endpoints), transport.ServerConfig{}))
	t.Cleanup(srv.Close)
	g := testenv.ServeGRPC(t, tel, health, transport.GRPCServerConfig{}, payments.GRPC.Service(endpoints))
	caller := testenv.Telemetry(t, "orders")
	build, conn := testenv.DirectGRPC(t, g.Addr().String(), caller)
	return payments.NewClient(testenv.Direct(t, srv.URL, caller)), payments.NewClient(payments.GRPC.Factory(build)), conn, store
}

func TestChargesOverGRPCAreTheChargesOverHTTP(t *testing.T) {
	overHTTP, overGRPC, _, store := overBoth(t)
	ctx := context.Background()
	req := payments.ChargeRequest{OrderID: "o1", AmountCents: 2400, Currency: "EUR", CardNumber: payments.TestCardApproved}
	c, err := overGRPC.Charge(ctx, req)
	if err != nil || c.Status != payments.Succeeded || c.ID == "" || c.CardLast4 != "4242" || c.CreatedAt.IsZero() {
		t.Fatalf("Charge over gRPC = %+v, %v", c, err)
	}
	// A retried charge, over either transport, is the same charge.
	again, err := overHTTP.Charge(ctx, req)
	if err != nil || !reflect.DeepEqual(again, c) {
		t.Fatalf("the same charge over HTTP = %+v, %v; want %+v", again, err, c)
	}
	refunded, err := overGRPC.Refund(ctx, c.ID)
	if err != nil || refunded.Status != payments.Refunded || refunded.RefundedAt == nil {
		t.Fatalf("Refund over gRPC = %+v, %v", refunded, err)
	}
	viaHTTP, err := overHTTP.GetCharge(ctx, c.ID)
	if err != nil || !reflect.DeepEqual(viaHTTP, refunded) {
		t.Fatalf("GetCharge over HTTP = %+v, %v; want %+v", viaHTTP, err, refunded)
	}
	// A void of an order never charged has no ID and no times.
	voided, err := overGRPC.Void(ctx, "o2")
	if err != nil || voided.Status != payments.Voided || voided.ID != "" || voided.RefundedAt != nil {
		t.Fatalf("Void over gRPC = %+v, %v", voided, err)
	}

	// A declined card is an answer, typed: never retried, never counted.
	declined := payments.ChargeRequest{OrderID: "o3", AmountCents: 100, Currency: "EUR", CardNumber: payments.TestCardDeclined}
	if _, err := overGRPC.Charge(ctx, declined); errs.KindOf(err) != errs.Declined || errs.CodeOf(err) != payments.CodeCardDeclined {
		t.Errorf("a declined charge over gRPC = %v; want declined card_declined", err)
	}
	if _, err := overGRPC.Charge(ctx, payments.ChargeRequest{OrderID: "o2", AmountCents: 100, Currency: "EUR", CardNumber: payments.TestCardApproved}); errs.CodeOf(err) != payments.CodeChargeVoided {
		t.Errorf("a charge of a voided order over gRPC = %v; want charge_voided", err)
	}
	if _, err := overGRPC.GetCharge(ctx, "ch_nope"); errs.KindOf(err) != errs.NotFound || errs.CodeOf(err) != payments.CodeChargeNotFound {
		t.Errorf("an unknown charge over gRPC = %v; want not_found charge_not_found", err)
	}
	charges, err := store.ListCharges(ctx)
	if err != nil || len(charges) != 2 { // o1 and o3 (declined); o2 is a void mark, not a charge
		t.Errorf("store holds %d charges (%v); want 2", len(charges), err)
	}
}

func TestBadChargesOverGRPCStoreNothing(t *testing.T) {
	_, _, conn, store := overBoth(t)
	charge := "/" + payments.GRPC.Name() + "/Charge"
	for _, tt := range []struct {
		name   string
		req    *paymentsv1.ChargeRequest
		code   codes.Code
		reason string
	}{
		{"no amount", &paymentsv1.ChargeRequest{OrderId: "o1", Currency: "EUR", CardNumber: payments.TestCardApproved}, codes.InvalidArgument, payments.CodeInvalidAmount},
		{"bad card", &paymentsv1.ChargeRequest{OrderId: "o1", AmountCents: 100, Currency: "EUR", CardNumber: "12"}, codes.InvalidArgument, payments.CodeInvalidCard},
		{"bad order ID", &paymentsv1.ChargeRequest{OrderId: "o/1", AmountCents: 100, Currency: "EUR", CardNumber: payments.TestCardApproved}, codes.InvalidArgument, payments.CodeInvalidOrderID},
		{"oversized", &paymentsv1.ChargeRequest{OrderId: strings.Repeat("o", 2<<20), AmountCents: 100, Currency: "EUR"}, codes.ResourceExhausted, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := conn.Invoke(ctx, charge, tt.req, &paymentsv1.Charge{}, grpc.MaxCallSendMsgSize(4<<20))
			if status.Code(err) != tt.code {
				t.Errorf("status %v; want %v", err, tt.code)
			}
			if tt.reason != "" && errs.CodeOf(transport.DecodeGRPCError(err)) != tt.reason {
				t.Errorf("decoded %v; want code %s", transport.DecodeGRPCError(err), tt.reason)
			}
		})
	}
	if charges, err := store.ListCharges(context.Background()); err != nil || len(charges) != 0 {
		t.Errorf("bad charges stored %d charges (%v); want none", len(charges), err)
	}
}

func TestAChargeStatusTheClientDoesNotKnowIsRefused(t *testing.T) {
	// A newer payments answering a status this client has no name for:
	// the call fails as an unexpected answer, never as a charge with an
	// empty status.
	tel := testenv.Telemetry(t, payments.ServiceName)
	future := payments.GRPC.Service(transport.Endpoints{
		"Charge": func(context.Context, any) (any, error) { return payments.Charge{Status: "chargeback"}, nil },
		"Refund": nil, "GetCharge": nil, "FindCharge": nil, "Void": nil,
	})
	g := testenv.ServeGRPC(t, tel, observability.NewHealth(), transport.GRPCServerConfig{}, future)
	build, _ := testenv.DirectGRPC(t, g.Addr().String(), tel)
	_, err := payments.NewClient(payments.GRPC.Factory(build)).Charge(context.Background(), payments.ChargeRequest{OrderID: "o1"})
	if errs.CodeOf(err) != "unexpected_response" {
		t.Errorf("a charge with an unknown status = %v; want unexpected_response", err)
	}
}
