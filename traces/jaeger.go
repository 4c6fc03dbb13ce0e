package traces

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrTraceNotFound means Jaeger has no span of the trace (yet: spans
	// arrive in batches, so callers may poll until it appears).
	ErrTraceNotFound = errors.New("trace not found")
	// ErrIncomplete means the trace is in Jaeger but still looks partial
	// (see Trace.Complete) when the caller stopped waiting.
	ErrIncomplete = errors.New("trace incomplete")
)

// Client reads traces from Jaeger's HTTP query API: the JSON API behind
// the Jaeger UI, which Jaeger v2 still serves on its query port (16686 by
// default).
type Client struct {
	baseURL string
	http    *http.Client
}

// NewClient returns a client for the Jaeger query service at baseURL,
// such as "http://127.0.0.1:16686" (a path prefix, for a Jaeger behind a
// proxy, is kept). A nil httpClient means one with a 10s timeout: the
// default client has none, and a hung Jaeger would hang the caller.
func NewClient(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), http: httpClient}
}

// Trace fetches one trace. It returns an error wrapping ErrTraceNotFound
// when Jaeger has no span of it.
func (c *Client) Trace(ctx context.Context, traceID string) (*Trace, error) {
	if !validTraceID(traceID) {
		return nil, fmt.Errorf("invalid trace ID %q: want up to 32 hex digits", traceID)
	}
	var data []jaegerTrace
	err := c.get(ctx, "/api/traces/"+traceID, &data)
	var he *httpError
	if errors.As(err, &he) && he.status == http.StatusNotFound && he.fromJaeger {
		return nil, fmt.Errorf("%w: %s", ErrTraceNotFound, traceID)
	}
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrTraceNotFound, traceID)
	}
	return data[0].toTrace(), nil
}

