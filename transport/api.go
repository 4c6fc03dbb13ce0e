package transport

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/go-kit/kit/endpoint"
	httptransport "github.com/go-kit/kit/transport/http"
)

// Method declares one method of a service's API, once: the server's
// route, the go-kit endpoint over the service, and the client's call are
// all built from it, so they cannot disagree. S is the service interface,
// Req and Resp the method's wire types.
//
// Req's struct tags say where each field travels:
//
//	path:"sku"                  the route's {sku} wildcard
//	query:"limit"               a query parameter (left out when empty)
//	header:"Idempotency-Key"    a request header (left out when empty)
//	auth:"user"                 the caller's user ID, from the verified bearer
//	                            token on the server (WithAuth); never sent, the
//	                            token travels instead
//
// and every other field with a json name is the JSON body, decoded
// strictly (DecodeJSON). The tagged fields are `json:"-"`, so a body
// cannot set them. All tagged fields are strings.
type Method[S, Req, Resp any] struct {
	Name       string // as in spans, metrics and logs: "GetProduct"
	Route      string // the verb and path pattern: "GET /products/{sku}"
	Status     int    // of a success; zero means 200
	Idempotent bool   // safe to send again after a failure: reads, keyed writes
	// Serve calls the method on the service.
	Serve func(svc S, ctx context.Context, req Req) (Resp, error)
}

// Call sends req through the client endpoints of the method's API (as
// API.Client builds them) and returns the typed response.
func (m Method[S, Req, Resp]) Call(ctx context.Context, e Endpoints, req Req) (Resp, error) {
	ep, ok := e[m.Name]
	if !ok {
		var zero Resp
		return zero, errs.E(errs.Internal, "", "no endpoint for %s: is it listed in its API?", m.Name)
	}
	return CallTyped[Resp](ctx, ep, req)
}

func (m Method[S, Req, Resp]) declare(service string) (method, error) {
	verb, path, ok := strings.Cut(m.Route, " ")
	if !ok || m.Name == "" || verb == "" || !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%s.%s: route %q must be a verb and a path, like \"GET /products/{sku}\"", service, m.Name, m.Route)
	}
	if m.Serve == nil {
		return nil, fmt.Errorf("%s.%s: no Serve function", service, m.Name)
	}
	b, err := newBinding(reflect.TypeFor[Req](), verb, path)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", service, m.Name, err)
	}
	return &declared[S, Req, Resp]{Method: m, verb: verb, path: path, binding: b}, nil
}

// method is a declared Method, without its type parameters.
type method interface {
	name() string
	serverEndpoint(svc any) endpoint.Endpoint
	route() (verb, path string)
	decoder(auth Authenticate) httptransport.DecodeRequestFunc
	status() int
	needsAuth() bool
	authFields() []int
	clientRoute(service string) ClientRoute
}

type declared[S, Req, Resp any] struct {
	Method[S, Req, Resp]
	verb, path string
	binding    *binding
}

func (d *declared[S, Req, Resp]) name() string               { return d.Name }
func (d *declared[S, Req, Resp]) route() (verb, path string) { return d.verb, d.path }
func (d *declared[S, Req, Resp]) needsAuth() bool            { return d.binding.auth != nil }
func (d *declared[S, Req, Resp]) authFields() []int          { return d.binding.auth }
func (d *declared[S, Req, Resp]) status() int                { return cmp.Or(d.Status, http.StatusOK) }
func (d *declared[S, Req, Resp]) serverEndpoint(svc any) endpoint.Endpoint {
	s := svc.(S)
	return TypedEndpoint(func(ctx context.Context, req Req) (Resp, error) { return d.Serve(s, ctx, req) })
}

func (d *declared[S, Req, Resp]) decoder(auth Authenticate) httptransport.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		var req Req
		err := d.binding.decode(r, reflect.ValueOf(&req).Elem(), auth, func() error {
			var err error
			req, err = DecodeJSON[Req](r)
			return err
		})
		return req, err
	}
}

func (d *declared[S, Req, Resp]) clientRoute(service string) ClientRoute {
	return ClientRoute{
		Service: service, Name: d.Name, Method: d.verb, Idempotent: d.Idempotent,
		Encode: func(ctx context.Context, r *http.Request, request any) error {
			return d.binding.encode(ctx, r, d.path, request)
		},
		Decode: DecodeJSONResponse[Resp](),
	}
}

// API is a service's methods, each declared once. Build it with NewAPI
// when the package loads: a wrong declaration panics at once, so every
// test of the package and every start of the binary fails on it.
type API[S any] struct {
	service string
	methods []method
}

