package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

const (
	// approvingCard is the test card payments always approves: checkouts
	// under load should exercise the whole saga, not stop at a decline.
	approvingCard = "4242424242424242"

	// minStock is the stock a product needs at setup to be bought under
	// load. The catalogue keeps one product nearly sold out (GH-LAMP-01, 3
	// units) for demos; buying it would turn every later checkout of it
	// into out_of_stock and hide the errors the run is looking for.
	minStock = 10

	// setupParallelism is how many customers sign up at once. Sign-up and
	// login are slow on purpose (bcrypt); a few at a time keeps setup short
	// without tripping the gateway's per-client rate limit.
	setupParallelism = 4

	// password is every load customer's password: at least 8 bytes, as
	// users requires.
	password = "load-generator"
)

// A shop is what the customers of a run know: the catalogue and who they
// are. It turns an operation into calls to the API.
type shop struct {
	api       *api
	customers []*customer
	skus      []string // every product, to browse
	buyable   []string // products with stock to spare, to buy
	items     int      // products per checkout; 0: one or two at random

	// logins counts the logins sent, to take the customers in turn.
	logins atomic.Uint64
}

// A customer is a user signed up for the run. The load shares customers
// between concurrent requests, as one person shops in several tabs.
type customer struct {
	email string

	mu     sync.Mutex
	token  string   // the latest token from a login
	placed []string // IDs of the orders the customer placed, to view later
}

func (c *customer) currentToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

func (c *customer) setToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token = token
}

func (c *customer) addOrder(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.placed = append(c.placed, id)
}

// anOrder returns one of the customer's orders at random, if any.
func (c *customer) anOrder() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.placed) == 0 {
		return "", false
	}
	return c.placed[rand.IntN(len(c.placed))], true
}