// Services returns the names of the services Jaeger has spans from,
// sorted.
func (c *Client) Services(ctx context.Context) ([]string, error) {
	var names []string
	if err := c.get(ctx, "/api/services", &names); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// Await reads the trace every interval (250ms if interval is not
// positive) until it is in Jaeger and complete (see Trace.Complete), and
// returns it. When ctx ends first it returns an error wrapping
// ErrTraceNotFound if no span ever arrived, or one wrapping ErrIncomplete
// together with the partial trace last read, which may still be worth
// showing. Any other failure (Jaeger unreachable, a malformed ID) ends the
// wait at once: waiting would not fix it.
func (c *Client) Await(ctx context.Context, traceID string, interval time.Duration) (*Trace, error) {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	var last *Trace
	for {
		t, err := c.Trace(ctx, traceID)
		switch {
		case err == nil && t.Complete():
			return t, nil
		case err == nil:
			last = t
		case ctx.Err() != nil:
			// The wait ended during the request: say so below rather than
			// report a torn request.
		case !errors.Is(err, ErrTraceNotFound):
			return nil, err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return last, fmt.Errorf("%w: %s: %w", ErrIncomplete, traceID, ctx.Err())
			}
			return nil, fmt.Errorf("%w: %s: %w", ErrTraceNotFound, traceID, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// maxResponse bounds what is read from Jaeger. A span is one or two
// kilobytes of JSON, so this holds traces of tens of thousands of spans.
const maxResponse = 64 << 20

// get fetches path and decodes the "data" member of Jaeger's response
// envelope into data; a missing or null member leaves data alone.
func (c *Client) get(ctx context.Context, path string, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+path, nil)
	if err != nil {
		return fmt.Errorf("jaeger: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("jaeger: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("jaeger: GET %s: reading the response: %w", path, err)
	}
	if len(body) > maxResponse {
		return fmt.Errorf("jaeger: GET %s: response larger than %d MiB", path, maxResponse>>20)
	}
	// Jaeger sends errors in the same envelope (as text/plain), its
	// message in errors[0].msg.
	var env struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Msg string `json:"msg"`
		} `json:"errors"`
	}
	decodeErr := json.Unmarshal(body, &env)
	if resp.StatusCode != http.StatusOK {
		he := &httpError{path: path, status: resp.StatusCode, msg: string(bytes.TrimSpace(body))}
		if decodeErr == nil && len(env.Errors) > 0 {
			he.msg, he.fromJaeger = env.Errors[0].Msg, true
		}
		return he
	}
	if decodeErr != nil {
		return fmt.Errorf("jaeger: GET %s: malformed response: %w", path, decodeErr)
	}
	if len(env.Errors) > 0 {
		return fmt.Errorf("jaeger: GET %s: %s", path, env.Errors[0].Msg)
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return nil
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		return fmt.Errorf("jaeger: GET %s: malformed data: %w", path, err)
	}
	return nil
}

// httpError is a response other than 200 OK. fromJaeger tells Jaeger's
// own answers (a JSON envelope) from those of whatever else may listen at
// the address, so that only Jaeger's 404 means "no such trace".
type httpError struct {
	path       string
	status     int
	msg        string
	fromJaeger bool
}

func (e *httpError) Error() string {
	return fmt.Sprintf("jaeger: GET %s: %d %s: %s", e.path, e.status, http.StatusText(e.status), truncate(e.msg, 200))
}

// validTraceID accepts what Jaeger accepts: up to 32 hex digits. Checking
// here keeps anything else out of the request path.
func validTraceID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for _, r := range id {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// The Jaeger JSON model, as served by /api/traces (Jaeger's
// internal/uimodel): only the fields this package reads.
type (
	jaegerTrace struct {
		TraceID   string                   `json:"traceID"`
		Spans     []jaegerSpan             `json:"spans"`
		Processes map[string]jaegerProcess `json:"processes"`
	}
	jaegerSpan struct {
		SpanID        string            `json:"spanID"`
		TraceID       string            `json:"traceID"`
		OperationName string            `json:"operationName"`
		References    []jaegerReference `json:"references"`
		StartTime     int64             `json:"startTime"` // µs since the Unix epoch
		Duration      int64             `json:"duration"`  // µs
		Tags          []keyValue        `json:"tags"`
		Logs          []jaegerLog       `json:"logs"`
		ProcessID     string            `json:"processID"`
	}
	jaegerReference struct {
		RefType string `json:"refType"` // CHILD_OF or FOLLOWS_FROM
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	}
	jaegerProcess struct {
		ServiceName string     `json:"serviceName"`
		Tags        []keyValue `json:"tags"`
	}
	jaegerLog struct {
		Timestamp int64      `json:"timestamp"` // µs since the Unix epoch
		Fields    []keyValue `json:"fields"`
	}
	// keyValue is a typed tag; Value is a JSON string, number or bool
	// according to Type.
	keyValue struct {
		Key   string          `json:"key"`
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	}
)

// String returns the value as text: strings as they are, numbers and
// booleans as Jaeger wrote them (so a large int64 keeps every digit).
func (kv keyValue) String() string {
	var s string
	if err := json.Unmarshal(kv.Value, &s); err == nil {
		return s
	}
	return string(bytes.TrimSpace(kv.Value))
}

// eventNameField is the log field that carries an OpenTelemetry span
// event's name when Jaeger stores the event as a log.
const eventNameField = "event"

// links returns the span's references to other traces: OpenTelemetry
// span links, as Jaeger stores them.
func (js jaegerSpan) links() []Link {
	var out []Link
	for _, ref := range js.References {
		if ref.TraceID != js.TraceID {
			out = append(out, Link{TraceID: canonicalTraceID(ref.TraceID), SpanID: ref.SpanID})
		}
	}
	return out
}

// Linked returns the traces of service that hold a span with tag key =
// value, newest first, as Jaeger's search finds them within the last
// lookback: the consumers' traces of one message, searched by its
// messaging.message.id.
func (c *Client) Linked(ctx context.Context, service, key, value string, lookback time.Duration) ([]*Trace, error) {
	tags, err := json.Marshal(map[string]string{key: value})
	if err != nil {
		return nil, err
	}
	q := url.Values{"service": {service}, "tags": {string(tags)}, "limit": {"20"},
		"lookback": {"custom"}, "start": {strconv.FormatInt(time.Now().Add(-lookback).UnixMicro(), 10)},
		"end": {strconv.FormatInt(time.Now().Add(time.Minute).UnixMicro(), 10)}}
	var data []jaegerTrace
	if err := c.get(ctx, "/api/traces?"+q.Encode(), &data); err != nil {
		return nil, err
	}
	out := make([]*Trace, 0, len(data))
	for _, jt := range data {
		out = append(out, jt.toTrace())
	}
	return out, nil
}

func (jt jaegerTrace) toTrace() *Trace {
	t := &Trace{ID: canonicalTraceID(jt.TraceID), Spans: make([]Span, 0, len(jt.Spans))}
	for _, js := range jt.Spans {
		proc := jt.Processes[js.ProcessID]
		tags := make(map[string]string, len(proc.Tags)+len(js.Tags))
		for _, kv := range proc.Tags {
			tags[kv.Key] = kv.String()
		}
		for _, kv := range js.Tags {
			tags[kv.Key] = kv.String()
		}
		s := Span{
			ID:        js.SpanID,
			ParentID:  js.parent(),
			Links:     js.links(),
			Service:   proc.ServiceName,
			Operation: js.OperationName,
			Kind:      tags["span.kind"],
			Start:     time.UnixMicro(js.StartTime).UTC(),
			Duration:  time.Duration(js.Duration) * time.Microsecond,
			// The OTLP→Jaeger translation writes both for an Error status;
			// either alone is enough.
			Error: tags["error"] == "true" || tags["otel.status_code"] == "ERROR",
			Tags:  tags,
		}
		for _, l := range js.Logs {
			e := Event{Time: time.UnixMicro(l.Timestamp).UTC(), Attrs: make(map[string]string, len(l.Fields))}
			for _, kv := range l.Fields {
				if kv.Key == eventNameField {
					e.Name = kv.String()
				} else {
					e.Attrs[kv.Key] = kv.String()
				}
			}
			s.Events = append(s.Events, e)
		}
		slices.SortStableFunc(s.Events, func(a, b Event) int { return a.Time.Compare(b.Time) })
		t.Spans = append(t.Spans, s)
	}
	slices.SortStableFunc(t.Spans, func(a, b Span) int { return a.Start.Compare(b.Start) })
	return t
}

// canonicalTraceID writes id as OpenTelemetry does, 32 hex digits (as in
// X-Trace-Id): Jaeger's model drops the high half of an ID when it is
// zero.
func canonicalTraceID(id string) string {
	if len(id) >= 32 {
		return id
	}
	return strings.Repeat("0", 32-len(id)) + id
}

// parent returns the span's parent ID: its CHILD_OF reference within the
// same trace, else a FOLLOWS_FROM one (Jaeger keeps the parent first but
// may type it after a span link to it). References to other traces are
// links, not parents.
func (js jaegerSpan) parent() string {
	for _, want := range []string{"CHILD_OF", "FOLLOWS_FROM"} {
		for _, ref := range js.References {
			if ref.RefType == want && ref.TraceID == js.TraceID {
				return ref.SpanID
			}
		}
	}
	return ""
}
