package transport

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/go-kit/kit/endpoint"
	grpctransport "github.com/go-kit/kit/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Codec converts a wire type of a service's API to its protobuf message
// and back. FromProto checks what protobuf cannot (an enum value it does
// not know, a missing timestamp) and fails with an Invalid error.
type Codec[T any, P proto.Message] struct {
	ToProto   func(T) P
	FromProto func(P) (T, error)
}

// RPC binds a declared method to the rpc of the same name in the
// service's protobuf contract, with the codecs of its request and
// response. The method's endpoint, middlewares and client are the ones
// its HTTP route uses: only the encoding differs.
func RPC[S, Req, Resp any, PReq, PResp proto.Message](m Method[S, Req, Resp], req Codec[Req, PReq], resp Codec[Resp, PResp]) Binding {
	return &boundRPC[S, Req, Resp, PReq, PResp]{name: m.Name, req: req, resp: resp}
}

// Binding is one method bound to its rpc, as RPC makes it, for
// NewGRPCAPI.
type Binding interface{ bindRPC() rpcBinding }

// rpcBinding is an RPC without its type parameters.
type rpcBinding interface {
	rpcName() string
	// handler serves the rpc over the endpoint e.
	handler(e endpoint.Endpoint, auth Authenticate, authFields []int) grpctransport.Handler
	// newRequest returns an empty request message, for the server to
	// decode into.
	newRequest() proto.Message
	// decodeBytes and encodeBytes are the server's decoding and the
	// client's encoding of a request, for fuzzing (GRPCAPI.Decode).
	decodeBytes(body []byte) (any, error)
	encodeBytes(req any) ([]byte, error)
	// client calls the rpc of the service named service on conn.
	client(conn *grpc.ClientConn, service string) endpoint.Endpoint
}

type boundRPC[S, Req, Resp any, PReq, PResp proto.Message] struct {
	name string
	req  Codec[Req, PReq]
	resp Codec[Resp, PResp]
}

func (b *boundRPC[S, Req, Resp, PReq, PResp]) bindRPC() rpcBinding { return b }
func (b *boundRPC[S, Req, Resp, PReq, PResp]) rpcName() string     { return b.name }
func (b *boundRPC[S, Req, Resp, PReq, PResp]) newRequest() proto.Message {
	return newMessage[PReq]()
}

// newMessage returns a new empty message of type P (a pointer to a
// generated struct): a nil P still knows its message type.
func newMessage[P proto.Message]() P {
	var zero P
	return zero.ProtoReflect().Type().New().Interface().(P)
}

func (b *boundRPC[S, Req, Resp, PReq, PResp]) handler(e endpoint.Endpoint, auth Authenticate, authFields []int) grpctransport.Handler {
	decode := func(ctx context.Context, msg any) (any, error) { return b.decode(ctx, msg.(PReq), auth, authFields) }
	encode := func(_ context.Context, resp any) (any, error) { return b.resp.ToProto(resp.(Resp)), nil }
	return grpctransport.NewServer(e, decode, encode, grpctransport.ServerBefore(fromMetadata))
}

// decode turns a request message into the method's request: refused
// when it holds fields the contract does not know, or (for a method whose
// request has an auth field) when the caller's token does not verify;
// then the codec's own checks.
func (b *boundRPC[S, Req, Resp, PReq, PResp]) decode(ctx context.Context, in PReq, auth Authenticate, authFields []int) (Req, error) {
	var req Req
	if field := unknownField(in.ProtoReflect()); field != "" {
		return req, errs.E(errs.Invalid, "unknown_field", "the message has %s, which %s does not know: is the caller's contract newer?", field, in.ProtoReflect().Descriptor().FullName())
	}
	var user string
	if len(authFields) > 0 {
		token := BearerToken(ctx)
		if token == "" {
			return req, errs.E(errs.Unauthenticated, "missing_token", "an authorization: Bearer <token> metadata entry is required")
		}
		var err error
		if user, err = auth(token); err != nil {
			return req, err
		}
	}
	req, err := b.req.FromProto(in)
	if err != nil {
		return req, err
	}
	v := reflect.ValueOf(&req).Elem()
	for _, i := range authFields {
		v.Field(i).SetString(user)
	}
	return req, nil
}

// decodeBytes is the server's whole decoding of a request's bytes, for
// GRPCAPI.Decode.
func (b *boundRPC[S, Req, Resp, PReq, PResp]) decodeBytes(body []byte) (any, error) {
	in := newMessage[PReq]()
	if err := proto.Unmarshal(body, in); err != nil {
		return nil, errs.E(errs.Invalid, "malformed_message", "the request is not a valid %s message", in.ProtoReflect().Descriptor().FullName())
	}
	return b.decode(context.Background(), in, nil, nil)
}

// encodeBytes is the client's whole encoding of a request, for
// GRPCAPI.Encode.
func (b *boundRPC[S, Req, Resp, PReq, PResp]) encodeBytes(req any) ([]byte, error) {
	return proto.Marshal(b.req.ToProto(req.(Req)))
}

