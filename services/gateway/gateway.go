package gateway

import (
	"context"
	"errors"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
	"github.com/glasshouse-dev/glasshouse/services/inventory"
	"github.com/glasshouse-dev/glasshouse/services/orders"
	"github.com/glasshouse-dev/glasshouse/services/users"
)

// gateway checks what it can of each call, then passes it to the backend
// that owns it.
type gateway struct {
	Backends
	// validateIdentifiers is false only in the chaos suite's "mechanism
	// switched off" run.
	validateIdentifiers bool
	// fallback is false only in the chaos suite's "mechanism switched
	// off" run.
	fallback bool
	// catalogue is the product list last read, for recommendations.
	catalogue *catalogue
}

func (g gateway) CreateUser(ctx context.Context, email, password, name string) (users.User, error) {
	return g.Users.Register(ctx, email, password, name)
}

func (g gateway) Login(ctx context.Context, email, password string) (users.Token, error) {
	return g.Users.Login(ctx, email, password)
}

func (g gateway) ListProducts(ctx context.Context) ([]inventory.Product, error) {
	products, err := g.Inventory.ListProducts(ctx)
	if err == nil {
		g.catalogue.store(products)
	}
	return products, err
}

func (g gateway) GetProduct(ctx context.Context, sku string) (inventory.Product, error) {
	if err := g.check(ident.SKU, sku); err != nil {
		return inventory.Product{}, err
	}
	return g.Inventory.GetProduct(ctx, sku)
}

func (g gateway) PlaceOrder(ctx context.Context, userID, idempotencyKey string, items []orders.Item, cardNumber string) (orders.Order, error) {
	if err := checkIdempotencyKey(idempotencyKey); err != nil {
		return orders.Order{}, err
	}
	for i, item := range items {
		if err := g.check(ident.SKU, item.SKU); err != nil {
			var e *errs.Error
			errors.As(err, &e)
			return orders.Order{}, errs.E(e.Kind, e.Code, "items[%d]: %s", i, e.Detail)
		}
	}
	return g.Orders.PlaceOrder(ctx, userID, idempotencyKey, items, cardNumber)
}

func (g gateway) ListOrders(ctx context.Context, userID, limit, cursor string) (orders.OrderPage, error) {
	page, err := orders.ParsePage(limit, cursor)
	if err != nil {
		return orders.OrderPage{}, err
	}
	return g.Orders.ListOrders(ctx, userID, page)
}

func (g gateway) GetOrder(ctx context.Context, userID, orderID string) (orders.Order, error) {
	if err := g.check(ident.OrderID, orderID); err != nil {
		return orders.Order{}, err
	}
	return g.Orders.GetOrder(ctx, userID, orderID)
}

// check applies an ident check, unless validation is switched off.
func (g gateway) check(valid func(string) error, s string) error {
	if !g.validateIdentifiers {
		return nil
	}
	return valid(s)
}

// maxIdempotencyKeyBytes is orders' limit on the key.
const maxIdempotencyKeyBytes = 128

// checkIdempotencyKey refuses a key that is not printable ASCII or is
// longer than orders keeps. An absent key is orders' to refuse
// (missing_idempotency_key), as it always was. Switching identifier
// validation off leaves this check on.
func checkIdempotencyKey(key string) error {
	ok := len(key) <= maxIdempotencyKeyBytes
	for i := 0; ok && i < len(key); i++ {
		ok = key[i] >= 0x20 && key[i] <= 0x7e
	}
	if !ok {
		return errs.E(errs.Invalid, "invalid_idempotency_key",
			"the %s header %s must be printable ASCII of at most %d bytes",
			orders.IdempotencyKeyHeader, ident.Quote(key), maxIdempotencyKeyBytes)
	}
	return nil
}
