package platform

import (
	"fmt"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// RemoteFlags are the resilience settings of this process's calls to one
// remote service, each a flag with an environment fallback named after the
// remote: for inventory, -inventory-attempts / INVENTORY_CLIENT_ATTEMPTS,
// -inventory-attempt-timeout / INVENTORY_CLIENT_ATTEMPT_TIMEOUT, and so on.
// A main defines them before parsing, which checks them, and builds its
// client with Process.Client.
type RemoteFlags struct {
	attempts, failures    *int
	attemptTimeout, total *time.Duration
	openFor               *time.Duration
	honest                *bool
	service, flag, env    string
	adjust                func(*transport.ClientConfig)
	transport             *string     // "grpc" or "http"; nil: HTTP only
	grpc                  grpcFactory // the remote's API over gRPC
}

// grpcFactory is a service's GRPCAPI, without its type parameter.
type grpcFactory interface {
	Factory(transport.GRPCClientFactory) transport.ClientFactory
}

// Transports a client may call a remote service over.
const (
	TransportGRPC = "grpc"
	TransportHTTP = "http"
)

// OverGRPC lets the calls to the remote go over gRPC, api being its
// GRPCAPI, and makes that the default: -<service>-transport /
// <SERVICE>_TRANSPORT chooses grpc or http. The remote must serve gRPC
// (services.Spec.GRPC).
func (r *RemoteFlags) OverGRPC(f *config.Flags, api grpcFactory) *RemoteFlags {
	spec, ok := services.Lookup(r.service)
	if !ok || !spec.GRPC {
		panic(fmt.Sprintf("platform: %s serves no gRPC (services/catalog.go)", r.service))
	}
	r.grpc = api
	name, env := r.service+"-transport", strings.ToUpper(r.service)+"_TRANSPORT"
	r.transport = f.String(name, env, TransportGRPC, "how calls to "+r.service+" travel: grpc (protobuf, to "+spec.GRPCName()+" in Consul) or http (JSON)")
	f.Check(func() error {
		if *r.transport != TransportGRPC && *r.transport != TransportHTTP {
			return fmt.Errorf("-%s / %s is %q: choose grpc or http", name, env, *r.transport)
		}
		return nil
	})
	return r
}

// Transport is how the calls travel: grpc or http.
func (r *RemoteFlags) Transport() string {
	if r.transport == nil {
		return TransportHTTP
	}
	return *r.transport
}

// NewRemoteFlags defines the settings for calls to service on f, with
// defaults taken from def (its zero fields mean transport's defaults).
func NewRemoteFlags(f *config.Flags, service string, def transport.ClientConfig) *RemoteFlags {
	d := def.WithDefaults()
	flag := service + "-"
	env := strings.ToUpper(service) + "_CLIENT_"
	r := &RemoteFlags{
		service:        service,
		flag:           flag,
		env:            env,
		attempts:       f.Int(flag+"attempts", env+"ATTEMPTS", d.MaxAttempts, "attempts per call to "+service+", the first included (retries go to other instances, and only for safe calls)"),
		attemptTimeout: f.Duration(flag+"attempt-timeout", env+"ATTEMPT_TIMEOUT", d.CallTimeout, "how long one attempt to a "+service+" instance may take"),
		total:          f.Duration(flag+"deadline", env+"DEADLINE", d.Deadline, "how long a call to "+service+" may take, retries included"),
		failures:       f.Int(flag+"breaker-failures", env+"BREAKER_FAILURES", int(d.Breaker.ConsecutiveFailures), "consecutive failures of one "+service+" instance's endpoint that open its breaker"),
		openFor:        f.Duration(flag+"breaker-open", env+"BREAKER_OPEN", d.Breaker.OpenFor, "how long an open breaker refuses calls before one probe"),
		honest:         f.Bool(flag+"breaker-honest", env+"BREAKER_HONEST", !d.CountAllErrors, "count only the peer's own faults against breakers; false is for the chaos suite's mechanism-off runs, never production"),
	}
	f.Check(func() error { _, err := r.Config(); return err })
	return r
}

// Adjust changes the parsed settings before Process.Client uses them:
// for an older flag that sets one of them under another name.
func (r *RemoteFlags) Adjust(change func(*transport.ClientConfig)) { r.adjust = change }

// Client builds the calls to the remote service over Consul with the
// settings r holds (checked when the flags were parsed), watched until
// the process closes.
func (p *Process) Client(r *RemoteFlags) transport.ClientFactory {
	cfg, _ := r.Config() // checked by Parse
	if r.adjust != nil {
		r.adjust(&cfg)
	}
	if r.Transport() == TransportGRPC {
		spec, _ := services.Lookup(r.service) // checked by OverGRPC
		cfg.ConsulName = spec.GRPCName()
		return r.grpc.Factory(p.Remote(r.service, cfg).GRPC())
	}
	return p.Remote(r.service, cfg).Factory()
}

// Config returns the parsed settings, or an error naming the setting that
// is out of range.
func (r *RemoteFlags) Config() (transport.ClientConfig, error) {
	cfg := transport.ClientConfig{
		Service:        r.service,
		MaxAttempts:    *r.attempts,
		CallTimeout:    *r.attemptTimeout,
		Deadline:       *r.total,
		CountAllErrors: !*r.honest,
		Breaker: transport.BreakerConfig{
			OpenFor: *r.openFor,
		},
	}
	switch {
	case *r.attempts < 1:
		return cfg, fmt.Errorf("-%sattempts / %sATTEMPTS must be at least 1, not %d", r.flag, r.env, *r.attempts)
	case *r.failures < 1:
		return cfg, fmt.Errorf("-%sbreaker-failures / %sBREAKER_FAILURES must be at least 1, not %d", r.flag, r.env, *r.failures)
	case *r.attemptTimeout <= 0 || *r.total <= 0 || *r.openFor <= 0:
		return cfg, fmt.Errorf("the %s client's timeouts (-%sattempt-timeout, -%sdeadline, -%sbreaker-open) must be positive", r.service, r.flag, r.flag, r.flag)
	case *r.total < *r.attemptTimeout:
		return cfg, fmt.Errorf("-%sdeadline (%s) is shorter than one attempt (-%sattempt-timeout %s): no call could ever be retried", r.flag, *r.total, r.flag, *r.attemptTimeout)
	}
	cfg.Breaker.ConsecutiveFailures = uint32(*r.failures)
	return cfg, nil
}
