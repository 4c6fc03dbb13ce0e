package inventory

import (
	inventoryv1 "github.com/glasshouse-dev/glasshouse/api/proto/inventory/v1"
	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/transport"
	"google.golang.org/protobuf/proto"
)

// GRPC is the inventory API over gRPC: each method of API bound to its
// rpc in api/proto/inventory/v1, with the conversions between the
// protobuf messages and the wire types above. The endpoints, middlewares
// and typed client are API's; only the encoding differs.
var GRPC = transport.NewGRPCAPI(API, &inventoryv1.Inventory_ServiceDesc,
	transport.RPC(listProducts, noRequest, productList),
	transport.RPC(getProduct, productRequest, product),
	transport.RPC(reserve, reserveRequest, reservation),
	transport.RPC(commit, orderRequest, reservation),
	transport.RPC(release, orderRequest, reservation),
)

type codec[T any, P proto.Message] = transport.Codec[T, P]

var (
	noRequest = codec[struct{}, *inventoryv1.ListProductsRequest]{
		ToProto:   func(struct{}) *inventoryv1.ListProductsRequest { return &inventoryv1.ListProductsRequest{} },
		FromProto: func(*inventoryv1.ListProductsRequest) (struct{}, error) { return struct{}{}, nil },
	}
	productList = codec[ListProductsResponse, *inventoryv1.ListProductsResponse]{
		ToProto: func(r ListProductsResponse) *inventoryv1.ListProductsResponse {
			out := &inventoryv1.ListProductsResponse{Products: make([]*inventoryv1.Product, len(r.Products))}
			for i, p := range r.Products {
				out.Products[i] = product.ToProto(p)
			}
			return out
		},
		FromProto: func(m *inventoryv1.ListProductsResponse) (ListProductsResponse, error) {
			out := ListProductsResponse{Products: make([]Product, len(m.GetProducts()))}
			for i, p := range m.GetProducts() {
				out.Products[i], _ = product.FromProto(p)
			}
			return out, nil
		},
	}
	productRequest = codec[ProductRequest, *inventoryv1.GetProductRequest]{
		ToProto: func(r ProductRequest) *inventoryv1.GetProductRequest {
			return &inventoryv1.GetProductRequest{Sku: r.SKU}
		},
		FromProto: func(m *inventoryv1.GetProductRequest) (ProductRequest, error) {
			return ProductRequest{SKU: m.GetSku()}, nil
		},
	}
	product = codec[Product, *inventoryv1.Product]{
		ToProto: func(p Product) *inventoryv1.Product {
			return &inventoryv1.Product{Sku: p.SKU, Name: p.Name, Description: p.Description,
				PriceCents: p.PriceCents, Currency: p.Currency, Available: int64(p.Available)}
		},
		FromProto: func(m *inventoryv1.Product) (Product, error) {
			return Product{SKU: m.GetSku(), Name: m.GetName(), Description: m.GetDescription(),
				PriceCents: m.GetPriceCents(), Currency: m.GetCurrency(), Available: int(m.GetAvailable())}, nil
		},
	}
	reserveRequest = codec[ReserveRequest, *inventoryv1.ReserveRequest]{
		ToProto: func(r ReserveRequest) *inventoryv1.ReserveRequest {
			return &inventoryv1.ReserveRequest{OrderId: r.OrderID, Items: itemsToProto(r.Items)}
		},
		FromProto: func(m *inventoryv1.ReserveRequest) (ReserveRequest, error) {
			return ReserveRequest{OrderID: m.GetOrderId(), Items: itemsFromProto(m.GetItems())}, nil
		},
	}
	orderRequest = codec[OrderRequest, *inventoryv1.OrderRequest]{
		ToProto: func(r OrderRequest) *inventoryv1.OrderRequest { return &inventoryv1.OrderRequest{OrderId: r.OrderID} },
		FromProto: func(m *inventoryv1.OrderRequest) (OrderRequest, error) {
			return OrderRequest{OrderID: m.GetOrderId()}, nil
		},
	}
	reservation = codec[Reservation, *inventoryv1.Reservation]{
		ToProto: func(r Reservation) *inventoryv1.Reservation {
			return &inventoryv1.Reservation{OrderId: r.OrderID, Status: reservationStatus[r.Status],
				Items: itemsToProto(r.Items), ExpiresAt: transport.Timestamp(r.ExpiresAt)}
		},
		FromProto: func(m *inventoryv1.Reservation) (Reservation, error) {
			status, ok := reservationStatusOf[m.GetStatus()]
			if !ok {
				return Reservation{}, errs.E(errs.Invalid, "unknown_status", "reservation status %v is not one this client knows", m.GetStatus())
			}
			return Reservation{OrderID: m.GetOrderId(), Status: status, Items: itemsFromProto(m.GetItems()), ExpiresAt: transport.FromTimestamp(m.GetExpiresAt())}, nil
		},
	}
)

var (
	reservationStatus = map[ReservationStatus]inventoryv1.ReservationStatus{
		Held:      inventoryv1.ReservationStatus_RESERVATION_STATUS_HELD,
		Committed: inventoryv1.ReservationStatus_RESERVATION_STATUS_COMMITTED,
		Released:  inventoryv1.ReservationStatus_RESERVATION_STATUS_RELEASED,
		Expired:   inventoryv1.ReservationStatus_RESERVATION_STATUS_EXPIRED,
	}
	reservationStatusOf = transport.Invert(reservationStatus)
)

// Items travel as they are; a quantity protobuf can hold but int cannot
// does not arise on 64-bit machines, and the service bounds it anyway.
func itemsToProto(items []Item) []*inventoryv1.Item {
	out := make([]*inventoryv1.Item, len(items))
	for i, it := range items {
		out[i] = &inventoryv1.Item{Sku: it.SKU, Quantity: int64(it.Quantity)}
	}
	return out
}

func itemsFromProto(items []*inventoryv1.Item) []Item {
	if items == nil {
		return nil
	}
	out := make([]Item, len(items))
	for i, it := range items {
		out[i] = Item{SKU: it.GetSku(), Quantity: int(it.GetQuantity())}
	}
	return out
}
