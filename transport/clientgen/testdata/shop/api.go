// Package shop is a made-up service whose API uses every mapping clientgen
// knows; clientgen's tests generate its client.
package shop

import (
	"context"
	"strconv"
	"time"

	"github.com/glasshouse-dev/glasshouse/transport"
)

type Service interface {
	List(ctx context.Context) ([]Product, error)
	Get(ctx context.Context, sku string) (Product, error)
	Put(ctx context.Context, p Product) (Product, error)
	Login(ctx context.Context, email, password string) (Token, error)
	Delete(ctx context.Context, userID, id string) error
	Hold(ctx context.Context, sku string, d time.Duration) (Product, error)
	Page(ctx context.Context, limit int) ([]Product, error)
}

type (
	Product struct {
		SKU  string `json:"sku"`
		Name string `json:"name"`
	}
	Token    struct{ Value string }
	Password string
)

var API = transport.NewAPI[Service]("shop", list, get, put, login, del, hold, page)

type method[Req, Resp any] = transport.Method[Service, Req, Resp]

var (
	list  = method[struct{}, ListResponse]{Name: "List", Route: "GET /products"}
	get   = method[SKURequest, Product]{Name: "Get", Route: "GET /products/{sku}"}
	put   = method[Product, Product]{Name: "Put", Route: "PUT /products"}
	login = method[LoginRequest, Token]{Name: "Login", Route: "POST /login"}
	del   = method[DeleteRequest, struct{}]{Name: "Delete", Route: "DELETE /things/{id}"}
	hold  = method[HoldRequest, Product]{Name: "Hold", Route: "POST /products/{sku}/hold"}
	page  = method[PageRequest, ListResponse]{Name: "Page", Route: "GET /pages"}
)

type (
	ListResponse struct {
		Products []Product `json:"products"`
		total    int
	}
	SKURequest struct {
		SKU string `path:"sku" json:"-"`
	}
	LoginRequest struct {
		Email    string   `json:"email"`
		Password Password `json:"password"`
	}
	DeleteRequest struct {
		UserID string `auth:"user" json:"-"`
		ID     string `path:"id" json:"-"`
	}
	HoldRequest struct {
		SKU      string        `path:"sku" json:"-"`
		D        time.Duration `json:"d"`
		internal bool
	}
	PageRequest struct {
		Limit string `query:"limit" json:"-"`
	}
)

func NewClient(build transport.ClientFactory) Service { return client{API.Client(build)} }

// Page is written by hand: its limit travels as a string.
//
//clientgen:handwritten
func (c client) Page(ctx context.Context, limit int) ([]Product, error) {
	resp, err := page.Call(ctx, c.e, PageRequest{Limit: strconv.Itoa(limit)})
	return resp.Products, err
}