// setUp reads the catalogue, then signs up and logs in n customers with
// emails unique to this run, so runs can follow each other on one stack.
// needStock says whether the mix buys anything.
func setUp(ctx context.Context, a *api, n int, needStock bool) (*shop, error) {
	s := &shop{api: a}
	var catalogue struct {
		Products []struct {
			SKU       string `json:"sku"`
			Available int    `json:"available"`
		} `json:"products"`
	}
	if err := a.do(ctx, call{method: "GET", path: "/api/products"}, &catalogue); err != nil {
		return nil, err
	}
	for _, p := range catalogue.Products {
		s.skus = append(s.skus, p.SKU)
		if p.Available >= minStock {
			s.buyable = append(s.buyable, p.SKU)
		}
	}
	if len(s.skus) == 0 {
		return nil, errors.New("the catalogue is empty")
	}
	if needStock && len(s.buyable) == 0 {
		return nil, fmt.Errorf("no product has %d units left to buy", minStock)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		slots    = make(chan struct{}, setupParallelism)
		failOnce sync.Once
		firstErr error
	)
	run := fmt.Sprintf("%08x", rand.Uint32())
	s.customers = make([]*customer, n)
	for i := range n {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			email := fmt.Sprintf("load-%s-%d@example.com", run, i)
			c, err := signUp(ctx, a, email, fmt.Sprintf("Load customer %d", i))
			if err != nil {
				// The first failure is the cause; the others only see the
				// cancellation it triggers.
				failOnce.Do(func() { firstErr = err; cancel() })
				return
			}
			s.customers[i] = c
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return s, nil
}

// signUp creates a customer's account and logs them in.
func signUp(ctx context.Context, a *api, email, name string) (*customer, error) {
	create := call{method: "POST", path: "/api/users", body: map[string]string{"email": email, "password": password, "name": name}}
	if err := a.do(ctx, create, nil); err != nil {
		return nil, err
	}
	token, err := login(ctx, a, email)
	if err != nil {
		return nil, err
	}
	return &customer{email: email, token: token}, nil
}

// login exchanges a customer's email and password for a token.
func login(ctx context.Context, a *api, email string) (string, error) {
	c := call{method: "POST", path: "/api/login", body: map[string]string{"email": email, "password": password}}
	var token struct {
		Token string `json:"token"`
	}
	if err := a.do(ctx, c, &token); err != nil {
		return "", err
	}
	if token.Token == "" {
		return "", &failure{call: c, code: CodeInvalidResponse, err: errors.New("no token in the answer")}
	}
	return token.Token, nil
}

// do carries out op, as a customer picked at random when op needs one.
func (s *shop) do(ctx context.Context, op Op) error {
	switch op {
	case Browse:
		return s.browse(ctx)
	case Login:
		return s.login(ctx, s.nextToLogIn())
	case Checkout:
		return s.checkout(ctx, s.aCustomer())
	case Orders:
		return s.viewOrders(ctx, s.aCustomer())
	}
	return fmt.Errorf("loadgen: unknown operation %q", op)
}

func (s *shop) aCustomer() *customer { return s.customers[rand.IntN(len(s.customers))] }

// nextToLogIn is the customer whose last login is the oldest: they log in
// in turn, as people whose tokens age at the same pace would. Drawn at
// random instead, 10 customers sharing 4 logins a second for 30 seconds
// go past the gateway's per-email login limit (1/s, bursts of 5) in about
// one run in 22 (simulated), and the refused login counts as a failure of
// the platform, which only kept its promise.
func (s *shop) nextToLogIn() *customer {
	return s.customers[(s.logins.Add(1)-1)%uint64(len(s.customers))]
}

// login gets the customer a fresh token. It replaces the old one, so a run
// longer than a token's lifetime keeps its customers logged in.
func (s *shop) login(ctx context.Context, c *customer) error {
	token, err := login(ctx, s.api, c.email)
	if err != nil {
		return err
	}
	c.setToken(token)
	return nil
}

// browse reads the whole catalogue, one product, or what customers who
// bought a product also bought, a third of the time each. The last one
// answers 200 even with recommendations down (a fallback), so it fails
// only when the gateway does.
func (s *shop) browse(ctx context.Context) error {
	sku := url.PathEscape(s.skus[rand.IntN(len(s.skus))])
	switch rand.IntN(3) {
	case 0:
		return s.api.do(ctx, call{method: "GET", path: "/api/products"}, nil)
	case 1:
		return s.api.do(ctx, call{method: "GET", path: "/api/products/" + sku}, nil)
	}
	return s.api.do(ctx, call{method: "GET", path: "/api/products/" + sku + "/recommendations"}, nil)
}

// placeOrder is the body of POST /api/orders.
type placeOrder struct {
	Items      []orderItem `json:"items"`
	CardNumber string      `json:"card_number"`
}

type orderItem struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// checkout orders one unit each of s.items products (one or two when 0). Every checkout is
// a new order, so it gets a fresh Idempotency-Key.
func (s *shop) checkout(ctx context.Context, c *customer) error {
	n := s.items
	if n == 0 {
		n = 1 + rand.IntN(2)
	}
	n = min(n, len(s.buyable))
	var items []orderItem
	for _, i := range rand.Perm(len(s.buyable))[:n] {
		items = append(items, orderItem{SKU: s.buyable[i], Quantity: 1})
	}
	place := call{
		method: "POST", path: "/api/orders", token: c.currentToken(), idempotencyKey: uuid.NewString(),
		body: placeOrder{Items: items, CardNumber: approvingCard},
	}
	var order struct {
		ID string `json:"id"`
	}
	if err := s.api.do(ctx, place, &order); err != nil {
		return err
	}
	if order.ID == "" {
		return &failure{call: place, code: CodeInvalidResponse, err: errors.New("no order ID in the answer")}
	}
	c.addOrder(order.ID)
	return nil
}

// viewOrders lists the customer's orders or, half the time once they have
// placed one, fetches one of theirs (another's would be a 404).
func (s *shop) viewOrders(ctx context.Context, c *customer) error {
	if id, ok := c.anOrder(); ok && rand.IntN(2) == 0 {
		return s.api.do(ctx, call{method: "GET", path: "/api/orders/" + url.PathEscape(id), token: c.currentToken()}, nil)
	}
	return s.api.do(ctx, call{method: "GET", path: "/api/orders", token: c.currentToken()}, nil)
}
