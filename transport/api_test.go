package transport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/transport"
	"github.com/go-kit/kit/endpoint"
)

// shelf is a small service with every kind of binding.
type shelf interface {
	Put(ctx context.Context, user, shelf, key, note string, count int) (Slot, error)
	Find(ctx context.Context, shelf, prefix string) (Slot, error)
}

type Slot struct {
	User  string `json:"user"`
	Shelf string `json:"shelf"`
	Key   string `json:"key"`
	Note  string `json:"note"`
	Count int    `json:"count"`
}

type putRequest struct {
	User  string `auth:"user" json:"-"`
	Shelf string `path:"shelf" json:"-"`
	Key   string `header:"Idempotency-Key" json:"-"`
	Note  string `json:"note"`
	Count int    `json:"count"`
}

type findRequest struct {
	Shelf  string `path:"shelf" json:"-"`
	Prefix string `query:"prefix" json:"-"`
}

var (
	put = transport.Method[shelf, putRequest, Slot]{Name: "Put", Route: "POST /shelves/{shelf}/slots", Status: http.StatusCreated,
		Serve: func(s shelf, ctx context.Context, r putRequest) (Slot, error) {
			return s.Put(ctx, r.User, r.Shelf, r.Key, r.Note, r.Count)
		}}
	find = transport.Method[shelf, findRequest, Slot]{Name: "Find", Route: "GET /shelves/{shelf}", Idempotent: true,
		Serve: func(s shelf, ctx context.Context, r findRequest) (Slot, error) { return s.Find(ctx, r.Shelf, r.Prefix) }}
	shelfAPI = transport.NewAPI[shelf]("shelf", put, find)
)

type memShelf struct{}

func (memShelf) Put(ctx context.Context, user, shelf, key, note string, count int) (Slot, error) {
	if transport.BearerToken(ctx) != "tok-"+user {
		return Slot{}, errs.E(errs.Internal, "", "the verified token is not in the context")
	}
	return Slot{User: user, Shelf: shelf, Key: key, Note: note, Count: count}, nil
}

func (memShelf) Find(_ context.Context, shelf, prefix string) (Slot, error) {
	if prefix == "none" {
		return Slot{}, errs.E(errs.NotFound, "no_slot", "no slot with prefix %q", prefix)
	}
	return Slot{Shelf: shelf, Note: prefix}, nil
}

type shelfClient struct{ e transport.Endpoints }

func (c shelfClient) Put(ctx context.Context, user, shelf, key, note string, count int) (Slot, error) {
	return put.Call(ctx, c.e, putRequest{User: user, Shelf: shelf, Key: key, Note: note, Count: count})
}

func (c shelfClient) Find(ctx context.Context, shelf, prefix string) (Slot, error) {
	return find.Call(ctx, c.e, findRequest{Shelf: shelf, Prefix: prefix})
}

func verify(token string) (string, error) {
	if user, ok := strings.CutPrefix(token, "tok-"); ok {
		return user, nil
	}
	return "", errs.E(errs.Unauthenticated, "invalid_token", "bad token")
}

func newShelf(t *testing.T) (*httptest.Server, shelf) {
	t.Helper()
	tel := testenv.Telemetry(t, "shelf")
	srv := httptest.NewServer(shelfAPI.Server(memShelf{}, tel.ServerEndpoint, transport.WithAuth(verify)))
	t.Cleanup(srv.Close)
	return srv, shelfClient{shelfAPI.Client(testenv.Direct(t, srv.URL, testenv.Telemetry(t, "caller")))}
}

func TestDeclaredMethodsRoundTrip(t *testing.T) {
	_, client := newShelf(t)
	ctx := transport.WithBearerToken(context.Background(), "tok-ada")

	got, err := client.Put(ctx, "ignored: the token says who calls", "s1", "key-1", "hello", 3)
	want := Slot{User: "ada", Shelf: "s1", Key: "key-1", Note: "hello", Count: 3}
	if err != nil || got != want {
		t.Fatalf("Put = %+v, %v; want %+v", got, err, want)
	}
	if got, err := client.Find(ctx, "s 2/x", "a&b=c"); err != nil || got.Shelf != "s 2/x" || got.Note != "a&b=c" {
		t.Errorf("Find with characters to escape = %+v, %v", got, err)
	}
	if _, err := client.Find(ctx, "s1", "none"); errs.CodeOf(err) != "no_slot" {
		t.Errorf("Find of nothing = %v, want the typed no_slot", err)
	}
	for _, bad := range []string{"", ".", ".."} {
		if _, err := client.Find(ctx, bad, "p"); errs.CodeOf(err) != "invalid_path" {
			t.Errorf("Find(%q) = %v, want invalid_path before anything is sent", bad, err)
		}
	}
}

