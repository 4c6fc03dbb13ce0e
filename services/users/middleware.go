package users

import (
	"context"

	"github.com/glasshouse-dev/glasshouse/observability"
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
	registrations := observability.NewResultCounter(reg, "glasshouse_users_registrations_total",
		"Registrations by result (ok or the error code).", "ok")
	logins := observability.NewResultCounter(reg, "glasshouse_users_logins_total",
		"Logins by result (ok or the error code).", "ok")
	return func(next Service) Service {
		return instrumenting{Service: next, registrations: registrations, logins: logins}
	}
}

// instrumenting passes GetUser on untouched (the embedded Service) and
// counts registrations and logins.
type instrumenting struct {
	Service
	registrations, logins observability.ResultCounter
}

func (m instrumenting) Register(ctx context.Context, email, password, name string) (User, error) {
	u, err := m.Service.Register(ctx, email, password, name)
	m.registrations.Count(err)
	return u, err
}

func (m instrumenting) Login(ctx context.Context, email, password string) (Token, error) {
	t, err := m.Service.Login(ctx, email, password)
	m.logins.Count(err)
	return t, err
}
