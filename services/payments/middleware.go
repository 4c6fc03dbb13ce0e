package payments

import (
	"context"

	"github.com/glasshouse-dev/glasshouse/observability"
	"github.com/prometheus/client_golang/prometheus"
)

// Middleware decorates a Service, as go-kit's service middlewares do.
type Middleware func(Service) Service

// Instrumenting returns a service middleware that counts what happens to
// money, in business terms: charges and refunds by result ("succeeded" or
// the error code), and the cents actually charged. Endpoint latency and
// errors are measured one layer out, by the endpoint middlewares; this
// layer says what they meant.
//
// Every Charge call is counted, replays included, because each is an
// answer someone waited for; but a replay moves no money, so the cents
// are counted once per charge however often a caller retries.
func Instrumenting(reg prometheus.Registerer) Middleware {
	charges := observability.NewResultCounter(reg, "glasshouse_payments_charges_total",
		"Charge calls by result (succeeded, or the error code such as card_declined); replays of a charge count again.",
		string(Succeeded))
	refunds := observability.NewResultCounter(reg, "glasshouse_payments_refunds_total",
		"Refund calls by result (succeeded, or the error code such as charge_not_refundable).",
		string(Succeeded))
	cents := observability.NewCounterVec(reg, "glasshouse_payments_charged_cents_total",
		"Money charged by succeeded charges, in cents, by currency; each charge counts once.", "currency")
	return func(next Service) Service {
		return instrumenting{Service: next, charges: charges, refunds: refunds, cents: cents}
	}
}

// instrumenting passes the reads and Void on untouched (the embedded
// Service) and counts charges and refunds.
type instrumenting struct {
	Service
	charges, refunds observability.ResultCounter
	cents            *prometheus.CounterVec
}

func (m instrumenting) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	ctx, replayed := withReplayNote(ctx)
	c, err := m.Service.Charge(ctx, req)
	m.charges.Count(err)
	if err == nil && !*replayed {
		m.cents.WithLabelValues(c.Currency).Add(float64(c.AmountCents))
	}
	return c, err
}

func (m instrumenting) Refund(ctx context.Context, chargeID string) (Charge, error) {
	c, err := m.Service.Refund(ctx, chargeID)
	m.refunds.Count(err)
	return c, err
}

// replayNoteKey keys a flag in the context through which the service
// tells Instrumenting that a Charge returned an existing charge. The
// answer itself must be identical for a replay, so the flag travels
// beside it, the way otelhttp's Labeler lets a handler add labels to the
// metrics of the middleware around it.
type replayNoteKey struct{}

func withReplayNote(ctx context.Context) (context.Context, *bool) {
	replayed := new(bool)
	return context.WithValue(ctx, replayNoteKey{}, replayed), replayed
}

// noteReplay marks the current Charge as a replay, if anyone asked.
func noteReplay(ctx context.Context) {
	if replayed, ok := ctx.Value(replayNoteKey{}).(*bool); ok {
		*replayed = true
	}
}