func TestDeclaredRoutesOnTheWire(t *testing.T) {
	srv, _ := newShelf(t)
	send := func(method, path, token, key, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(raw)
	}
	tests := []struct {
		name, method, path, token, key, body string
		status                               int
		want                                 string
	}{
		{"created, with the declared status", "POST", "/shelves/s1/slots", "tok-ada", "k1", `{"note":"n","count":1}`, 201, `"key":"k1"`},
		{"no token: 401 before the body is read", "POST", "/shelves/s1/slots", "", "", `{not json`, 401, `"code":"missing_token"`},
		{"a bad token: 401", "POST", "/shelves/s1/slots", "nope", "", `{}`, 401, `"code":"invalid_token"`},
		{"a body cannot set a path field", "POST", "/shelves/s1/slots", "tok-ada", "", `{"Shelf":"other"}`, 400, `"code":"unknown_field"`},
		{"nor the caller", "POST", "/shelves/s1/slots", "tok-ada", "", `{"user":"eve"}`, 400, `"code":"unknown_field"`},
		{"strict JSON", "POST", "/shelves/s1/slots", "tok-ada", "", `{"count":"1"}`, 400, `"code":"invalid_field"`},
		{"query", "GET", "/shelves/s1?prefix=p", "", "", "", 200, `"note":"p"`},
		{"wrong verb: 405", "DELETE", "/shelves/s1", "", "", "", 405, `"code":"method_not_allowed"`},
		{"unknown route: 404", "GET", "/nowhere", "", "", "", 404, `"code":"no_route"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := send(tt.method, tt.path, tt.token, tt.key, tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("%s %s = %d %s; want %d with %s", tt.method, tt.path, status, body, tt.status, tt.want)
			}
		})
	}
}

func TestServerEndpointsCarryTheirMethodNames(t *testing.T) {
	var names []string
	e := shelfAPI.Endpoints(memShelf{}).With(func(name string) endpoint.Middleware {
		names = append(names, name)
		return func(next endpoint.Endpoint) endpoint.Endpoint { return next }
	})
	if len(e) != 2 || len(names) != 2 {
		t.Fatalf("endpoints %v, middleware asked for %v; want Put and Find", e, names)
	}
	if got := strings.Join(shelfAPI.Methods(), ","); got != "Put,Find" {
		t.Errorf("Methods = %s, want the declaration order Put,Find", got)
	}
}

// A wrong declaration fails when the package loads, never at a call.
func TestWrongDeclarationsPanic(t *testing.T) {
	type getBody struct {
		Shelf string `path:"shelf" json:"-"`
		Note  string `json:"note"`
	}
	type noJSONDash struct {
		Shelf string `path:"shelf"`
	}
	type unbound struct{}
	serveFind := func(s shelf, ctx context.Context, r findRequest) (Slot, error) { return Slot{}, nil }
	tests := []struct {
		name    string
		declare func()
		want    string
	}{
		{"a service method left out", func() { transport.NewAPI[shelf]("shelf", put) }, "no declaration for Find"},
		{"a method the service lacks", func() {
			transport.NewAPI[shelf]("shelf", put, find, transport.Method[shelf, findRequest, Slot]{Name: "Lost", Route: "GET /lost/{shelf}", Serve: serveFind})
		}, "Lost is not a method"},
		{"two methods on one route", func() {
			transport.NewAPI[shelf]("shelf", put, transport.Method[shelf, findRequest, Slot]{Name: "Find", Route: "POST /shelves/{shelf}/slots", Serve: serveFind})
		}, "share the route"},
		{"a body on a GET", func() {
			transport.NewAPI[shelf]("shelf", put, transport.Method[shelf, getBody, Slot]{Name: "Find", Route: "GET /shelves/{shelf}",
				Serve: func(shelf, context.Context, getBody) (Slot, error) { return Slot{}, nil }})
		}, "carry no body"},
		{"a path field the body could set", func() {
			transport.NewAPI[shelf]("shelf", put, transport.Method[shelf, noJSONDash, Slot]{Name: "Find", Route: "GET /shelves/{shelf}",
				Serve: func(shelf, context.Context, noJSONDash) (Slot, error) { return Slot{}, nil }})
		}, `json:"-"`},
		{"a wildcard nothing binds", func() {
			transport.NewAPI[shelf]("shelf", put, transport.Method[shelf, unbound, Slot]{Name: "Find", Route: "GET /shelves/{shelf}",
				Serve: func(shelf, context.Context, unbound) (Slot, error) { return Slot{}, nil }})
		}, "wildcards no field"},
		{"no verb", func() {
			transport.NewAPI[shelf]("shelf", put, transport.Method[shelf, findRequest, Slot]{Name: "Find", Route: "/shelves/{shelf}", Serve: serveFind})
		}, "must be a verb and a path"},
		{"no Serve", func() {
			transport.NewAPI[shelf]("shelf", put, transport.Method[shelf, findRequest, Slot]{Name: "Find", Route: "GET /shelves/{shelf}"})
		}, "no Serve"},
		{"a struct, not an interface", func() { transport.NewAPI[Slot]("shelf") }, "not an interface"},
		{"auth without WithAuth", func() {
			shelfAPI.Server(memShelf{}, func(string) endpoint.Middleware { return func(e endpoint.Endpoint) endpoint.Endpoint { return e } })
		}, "needs WithAuth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("no panic")
				}
				if msg := strings.TrimSpace(fmtAny(r)); !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q, want it to say %q", msg, tt.want)
				}
			}()
			tt.declare()
		})
	}
}

func fmtAny(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	s, _ := v.(string)
	return s
}
