package users

import (
	"context"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// Middleware decorates a Service, as go-kit's service middlewares do.
type Middleware func(Service) Service

// Instrumenting counts registrations and logins by result, in business
// terms: a spike of invalid_credentials is someone guessing passwords, a
// run of email_taken a confused sign-up form. Endpoint latency and errors
// are measured one layer out, by the endpoint middlewares; this layer says
// what they meant.
func Instrumenting(reg prometheus.Registerer) Middleware {
	registrations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "glasshouse_users_registrations_total",
		Help: "Registrations by result (ok or the error code).",
	}, []string{"result"})
	logins := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "glasshouse_users_logins_total",
		Help: "Logins by result (ok or the error code).",
	}, []string{"result"})
	reg.MustRegister(registrations, logins)
	return func(next Service) Service {
		return instrumenting{Service: next, registrations: registrations, logins: logins}
	}
}

// instrumenting passes GetUser on untouched (the embedded Service) and
// counts registrations and logins.
type instrumenting struct {
	Service
	registrations, logins *prometheus.CounterVec
}

func (m instrumenting) Register(ctx context.Context, email, password, name string) (User, error) {
	u, err := m.Service.Register(ctx, email, password, name)
	m.registrations.WithLabelValues(result(err)).Inc()
	return u, err
}

func (m instrumenting) Login(ctx context.Context, email, password string) (Token, error) {
	t, err := m.Service.Login(ctx, email, password)
	m.logins.WithLabelValues(result(err)).Inc()
	return t, err
}

// result is the label for an outcome: "ok", or the error's stable code,
// of which there are few, so the label's cardinality stays bounded.
func result(err error) string {
	if err != nil {
		return errs.CodeOf(err)
	}
	return "ok"
}