func (b *boundRPC[S, Req, Resp, PReq, PResp]) client(conn *grpc.ClientConn, service string) endpoint.Endpoint {
	encode := func(_ context.Context, req any) (any, error) { return b.req.ToProto(req.(Req)), nil }
	decode := func(_ context.Context, reply any) (any, error) {
		resp, err := b.resp.FromProto(reply.(PResp))
		if err != nil {
			return nil, errs.Wrap(errs.Internal, "unexpected_response", fmt.Errorf("%w: %v", errUnexpectedResponse, err),
				"%s answered %s with a message we cannot read", service, b.name)
		}
		return resp, nil
	}
	ep := grpctransport.NewClient(conn, service, b.name, encode, decode, newMessage[PResp](), grpctransport.ClientBefore(toMetadata)).Endpoint()
	return func(ctx context.Context, request any) (any, error) {
		resp, err := ep(ctx, request)
		if status.Code(err) == codes.Canceled && ctx.Err() == nil {
			// Not the caller giving up: the connection was closed under
			// the call. Another instance may answer.
			return nil, errs.Wrap(errs.Unavailable, "", err, "the connection to %s closed under the call", service)
		}
		return resp, DecodeGRPCError(err)
	}
}

// unknownField names the first field of m, or of a message inside it,
// that the receiver's contract does not know, or returns "". Like the
// HTTP side's strict JSON, a gRPC server refuses what it would silently
// drop: a field the caller thinks it set.
func unknownField(m protoreflect.Message) string {
	if len(m.GetUnknown()) > 0 {
		return "an unknown field"
	}
	found := ""
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil || fd.IsMap():
		case fd.IsList():
			for i := range v.List().Len() {
				if found = unknownField(v.List().Get(i).Message()); found != "" {
					found = fmt.Sprintf("%s in %s[%d]", found, fd.Name(), i)
					return false
				}
			}
		default:
			if found = unknownField(v.Message()); found != "" {
				found = fmt.Sprintf("%s in %s", found, fd.Name())
				return false
			}
		}
		return true
	})
	return found
}

// Metadata keys, as HTTP's headers in lower case.
const (
	requestIDKey     = "x-request-id"
	authorizationKey = "authorization"
)

// toMetadata sends the request ID and the caller's token on, as
// ClientOptions does over HTTP.
func toMetadata(ctx context.Context, md *metadata.MD) context.Context {
	if id := observability.RequestID(ctx); id != "" {
		md.Set(requestIDKey, id)
	}
	if token := BearerToken(ctx); token != "" {
		md.Set(authorizationKey, "Bearer "+token)
	}
	return ctx
}

