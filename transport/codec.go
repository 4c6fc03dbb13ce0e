package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/go-kit/kit/endpoint"
	httptransport "github.com/go-kit/kit/transport/http"
)

// TypedEndpoint adapts a typed function to a go-kit endpoint, so
// endpoints are written as func(ctx, Req) (Resp, error) and the one type
// assertion lives here.
func TypedEndpoint[Req, Resp any](f func(context.Context, Req) (Resp, error)) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req, ok := request.(Req)
		if !ok {
			var want Req
			return nil, errs.E(errs.Internal, "", "endpoint expects %T, got %T", want, request)
		}
		return f(ctx, req)
	}
}

// CallTyped invokes a go-kit endpoint and returns its typed response: the
// client-side mirror of TypedEndpoint.
func CallTyped[Resp any](ctx context.Context, ep endpoint.Endpoint, request any) (Resp, error) {
	var zero Resp
	response, err := ep(ctx, request)
	if err != nil {
		return zero, err
	}
	resp, ok := response.(Resp)
	if !ok {
		return zero, errs.E(errs.Internal, "", "endpoint returned %T, want %T", response, zero)
	}
	return resp, nil
}

// DecodeJSON strictly decodes a request body into a T: it must be one
// JSON value with no unknown fields. Every failure is an Invalid (or
// TooLarge) error that says what was wrong.
func DecodeJSON[T any](r *http.Request) (T, error) {
	var v T
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return v, decodeError(err)
		}
		return v, errs.E(errs.Invalid, "malformed_json", "request body must hold a single JSON value")
	}
	return v, nil
}

func decodeError(err error) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		tooLarge  *http.MaxBytesError
		errPrefix = "json: unknown field "
	)
	switch {
	case errors.As(err, &tooLarge):
		return errs.E(errs.TooLarge, "body_too_large", "request body exceeds %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return errs.E(errs.Invalid, "malformed_json", "request body is empty; expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.E(errs.Invalid, "malformed_json", "request body ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return errs.E(errs.Invalid, "malformed_json", "malformed JSON at byte %d: %s", syntax.Offset, truncate(err.Error(), 200))
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return errs.E(errs.Invalid, "malformed_json", "request body must be a JSON object, not %s", typeErr.Value)
		}
		return errs.E(errs.Invalid, "invalid_field", "field %q must be %s, not %s", truncate(field, 100), jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case len(err.Error()) > len(errPrefix) && err.Error()[:len(errPrefix)] == errPrefix:
		// encoding/json has no typed error for unknown fields.
		return errs.E(errs.Invalid, "unknown_field", "unknown field %s", truncate(err.Error()[len(errPrefix):], 100))
	}
	return errs.E(errs.Invalid, "malformed_json", "cannot decode request body: %s", truncate(err.Error(), 200))
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	}
	return "an object"
}

// EncodeJSON returns a go-kit response encoder that writes the response as
// JSON with the given status.
func EncodeJSON(status int) httptransport.EncodeResponseFunc {
	return func(_ context.Context, w http.ResponseWriter, response any) error {
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(response); err != nil {
			return fmt.Errorf("encode response: %w", err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, err := w.Write(buf.Bytes())
		return err
	}
}

// MaxResponseBytes bounds the body of a peer's answer that a client
// decodes: a broken or hostile peer cannot make its caller buffer
// megabytes. The largest answers are pages of at most 100 orders.
const MaxResponseBytes = 4 << 20

// DecodeJSONResponse returns a go-kit client response decoder: a 2xx body
// (at most MaxResponseBytes) is decoded into a T, anything else back into
// the typed error the server sent.
func DecodeJSONResponse[T any]() httptransport.DecodeResponseFunc {
	return func(_ context.Context, resp *http.Response) (any, error) {
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil, DecodeProblem(resp)
		}
		var v T
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
		if err != nil {
			// The connection broke mid-answer: the peer's fault.
			return nil, errs.Wrap(errs.Internal, "bad_response", err, "the answer from the service behind broke off")
		}
		if len(body) > MaxResponseBytes {
			return nil, errs.Wrap(errs.Internal, "response_too_large", fmt.Errorf("%w: over %d bytes from %s", errUnexpectedResponse, MaxResponseBytes, requestTarget(resp)),
				"the answer from the service behind exceeds %d bytes", MaxResponseBytes)
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, errs.Wrap(errs.Internal, "bad_response", fmt.Errorf("%w: %s from %s", errUnexpectedResponse, err, requestTarget(resp)),
				"cannot decode the answer from the service behind as %T", v)
		}
		return v, nil
	}
}
