package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Codes for failures that have no problem+json code of their own. Every
// other failure is counted under the code the gateway answered with, or
// http_<status> when its body had none.
const (
	// CodeTransport is a request that got no answer: the connection was
	// refused or broken, or Timeout passed first.
	CodeTransport = "transport_error"
	// CodeInvalidResponse is a 2xx answer whose body is not what the API
	// promises, like a login without a token.
	CodeInvalidResponse = "invalid_response"
)

// api calls the gateway's public API as documented in the README, like any
// outside client would: it knows the routes and the problem+json envelope,
// and nothing of the platform's code.
type api struct {
	base    string // the gateway's base URL, without a trailing slash
	client  *http.Client
	timeout time.Duration
}

// A call is one request to the API.
type call struct {
	method, path   string
	token          string // bearer token, for the calls that need one
	idempotencyKey string
	body           any // sent as JSON when not nil
}

// A failure is a call that did not succeed, with what is needed to count
// it (its code) and to find it in Jaeger (the trace ID of its answer).
type failure struct {
	call    call
	status  int // 0 when there was no answer
	code    string
	traceID string
	err     error // what went wrong, when there was no usable answer
}

func (f *failure) Error() string {
	msg := fmt.Sprintf("%s %s: ", f.call.method, f.call.path)
	if f.status != 0 {
		msg += fmt.Sprintf("%d ", f.status)
	}
	msg += f.code
	if f.err != nil {
		msg += ": " + f.err.Error()
	}
	if f.traceID != "" {
		msg += " (trace " + f.traceID + ")"
	}
	return msg
}

func (f *failure) Unwrap() error { return f.err }

// do sends c, bounded by the API's timeout, and decodes a 2xx answer into
// out unless out is nil. It reads every answer to its end: the latency a
// customer sees ends with the last byte, and a drained body lets the
// connection be reused. Every error it returns is a *failure.
func (a *api) do(ctx context.Context, c call, out any) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var body io.Reader
	if c.body != nil {
		b, err := json.Marshal(c.body)
		if err != nil {
			return &failure{call: c, code: CodeTransport, err: err}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, a.base+c.path, body)
	if err != nil {
		return &failure{call: c, code: CodeTransport, err: err}
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", c.idempotencyKey)
	}

	resp, err := a.client.Do(req)
	if err != nil {
		return &failure{call: c, code: CodeTransport, err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	traceID := resp.Header.Get("X-Trace-Id")
	if err != nil {
		return &failure{call: c, status: resp.StatusCode, code: CodeTransport, traceID: traceID, err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &failure{call: c, status: resp.StatusCode, code: problemCode(resp.StatusCode, b), traceID: traceID}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return &failure{call: c, status: resp.StatusCode, code: CodeInvalidResponse, traceID: traceID, err: err}
		}
	}
	return nil
}

// problemCode is the stable code of a problem+json body, or http_<status>
// for an answer without one (a proxy's error page, a crashed handler).
func problemCode(status int, body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		return p.Code
	}
	return fmt.Sprintf("http_%d", status)
}
