package transport

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/go-kit/kit/endpoint"
	httptransport "github.com/go-kit/kit/transport/http"
)

// DefaultCallTimeout bounds one HTTP attempt to a peer. Every service
// answers in milliseconds when healthy; a peer that takes a whole second
// is treated as failed so the caller can try another instance.
const DefaultCallTimeout = time.Second

// NewHTTPClient returns the http.Client used for calls to peers: traced
// (the callee continues the caller's trace), with a timeout on every
// attempt and bounded connection reuse.
func NewHTTPClient(tel observability.Telemetry, timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	base := &http.Transport{
		Proxy:                 nil, // peers are found in Consul, never through a proxy
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport: tel.HTTPTransport(base),
		Timeout:   timeout,
		// Services never redirect; following one would hide a bug.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ClientOptions are the go-kit client options every service client uses:
// the instrumented http.Client and request ID propagation.
func ClientOptions(client *http.Client) []httptransport.ClientOption {
	return []httptransport.ClientOption{
		httptransport.SetClient(client),
		httptransport.ClientBefore(func(ctx context.Context, r *http.Request) context.Context {
			if id := observability.RequestID(ctx); id != "" {
				r.Header.Set(RequestIDHeader, id)
			}
			if token := BearerToken(ctx); token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			return ctx
		}),
	}
}

// SetPath appends segments to r's URL path, each escaped as one path
// segment, so an ID can never add or remove a level of the path. An empty
// segment, "." or ".." is refused with an Invalid error before anything
// is sent: such a path would be cleaned or redirected by the server into
// another resource than the one named. (Identifiers are checked against
// the ident grammar earlier; this is the transport's own last line.)
func SetPath(r *http.Request, segments ...string) error {
	u, err := JoinPath(r.URL, segments...)
	if err != nil {
		return err
	}
	r.URL = u
	return nil
}

// JoinPath returns base with segments appended as SetPath does.
func JoinPath(base *url.URL, segments ...string) (*url.URL, error) {
	escaped := make([]string, len(segments))
	for i, s := range segments {
		if s == "" || s == "." || s == ".." {
			return nil, errs.E(errs.Invalid, "invalid_path", "path segment %d is %q: empty and dot segments are not allowed", i+1, s)
		}
		escaped[i] = url.PathEscape(s)
	}
	u := *base
	raw := strings.TrimRight(base.EscapedPath(), "/") + "/" + strings.Join(escaped, "/")
	u.Path, _ = url.PathUnescape(raw)
	u.RawPath = raw
	return &u, nil
}

// ClientRoute describes one client call on the wire, so a service lists
// its calls once and builds them either against one fixed instance
// (DirectFactory) or over discovery (Remote.Factory).
type ClientRoute struct {
	// Service is the callee's name: with Name, it names the call's client
	// span ("inventory.Reserve"), as the callee names its endpoint span.
	Service string
	Name    string // the method, as in endpoint spans and metrics
	Method  string // the HTTP method
	// Idempotent marks calls that are safe to send twice: reads, and
	// writes that carry an idempotency key.
	Idempotent bool
	Encode     httptransport.EncodeRequestFunc
	Decode     httptransport.DecodeResponseFunc
}

func (c ClientRoute) endpoint(base *url.URL, opts ...httptransport.ClientOption) endpoint.Endpoint {
	return httptransport.NewClient(c.Method, base, c.Encode, c.Decode, opts...).Endpoint()
}

// ClientFactory builds the client endpoint for one route.
type ClientFactory func(ClientRoute) endpoint.Endpoint

// DirectFactory builds client endpoints that call the one instance at
// base, with no discovery, breaker or retry: for tools and tests.
func DirectFactory(base *url.URL, opts ...httptransport.ClientOption) ClientFactory {
	return func(route ClientRoute) endpoint.Endpoint { return route.endpoint(base, opts...) }
}

// NewDirectFactory is DirectFactory for baseURL (like
// "http://127.0.0.1:8082"), with the instrumented HTTP client and timeout
// bounding each call (zero: DefaultCallTimeout), and a client span per
// call.
func NewDirectFactory(baseURL string, tel observability.Telemetry, timeout time.Duration) (ClientFactory, error) {
	base, err := url.Parse(baseURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("base URL %q must be absolute, like http://host:port", baseURL)
	}
	direct := DirectFactory(base, ClientOptions(NewHTTPClient(tel, timeout))...)
	return func(route ClientRoute) endpoint.Endpoint {
		return tel.ClientEndpoint(route.Service, route.Name)(direct(route))
	}, nil
}

type bearerKey struct{}

// WithBearerToken returns ctx carrying the caller's access token; client
// calls made with it send the token on, so the callee can check who is
// asking instead of trusting the caller's word.
func WithBearerToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, bearerKey{}, token)
}

// BearerToken returns the token in ctx, or "".
func BearerToken(ctx context.Context) string {
	t, _ := ctx.Value(bearerKey{}).(string)
	return t
}

// BearerTokenFrom reads "Authorization: Bearer <token>" from a request,
// or fails with Unauthenticated code missing_token.
func BearerTokenFrom(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", errs.E(errs.Unauthenticated, "missing_token", "an Authorization: Bearer <token> header is required")
	}
	return strings.TrimSpace(token), nil
}
