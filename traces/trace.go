// Package traces reads traces back from Jaeger and draws them in a
// terminal, so a request can be followed from the gateway to the database
// without leaving the shell, and so tests and the chaos runner can assert
// on what a trace shows: which services took part, which calls were
// retried, which breakers opened.
//
// Trace, Span and Event are the platform's view of a trace, independent of
// Jaeger's wire format: tags are flattened to strings, parents are span
// IDs, and span events (what the OpenTelemetry SDK records with AddEvent,
// and Jaeger calls logs) keep their name and attributes.
package traces

import (
	"slices"
	"time"
)

// A Trace is every span Jaeger holds for one trace ID, in start order.
type Trace struct {
	ID    string
	Spans []Span
}

// A Span is one timed operation in one service.
type Span struct {
	ID string
	// ParentID is the span this one is a child of, "" for a root.
	ParentID  string
	Service   string
	Operation string
	// Kind is "server", "client", "internal", "producer" or "consumer";
	// "" when the span did not say.
	Kind     string
	Start    time.Time
	Duration time.Duration
	// Error is set when the span's status is Error. A business error (out
	// of stock, declined) leaves it unset: see the glasshouse.outcome tag.
	Error bool
	// Tags holds the span's attributes and its process's resource
	// attributes (service.instance.id, host.name...), the span's own
	// winning on a clash. Values are strings whatever their type: 201,
	// true, 0.5.
	Tags   map[string]string
	Events []Event
	// Links are the spans of other traces this one is linked to: a
	// CONSUMER span's link to the PRODUCER span that wrote its message.
	Links []Link
}

// A Link points at a span of another trace.
type Link struct {
	TraceID, SpanID string
}

// An Event is something that happened at one instant within a span: a
// retry, a breaker decision, a saga step, a recorded error.
type Event struct {
	Name  string
	Time  time.Time
	Attrs map[string]string
}

// End is when the span finished.
func (s Span) End() time.Time { return s.Start.Add(s.Duration) }

// EventsNamed returns the span's events called name, in time order.
func (s Span) EventsNamed(name string) []Event {
	var out []Event
	for _, e := range s.Events {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// ErrorMessage says why the span failed: its status description, else
// the message of the last error it recorded. It is "" for a span that did
// not fail, or failed without saying why (an HTTP attempt answered 500).
func (s Span) ErrorMessage() string {
	if !s.Error {
		return ""
	}
	if msg := s.Tags["otel.status_description"]; msg != "" {
		return msg
	}
	for _, e := range slices.Backward(s.Events) {
		if e.Name == "exception" && e.Attrs["exception.message"] != "" {
			return e.Attrs["exception.message"]
		}
	}
	return ""
}

// Services returns the names of the services that took part, sorted.
func (t *Trace) Services() []string {
	var names []string
	for _, s := range t.Spans {
		if s.Service != "" && !slices.Contains(names, s.Service) {
			names = append(names, s.Service)
		}
	}
	slices.Sort(names)
	return names
}

// Span returns the span with the given ID.
func (t *Trace) Span(id string) (Span, bool) {
	for _, s := range t.Spans {
		if s.ID == id {
			return s, true
		}
	}
	return Span{}, false
}

// Children returns the spans whose parent is spanID, in start order.
func (t *Trace) Children(spanID string) []Span {
	return t.Find(func(s Span) bool { return s.ParentID == spanID && spanID != "" })
}

// Roots returns the spans that have no parent: normally one, the edge
// server span where the request entered the platform.
func (t *Trace) Roots() []Span {
	return t.Find(func(s Span) bool { return s.ParentID == "" })
}

// Orphans returns the spans whose parent is not in the trace: the
// parent's process has not exported it yet, or died before it could, or
// the parent is a caller outside the platform that sent a traceparent
// header.
func (t *Trace) Orphans() []Span {
	ids := t.ids()
	return t.Find(func(s Span) bool { return s.ParentID != "" && !ids[s.ParentID] })
}

// Find returns the spans for which match is true, in start order.
func (t *Trace) Find(match func(Span) bool) []Span {
	var out []Span
	for _, s := range t.Spans {
		if match(s) {
			out = append(out, s)
		}
	}
	return out
}

// Complete reports whether the trace looks whole: it has a root, no span
// misses its parent, and every HTTP or gRPC call that got an answer from
// a server has the callee's server span under it.
//
// Each process exports its spans in its own batches, every few seconds,
// so a trace read right after the request may lack a whole service.
// Structure is the only sign of it: Jaeger cannot know that more spans
// are coming. The last rule assumes every callee is traced, as every
// glasshouse service is. A trace continued from a caller outside the
// platform never looks complete: its first span's parent is the caller's.
func (t *Trace) Complete() bool {
	if len(t.Roots()) == 0 || len(t.Orphans()) > 0 {
		return false
	}
	parents := map[string]bool{}
	for _, s := range t.Spans {
		parents[s.ParentID] = true
	}
	for _, s := range t.Spans {
		if s.Kind == "client" && answered(s) && !parents[s.ID] {
			return false
		}
	}
	return true
}

// answered reports whether a client span's call reached a server: an
// HTTP status, or a gRPC status the client did not make up itself (no
// connection, its own deadline or cancellation).
func answered(s Span) bool {
	if s.Tags["http.response.status_code"] != "" {
		return true
	}
	switch s.Tags["rpc.response.status_code"] {
	case "", "UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED":
		return false
	}
	return true
}

func (t *Trace) ids() map[string]bool {
	ids := make(map[string]bool, len(t.Spans))
	for _, s := range t.Spans {
		ids[s.ID] = true
	}
	return ids
}
