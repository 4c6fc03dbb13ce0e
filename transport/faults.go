package transport

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/go-kit/kit/endpoint"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

// Per-request fault injection, for chaos tests that must not disturb one
// another: a request asks for a fault in its W3C baggage, which travels
// with it through every hop, and only that request suffers it.
//
//	baggage: fault.payments=error               every payments endpoint fails
//	baggage: fault.payments.Charge=delay:300ms  payments' Charge waits 300ms
//
// A fault is an Internal error (injected_fault) returned before the
// endpoint runs, or a delay before it runs. Services honour faults only
// when started with fault injection enabled (-fault-injection /
// FAULT_INJECTION=true), which is off by default and never set in
// production configuration: otherwise anyone could fail our requests.
const faultKeyPrefix = "fault."

// maxInjectedDelay bounds a requested delay, so a typo cannot hang a
// request for an hour.
const maxInjectedDelay = 30 * time.Second

// BaggageFaults returns an endpoint middleware that applies the faults
// requested for service's endpoint name, if enabled.
func BaggageFaults(enabled bool, service, name string) endpoint.Middleware {
	if !enabled {
		return func(next endpoint.Endpoint) endpoint.Endpoint { return next }
	}
	keys := []string{faultKeyPrefix + service + "." + name, faultKeyPrefix + service}
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			bag := baggage.FromContext(ctx)
			for _, key := range keys {
				if value := bag.Member(key).Value(); value != "" {
					if err := inject(ctx, key, value); err != nil {
						return nil, err
					}
					break
				}
			}
			return next(ctx, request)
		}
	}
}

// inject applies one fault: "error", or "delay:<duration>".
func inject(ctx context.Context, key, value string) error {
	span := trace.SpanFromContext(ctx)
	switch {
	case value == "error":
		span.AddEvent("fault.injected", trace.WithAttributes(
			attribute.String("glasshouse.fault.type", "error"), attribute.String("glasshouse.fault.source", "baggage:"+key)))
		return errs.E(errs.Internal, "injected_fault", "failed on purpose: the request's baggage asked for %s=error", key)
	case strings.HasPrefix(value, "delay:"):
		d, err := time.ParseDuration(strings.TrimPrefix(value, "delay:"))
		if err != nil || d < 0 || d > maxInjectedDelay {
			return errs.E(errs.Invalid, "invalid_fault", "baggage %s=%s: the delay must be a duration up to %s", key, value, maxInjectedDelay)
		}
		span.AddEvent("fault.injected", trace.WithAttributes(
			attribute.String("glasshouse.fault.type", "latency"), attribute.Int64("glasshouse.fault.latency_ms", d.Milliseconds()),
			attribute.String("glasshouse.fault.source", "baggage:"+key)))
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errs.E(errs.Invalid, "invalid_fault", "baggage %s=%s: want error or delay:<duration>", key, value)
}

// FaultBaggage returns ctx whose baggage asks service (or one of its
// endpoints, as "service.Endpoint") for a fault: "error" or
// "delay:300ms". Outgoing calls carry it on.
func FaultBaggage(ctx context.Context, target, fault string) (context.Context, error) {
	m, err := baggage.NewMemberRaw(faultKeyPrefix+target, fault)
	if err != nil {
		return ctx, fmt.Errorf("fault baggage %s=%s: %w", target, fault, err)
	}
	bag, err := baggage.FromContext(ctx).SetMember(m)
	if err != nil {
		return ctx, err
	}
	return baggage.ContextWithBaggage(ctx, bag), nil
}

// FaultRequested reports whether ctx's baggage asks any service for a
// fault. Such a request is a chaos probe: its failures are wanted, so
// clients send it past their breakers and it teaches them nothing.
func FaultRequested(ctx context.Context) bool {
	for _, m := range baggage.FromContext(ctx).Members() {
		if strings.HasPrefix(m.Key(), faultKeyPrefix) {
			return true
		}
	}
	return false
}