// NewAPI declares the API of the service named service (its Consul name).
// S must be the service's interface and methods its declarations: each
// of S's methods exactly once, and nothing else. A method of S left out
// would be a client call with no route; NewAPI panics instead.
func NewAPI[S any](service string, methods ...interface {
	declare(service string) (method, error)
}) API[S] {
	api := API[S]{service: service}
	want := map[string]bool{}
	if t := reflect.TypeFor[S](); t.Kind() == reflect.Interface {
		for i := range t.NumMethod() {
			want[t.Method(i).Name] = true
		}
	} else {
		panic(fmt.Sprintf("%s API: %s is not an interface", service, t))
	}
	routes := map[string]string{}
	for _, m := range methods {
		d, err := m.declare(service)
		if err != nil {
			panic(err)
		}
		if !want[d.name()] {
			panic(fmt.Sprintf("%s API: %s is not a method of the service, or is declared twice", service, d.name()))
		}
		delete(want, d.name())
		verb, path := d.route()
		if other, dup := routes[verb+" "+path]; dup {
			panic(fmt.Sprintf("%s API: %s and %s share the route %s %s", service, other, d.name(), verb, path))
		}
		routes[verb+" "+path] = d.name()
		api.methods = append(api.methods, d)
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for name := range want {
			missing = append(missing, name)
		}
		slices.Sort(missing)
		panic(fmt.Sprintf("%s API: no declaration for %s", service, strings.Join(missing, ", ")))
	}
	return api
}

// Service is the service's name, as in Consul.
func (a API[S]) Service() string { return a.service }

// Methods lists the method names in declaration order.
func (a API[S]) Methods() []string {
	names := make([]string, len(a.methods))
	for i, m := range a.methods {
		names[i] = m.name()
	}
	return names
}

// Decode decodes r as the named method's server route does, without its
// path pattern matched: set r's path values first (SetPathValue). For
// fuzzing and tests of a service's wire types.
func (a API[S]) Decode(method string, r *http.Request, auth Authenticate) (any, error) {
	for _, m := range a.methods {
		if m.name() == method {
			return m.decoder(auth)(r.Context(), r)
		}
	}
	return nil, fmt.Errorf("%s API: no method %s", a.service, method)
}

// Endpoints are go-kit endpoints by method name: a service's methods on
// the server, or its calls on the client.
type Endpoints map[string]endpoint.Endpoint

// EndpointMiddleware returns the middleware for the endpoint of the named
// method, such as observability's tracing, metrics and logging
// (Telemetry.ServerEndpoint).
type EndpointMiddleware func(method string) endpoint.Middleware

// With returns the endpoints each decorated by mw(its method name).
func (e Endpoints) With(mw EndpointMiddleware) Endpoints {
	out := make(Endpoints, len(e))
	for name, ep := range e {
		out[name] = mw(name)(ep)
	}
	return out
}

// Endpoints returns the server endpoints: each method over svc.
func (a API[S]) Endpoints(svc S) Endpoints {
	e := make(Endpoints, len(a.methods))
	for _, m := range a.methods {
		e[m.name()] = m.serverEndpoint(svc)
	}
	return e
}

// Authenticate turns a bearer token into the user it was issued to, or
// fails with an Unauthenticated error.
type Authenticate func(token string) (userID string, err error)

// HandlerOption adjusts API.Handler.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	auth   Authenticate
	around map[string]func(http.Handler) http.Handler
}

// WithAuth verifies the bearer token of every method whose request has an
// auth field: a request without a valid token is a 401 before anything
// else is read. The token goes on in the context (WithBearerToken), so
// the calls it makes on the caller's behalf carry it too.
func WithAuth(auth Authenticate) HandlerOption {
	return func(o *handlerOptions) { o.auth = auth }
}

// WithRouteMiddleware puts mw in front of the named method's route only,
// such as a rate limit of its own.
func WithRouteMiddleware(method string, mw func(http.Handler) http.Handler) HandlerOption {
	return func(o *handlerOptions) { o.around[method] = mw }
}

// Handler serves the endpoints e (as Endpoints returns them, decorated)
// on the API's routes; errors are problem+json.
func (a API[S]) Handler(e Endpoints, opts ...HandlerOption) http.Handler {
	o := handlerOptions{around: map[string]func(http.Handler) http.Handler{}}
	for _, opt := range opts {
		opt(&o)
	}
	r := NewRouter()
	for _, m := range a.methods {
		ep, ok := e[m.name()]
		if !ok {
			panic(fmt.Sprintf("%s API: no endpoint for %s", a.service, m.name()))
		}
		if m.needsAuth() && o.auth == nil {
			panic(fmt.Sprintf("%s API: %s needs WithAuth", a.service, m.name()))
		}
		serverOpts := []httptransport.ServerOption{httptransport.ServerErrorEncoder(WriteError)}
		if m.needsAuth() {
			serverOpts = append(serverOpts, httptransport.ServerBefore(bearerToContext))
		}
		var h http.Handler = httptransport.NewServer(ep, m.decoder(o.auth), EncodeJSON(m.status()), serverOpts...)
		if mw := o.around[m.name()]; mw != nil {
			h = mw(h)
		}
		verb, path := m.route()
		r.Handle(verb, path, h)
	}
	return r
}

