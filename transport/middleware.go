package transport

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// RequestIDHeader carries the request ID between clients and services.
const RequestIDHeader = "X-Request-Id"

// TraceIDHeader tells the caller which trace its request produced.
const TraceIDHeader = "X-Trace-Id"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// RequestID keeps a well-formed incoming X-Request-Id or assigns a new one,
// echoes it (and the trace ID) in the response, and puts it in the context
// and on the span so logs and traces can be joined on it.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID.MatchString(id) {
			id = newRequestID()
		}
		ctx := observability.WithRequestID(r.Context(), id)
		span := trace.SpanFromContext(ctx)
		span.SetAttributes(attribute.String("glasshouse.request_id", id))
		w.Header().Set(RequestIDHeader, id)
		if sc := span.SpanContext(); sc.IsValid() {
			w.Header().Set(TraceIDHeader, sc.TraceID().String())
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Recover turns a panic in a handler into a 500 problem+json response and
// an error log line carrying the trace ID and the stack, instead of a
// dropped connection. http.ErrAbortHandler is let through: it is the
// standard way to abort a response on purpose.
func Recover(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			ctx := r.Context()
			span := trace.SpanFromContext(ctx)
			span.RecordError(fmt.Errorf("panic: %v", v))
			logger.ErrorContext(ctx, "panic serving request",
				"method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			WriteError(ctx, errs.E(errs.Internal, "", "internal error"), w)
		}()
		next.ServeHTTP(w, r)
	})
}

// LimitBody caps request bodies at max bytes; reading past it fails, and
// the JSON decoder turns that into a 413 problem.
func LimitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			WriteError(r.Context(), errs.E(errs.TooLarge, "body_too_large", "request body exceeds %d bytes", max), w)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}
