package orders

import (
	"context"
	"fmt"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/services/payments"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Recovery drives to a terminal state the checkouts that a crash or an
// unavailable dependency left half-done (NewRecovery builds it). Each
// replica runs one; they share the work through the store, where an order
// is claimed under a lease before it is resumed.
type Recovery struct{ saga *checkoutSaga }

// RecoveryReport counts what one recovery pass did.
type RecoveryReport struct {
	Forward     int // sagas completed (the customer had paid)
	Compensated int // sagas rolled back
	Deferred    int // sagas left for the next pass (a dependency is down)
	Settled     int // failed orders whose charge question was answered
}

// Recover runs one recovery pass: every PENDING order untouched for
// StaleAfter is resumed from its recorded step, and every failed order
// whose charge was in doubt is checked against payments.
//
// The rule for resuming is "forward if paid, else back": an order that
// reached charged is committed (the customer paid and should get the
// goods); one that had not is compensated, unless payments shows the
// charge went through after all, which makes it paid.
func (rc *Recovery) Recover(ctx context.Context) (RecoveryReport, error) {
	s := rc.saga
	var rep RecoveryReport
	now := s.opts.Now()
	stale, err := s.store.stale(ctx, now.Add(-s.opts.StaleAfter))
	if err != nil {
		return rep, err
	}
	for _, r := range stale {
		// Claim with the current time: a long pass must not hand another
		// replica an already-stale lease.
		ok, err := s.store.claim(ctx, r, s.opts.Now())
		if err != nil {
			return rep, err
		}
		if !ok {
			continue // another replica, or the live saga, touched it
		}
		sctx, cancel := context.WithTimeout(ctx, s.opts.SagaTimeout)
		sctx, span := s.opts.Tracer.Start(sctx, "orders.Recover", trace.WithAttributes(
			attribute.String("glasshouse.order.id", r.ID), attribute.String("glasshouse.saga.step", string(r.Step))))
		status := s.resume(sctx, r)
		span.SetAttributes(attribute.String("glasshouse.order.status", string(status)))
		span.End()
		cancel()
		switch {
		case status == Confirmed:
			rep.Forward++
			s.opts.Metrics.recovery("forward")
		case status.Terminal():
			rep.Compensated++
			s.opts.Metrics.recovery("compensate")
		default:
			rep.Deferred++
			s.opts.Metrics.recovery("deferred")
		}
		s.opts.Logger.InfoContext(ctx, "recovered interrupted checkout", "order", r.ID, "step", string(r.Step), "status", string(status))
	}

	unsettled, err := s.store.unsettled(ctx)
	if err != nil {
		return rep, err
	}
	for _, r := range unsettled {
		sctx, span := s.opts.Tracer.Start(ctx, "orders.Settle", trace.WithAttributes(attribute.String("glasshouse.order.id", r.ID)))
		settled := s.settle(sctx, r)
		span.End()
		if settled {
			rep.Settled++
			s.opts.Metrics.recovery("settle")
		}
	}
	return rep, nil
}

// resume continues one interrupted saga and returns the order's status
// afterwards (still PENDING if it had to be deferred).
func (s *checkoutSaga) resume(ctx context.Context, r record) Status {
	interrupted := errs.E(errs.Unavailable, CodeInterrupted, "the checkout was interrupted; nothing was charged")
	var err error
	switch r.Step {
	case StepCharged:
		_, err = s.commit(ctx, r)
	case StepReserved:
		// The charge may or may not have happened: payments knows.
		charge, ferr := s.payments.FindCharge(ctx, r.ID)
		switch {
		case ferr == nil && charge.Status == payments.Succeeded:
			r.ChargeID = charge.ID
			if err = s.store.advance(ctx, r.ID, StepCharged, charge.ID, s.opts.Now()); err == nil {
				_, err = s.commit(ctx, r)
			}
		case ferr == nil || errs.CodeOf(ferr) == payments.CodeChargeNotFound:
			_, err = s.compensate(ctx, r, interrupted)
		default:
			return Pending // payments unreachable: decide next pass
		}
	case StepCompensating:
		_, err = s.compensate(ctx, r, r.failure())
	default: // created: reserving, never charged
		_, err = s.compensate(ctx, r, interrupted)
	}
	_ = err // the outcome is in the store; the error was the customer's answer
	after, gerr := s.store.get(ctx, r.ID)
	if gerr != nil {
		return Pending
	}
	return after.Status
}

// settle finishes the compensation of a failed order that payments could
// not be asked about: void it (so no charge can land later) and refund
// the charge it had, if any. It reports whether that is done.
func (s *checkoutSaga) settle(ctx context.Context, r record) bool {
	if err := s.voidCharge(ctx, r); err != nil {
		return false
	}
	return s.store.settle(ctx, r.ID) == nil
}

// Run runs a recovery pass now and then every interval until ctx
// ends: at start it finishes what a crash left; afterwards it catches
// sagas stalled by an unavailable dependency.
func (rc *Recovery) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("recovery interval must be positive, got %s", interval)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if rep, err := rc.Recover(ctx); err != nil && ctx.Err() == nil {
			rc.saga.opts.Logger.ErrorContext(ctx, "recovery pass failed", "error", err)
		} else if rep != (RecoveryReport{}) {
			rc.saga.opts.Logger.InfoContext(ctx, "recovery pass", "forward", rep.Forward, "compensated", rep.Compensated,
				"deferred", rep.Deferred, "settled", rep.Settled)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}
