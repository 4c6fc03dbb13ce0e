// Package transport holds what every glasshouse service needs on the wire:
// JSON codecs, the application/problem+json error envelope, the typed
// endpoint adapter, HTTP server middleware and lifecycle, and (for
// clients) Consul discovery with breakers and retries.
//
// It knows nothing of any particular service; services build their
// transports from these pieces.
package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/glasshouse-dev/glasshouse/errs"
	"go.opentelemetry.io/otel/trace"
)

// ProblemContentType is the media type of error responses (RFC 9457).
const ProblemContentType = "application/problem+json"

// problemTypeBase prefixes a problem's code to form its type URI; the page
// documents every code.
const problemTypeBase = "https://github.com/glasshouse-dev/glasshouse/blob/main/docs/problems.md#"

// statusOf is the one table from error kinds to HTTP statuses. The client
// reads it backwards (kindOf), so a kind survives the round trip.
var statusOf = map[errs.Kind]int{
	errs.Internal:        http.StatusInternalServerError,
	errs.Invalid:         http.StatusBadRequest,
	errs.Unauthenticated: http.StatusUnauthorized,
	errs.Declined:        http.StatusPaymentRequired,
	errs.Forbidden:       http.StatusForbidden,
	errs.NotFound:        http.StatusNotFound,
	errs.NotAllowed:      http.StatusMethodNotAllowed,
	errs.Conflict:        http.StatusConflict,
	errs.TooLarge:        http.StatusRequestEntityTooLarge,
	errs.RateLimited:     http.StatusTooManyRequests,
	errs.Unavailable:     http.StatusServiceUnavailable,
	errs.Timeout:         http.StatusGatewayTimeout,
}

var kindOf = func() map[int]errs.Kind {
	m := make(map[int]errs.Kind, len(statusOf))
	for k, s := range statusOf {
		m[s] = k
	}
	return m
}()

// StatusOf returns the HTTP status for err's kind.
func StatusOf(err error) int {
	if s, ok := statusOf[errs.KindOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// KindOfStatus maps an HTTP status received from a peer to an error kind.
// Statuses outside the table fall back to Invalid (4xx), Unavailable (502)
// or Internal (other 5xx).
func KindOfStatus(status int) errs.Kind {
	if k, ok := kindOf[status]; ok {
		return k
	}
	switch {
	case status == http.StatusBadGateway:
		return errs.Unavailable
	case status >= 400 && status < 500:
		return errs.Invalid
	}
	return errs.Internal
}

// Problem is the RFC 9457 error body, with the stable machine code and the
// trace ID a user can paste into Jaeger.
type Problem struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Status  int    `json:"status"`
	Detail  string `json:"detail,omitempty"`
	Code    string `json:"code"`
	TraceID string `json:"trace_id,omitempty"`
	// Upstream names the dependency that was unavailable, on a 503 that a
	// healthy service answered on its behalf.
	Upstream string `json:"upstream,omitempty"`
}

// ProblemFor builds the problem body for err. Internal errors keep their
// cause out of the detail: it is logged, not shown to callers.
func ProblemFor(ctx context.Context, err error) Problem {
	status := StatusOf(err)
	p := Problem{
		Title:  http.StatusText(status),
		Status: status,
		Code:   errs.CodeOf(err),
	}
	var e *errs.Error
	if errors.As(err, &e) {
		p.Detail, p.Upstream = e.Detail, e.Upstream
	} else if errs.KindOf(err) == errs.Timeout {
		p.Detail = "the request did not finish within its deadline"
	} else {
		p.Detail = "internal error"
	}
	p.Type = problemTypeBase + p.Code
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		p.TraceID = sc.TraceID().String()
	}
	return p
}

// WriteError writes err as a problem+json response. It has the signature
// of go-kit's ErrorEncoder, so services pass it to every server.
func WriteError(ctx context.Context, err error, w http.ResponseWriter) {
	p := ProblemFor(ctx, err)
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	// A caller told "too many" or "unavailable" is told when to come back,
	// unless the handler already said so more precisely.
	if (p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable) && h.Get("Retry-After") == "" {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// maxProblemBytes bounds how much of an error body a client reads.
const maxProblemBytes = 64 << 10

// errUnexpectedResponse marks an answer that breaks the protocol between
// two of our services: a redirect, or an error status without a
// problem+json body. It is a bug to fix, not an outage: it is not retried
// and never counts against a breaker (see Remote.peerFault), so a client
// that provokes one cannot open breakers for everyone.
var errUnexpectedResponse = errors.New("unexpected response")

// DecodeProblem turns an error response from a peer back into the typed
// error the peer returned. A 5xx without problem+json still yields an
// error of the kind the status implies (the peer failed); a 3xx or a 4xx
// without it is an Internal error with code unexpected_response. Details
// never carry the peer's address or its body: those stay in the cause,
// which is logged but never sent on.
func DecodeProblem(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemBytes))
	kind := KindOfStatus(resp.StatusCode)
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var p Problem
	if resp.StatusCode >= 400 && mediaType == ProblemContentType && json.Unmarshal(body, &p) == nil && p.Code != "" && len(p.Code) <= 64 {
		return &errs.Error{Kind: kind, Code: p.Code, Detail: truncate(p.Detail, maxDetail), Upstream: truncate(p.Upstream, 64)}
	}
	answer := fmt.Sprintf("%s from %s: %q", resp.Status, requestTarget(resp), truncate(string(body), 200))
	if resp.StatusCode >= 500 {
		return errs.Wrap(kind, "", errors.New(answer), "the service behind answered %s", resp.Status)
	}
	return errs.Wrap(errs.Internal, "unexpected_response", fmt.Errorf("%w: %s", errUnexpectedResponse, answer),
		"the service behind answered %s, which it never should", resp.Status)
}

// maxDetail bounds a problem detail passed on from a peer.
const maxDetail = 512

// truncate cuts s to at most n bytes (on a rune boundary), marking the cut.
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func requestTarget(resp *http.Response) string {
	if resp.Request == nil || resp.Request.URL == nil {
		return "peer"
	}
	return fmt.Sprintf("%s %s", resp.Request.Method, resp.Request.URL.Redacted())
}