// fromMetadata reads what toMetadata sent, as RequestID and the bearer
// token's reader do on HTTP: a missing or malformed request ID gets a new
// one.
func fromMetadata(ctx context.Context, md metadata.MD) context.Context {
	ctx = observability.WithTransport(ctx, observability.TransportGRPC)
	id := first(md, requestIDKey)
	if !validRequestID.MatchString(id) {
		id = newRequestID()
	}
	ctx = observability.WithRequestID(ctx, id)
	scheme, token, ok := strings.Cut(first(md, authorizationKey), " ")
	if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "" {
		ctx = WithBearerToken(ctx, strings.TrimSpace(token))
	}
	return ctx
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// GRPCAPI is a service's API over gRPC: each method of its API bound to
// the rpc of its protobuf contract. Build it with NewGRPCAPI when the
// package loads, as NewAPI: a wrong binding panics at once.
type GRPCAPI[S any] struct {
	api  API[S]
	desc *grpc.ServiceDesc
	rpcs map[string]rpcBinding
}

// NewGRPCAPI binds api's methods to the service desc describes (the
// generated <Service>_ServiceDesc): every method of api exactly once, to
// an rpc of the same name; every rpc of desc bound; no streams.
func NewGRPCAPI[S any](api API[S], desc *grpc.ServiceDesc, rpcs ...Binding) GRPCAPI[S] {
	g := GRPCAPI[S]{api: api, desc: desc, rpcs: map[string]rpcBinding{}}
	inContract := map[string]bool{}
	for _, m := range desc.Methods {
		inContract[m.MethodName] = true
	}
	if len(desc.Streams) > 0 {
		panic(fmt.Sprintf("%s gRPC API: streams are not supported", desc.ServiceName))
	}
	for _, r := range rpcs {
		b := r.bindRPC()
		name := b.rpcName()
		switch {
		case !slices.Contains(api.Methods(), name):
			panic(fmt.Sprintf("%s gRPC API: %s is not a method of the %s API", desc.ServiceName, name, api.Service()))
		case !inContract[name]:
			panic(fmt.Sprintf("%s gRPC API: the contract has no rpc %s", desc.ServiceName, name))
		case g.rpcs[name] != nil:
			panic(fmt.Sprintf("%s gRPC API: %s is bound twice", desc.ServiceName, name))
		}
		g.rpcs[name] = b
	}
	for name := range inContract {
		if g.rpcs[name] == nil {
			panic(fmt.Sprintf("%s gRPC API: the rpc %s is not bound to a method", desc.ServiceName, name))
		}
	}
	for _, name := range api.Methods() {
		if g.rpcs[name] == nil {
			panic(fmt.Sprintf("%s gRPC API: the method %s has no rpc", desc.ServiceName, name))
		}
	}
	return g
}

// Decode decodes body as the named method's server does (a request
// without auth fields), and Encode encodes a request as its client does:
// for fuzzing and tests of a service's messages.
func (g GRPCAPI[S]) Decode(method string, body []byte) (any, error) {
	b, ok := g.rpcs[method]
	if !ok {
		return nil, fmt.Errorf("%s gRPC API: no rpc %s", g.desc.ServiceName, method)
	}
	return b.decodeBytes(body)
}

// Encode: see Decode.
func (g GRPCAPI[S]) Encode(method string, req any) ([]byte, error) {
	b, ok := g.rpcs[method]
	if !ok {
		return nil, fmt.Errorf("%s gRPC API: no rpc %s", g.desc.ServiceName, method)
	}
	return b.encodeBytes(req)
}

// Name is the contract's full service name, "glasshouse.inventory.v1.Inventory":
// the path prefix of its methods and the name its health is checked under.
func (g GRPCAPI[S]) Name() string { return g.desc.ServiceName }

// GRPCService is a service's rpcs ready to register on a GRPCServer.
type GRPCService struct {
	desc *grpc.ServiceDesc
}

// Name is the contract's full service name.
func (s GRPCService) Name() string { return s.desc.ServiceName }

// Service serves the endpoints e (as API.Endpoints returns them,
// decorated with the same middlewares as the HTTP routes) over gRPC.
// WithAuth is required when a method's request has an auth field, as on
// HTTP; the token travels as "authorization: Bearer <token>" metadata.
func (g GRPCAPI[S]) Service(e Endpoints, opts ...HandlerOption) GRPCService {
	o := handlerOptions{around: map[string]func(http.Handler) http.Handler{}}
	for _, opt := range opts {
		opt(&o)
	}
	desc := &grpc.ServiceDesc{
		ServiceName: g.desc.ServiceName,
		HandlerType: (*any)(nil), // registered without an implementation: the handlers below serve
		Metadata:    g.desc.Metadata,
	}
	for _, m := range g.api.methods {
		ep, ok := e[m.name()]
		if !ok {
			panic(fmt.Sprintf("%s gRPC API: no endpoint for %s", g.desc.ServiceName, m.name()))
		}
		var authFields []int
		if m.needsAuth() {
			if o.auth == nil {
				panic(fmt.Sprintf("%s gRPC API: %s needs WithAuth", g.desc.ServiceName, m.name()))
			}
			authFields = m.authFields()
		}
		b := g.rpcs[m.name()]
		h := b.handler(ep, o.auth, authFields)
		fullMethod := "/" + g.desc.ServiceName + "/" + m.name()
		desc.Methods = append(desc.Methods, grpc.MethodDesc{
			MethodName: m.name(),
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := b.newRequest()
				if err := dec(in); err != nil {
					return nil, GRPCStatus(ctx, errs.E(errs.Invalid, "malformed_message", "the request is not a valid %s message", in.ProtoReflect().Descriptor().FullName())).Err()
				}
				serve := func(ctx context.Context, req any) (any, error) {
					_, resp, err := h.ServeGRPC(ctx, req)
					if err != nil {
						return nil, GRPCStatus(ctx, err).Err()
					}
					return resp, nil
				}
				if interceptor == nil {
					return serve(ctx, in)
				}
				return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: fullMethod}, serve)
			},
		})
	}
	return GRPCService{desc: desc}
}

// Factory returns the client factory that makes each call of the API
// over gRPC, on the connections build chooses (Remote.GRPC, or
// NewGRPCDirectFactory for one instance). Hand it to the service's
// NewClient: the typed client is the same over either transport.
func (g GRPCAPI[S]) Factory(build GRPCClientFactory) ClientFactory {
	return func(route ClientRoute) endpoint.Endpoint {
		b, ok := g.rpcs[route.Name]
		if !ok {
			panic(fmt.Sprintf("%s gRPC API: no rpc for %s", g.desc.ServiceName, route.Name))
		}
		return build(route, func(conn *grpc.ClientConn) endpoint.Endpoint { return b.client(conn, g.desc.ServiceName) })
	}
}

// GRPCClientFactory builds the client endpoint for one route, given how
// to make its call on a connection.
type GRPCClientFactory func(route ClientRoute, call func(*grpc.ClientConn) endpoint.Endpoint) endpoint.Endpoint

// Invert returns the inverse of a one-to-one map, such as a domain enum's
// table to its protobuf values, so the codecs of both directions come
// from one table.
func Invert[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		if _, dup := out[v]; dup {
			panic(fmt.Sprintf("Invert: %v is the value of two keys", v))
		}
		out[v] = k
	}
	return out
}

// Timestamp is t as a protobuf timestamp, the zero time as none, so that
// FromTimestamp gives back the zero time.
func Timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// FromTimestamp is the time of ts, the zero time for none.
func FromTimestamp(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