// Server is Handler over Endpoints(svc) decorated by mw: the whole
// server side of a service's API.
func (a API[S]) Server(svc S, mw EndpointMiddleware, opts ...HandlerOption) http.Handler {
	return a.Handler(a.Endpoints(svc).With(mw), opts...)
}

// Client returns the client endpoints, each built by build: against one
// instance (NewDirectFactory) or over discovery with breakers and retries
// (Remote.Factory).
func (a API[S]) Client(build ClientFactory) Endpoints {
	e := make(Endpoints, len(a.methods))
	for _, m := range a.methods {
		e[m.name()] = build(m.clientRoute(a.service))
	}
	return e
}

func bearerToContext(ctx context.Context, r *http.Request) context.Context {
	if token, err := BearerTokenFrom(r); err == nil {
		return WithBearerToken(ctx, token)
	}
	return ctx
}

// binding says where each field of a request type travels.
type binding struct {
	path, query, header []boundField
	auth                []int // field index, a string
	body                bool  // some field travels in the JSON body
}

type boundField struct {
	key   string
	index int
}

func newBinding(t reflect.Type, verb, path string) (*binding, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("request type %s is not a struct", t)
	}
	b := &binding{}
	wildcards := map[string]bool{}
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			wildcards[seg[1:len(seg)-1]] = true
		}
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tagged := 0
		for _, tag := range []struct {
			name string
			into *[]boundField
		}{{"path", &b.path}, {"query", &b.query}, {"header", &b.header}} {
			if key, ok := f.Tag.Lookup(tag.name); ok {
				*tag.into = append(*tag.into, boundField{key, i})
				tagged++
			}
		}
		if _, ok := f.Tag.Lookup("auth"); ok {
			b.auth = append(b.auth, i)
			tagged++
		}
		switch {
		case tagged > 1:
			return nil, fmt.Errorf("%s.%s has more than one place to travel", t, f.Name)
		case tagged == 1 && f.Type.Kind() != reflect.String:
			return nil, fmt.Errorf("%s.%s is bound outside the body, so it must be a string", t, f.Name)
		case tagged == 1 && f.Tag.Get("json") != "-":
			return nil, fmt.Errorf("%s.%s is bound outside the body, so it must be tagged json:\"-\"", t, f.Name)
		case tagged == 0 && f.Tag.Get("json") != "-":
			b.body = true
		}
	}
	for _, p := range b.path {
		if !wildcards[p.key] {
			return nil, fmt.Errorf("%s binds path:%q, but the path %s has no {%s}", t, p.key, path, p.key)
		}
		delete(wildcards, p.key)
	}
	if len(wildcards) > 0 {
		return nil, fmt.Errorf("the path %s has wildcards no field of %s binds", path, t)
	}
	if b.body && (verb == http.MethodGet || verb == http.MethodDelete) {
		return nil, fmt.Errorf("%s has body fields, but %s requests carry no body", t, verb)
	}
	return b, nil
}

// decode fills req (addressable) from r: the caller first (a request
// without a valid token is refused whatever else it holds), then the
// body, then path, query and header values.
func (b *binding) decode(r *http.Request, req reflect.Value, auth Authenticate, decodeBody func() error) error {
	var user string
	if len(b.auth) > 0 {
		token, err := BearerTokenFrom(r)
		if err != nil {
			return err
		}
		if user, err = auth(token); err != nil {
			return err
		}
	}
	if b.body {
		if err := decodeBody(); err != nil {
			return err
		}
	}
	for _, i := range b.auth {
		req.Field(i).SetString(user)
	}
	for _, p := range b.path {
		req.Field(p.index).SetString(r.PathValue(p.key))
	}
	if len(b.query) > 0 {
		q := r.URL.Query()
		for _, p := range b.query {
			req.Field(p.index).SetString(q.Get(p.key))
		}
	}
	for _, p := range b.header {
		req.Field(p.index).SetString(r.Header.Get(p.key))
	}
	return nil
}

// encode writes req onto the client request r: the path with each
// wildcard filled (SetPath's rules: no empty or dot segments), the query,
// the headers and the JSON body.
func (b *binding) encode(ctx context.Context, r *http.Request, path string, request any) error {
	req := reflect.ValueOf(request)
	var segments []string
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			for _, p := range b.path {
				if p.key == seg[1:len(seg)-1] {
					seg = req.Field(p.index).String()
				}
			}
		}
		segments = append(segments, seg)
	}
	if err := SetPath(r, segments...); err != nil {
		return err
	}
	if len(b.query) > 0 {
		q := url.Values{}
		for _, p := range b.query {
			if v := req.Field(p.index).String(); v != "" {
				q.Set(p.key, v)
			}
		}
		r.URL.RawQuery = q.Encode()
	}
	for _, p := range b.header {
		if v := req.Field(p.index).String(); v != "" {
			r.Header.Set(p.key, v)
		}
	}
	if !b.body {
		return nil
	}
	return httptransport.EncodeJSONRequest(ctx, r, request)
}
