package platform

import (
	"fmt"
	"net"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/transport"
)

// Discovery holds the flags every service shares for Consul.
type Discovery struct {
	ConsulAddr      *string
	Advertise       *string
	CheckInterval   *time.Duration
	CheckTimeout    *time.Duration
	DeregisterAfter *time.Duration
}

// DiscoveryFlags defines the Consul flags on f.
func DiscoveryFlags(f *config.Flags) Discovery {
	return Discovery{
		ConsulAddr:      f.String("consul", "CONSUL_HTTP_ADDR", "127.0.0.1:8500", "Consul agent HTTP address"),
		Advertise:       f.String("advertise", "ADVERTISE_ADDR", "", "address peers dial to reach this instance (default: the listen host, else the host name)"),
		CheckInterval:   f.Duration("check-interval", "CHECK_INTERVAL", 2*time.Second, "how often Consul checks /readyz on the admin listener"),
		CheckTimeout:    f.Duration("check-timeout", "CHECK_TIMEOUT", time.Second, "how long Consul's check may take"),
		DeregisterAfter: f.Duration("deregister-after", "DEREGISTER_AFTER", time.Minute, "how long a critical instance stays in Consul before it is removed"),
	}
}

// Registration describes the instance serving its API on ln and its admin
// listener on admin, both reached at the advertised address.
func (d Discovery) Registration(service, version string, ln, admin net.Listener) transport.Registration {
	port := ln.Addr().(*net.TCPAddr).Port
	addr := transport.AdvertiseAddress(*d.Advertise, ln.Addr().String())
	return transport.Registration{
		Service:         service,
		ID:              fmt.Sprintf("%s-%s-%d", service, addr, port),
		Address:         addr,
		Port:            port,
		AdminPort:       admin.Addr().(*net.TCPAddr).Port,
		Tags:            []string{"glasshouse"},
		Meta:            map[string]string{"version": version, "metrics_path": "/metrics"},
		CheckInterval:   *d.CheckInterval,
		CheckTimeout:    *d.CheckTimeout,
		DeregisterAfter: *d.DeregisterAfter,
	}
}

// GRPCRegistration describes the same instance's gRPC listener: a
// service of its own in Consul ("inventory-grpc", tagged grpc only, so
// Prometheus, which scrapes what is tagged glasshouse, does not scrape it
// twice), checked by Consul's GRPC check against grpc.health.v1.
func (d Discovery) GRPCRegistration(http transport.Registration, ln net.Listener) transport.Registration {
	port := ln.Addr().(*net.TCPAddr).Port
	name := http.Service + services.GRPCSuffix
	return transport.Registration{
		Service:         name,
		ID:              fmt.Sprintf("%s-%s-%d", name, http.Address, port),
		Address:         http.Address,
		Port:            port,
		GRPCCheck:       true,
		Tags:            []string{"grpc"},
		Meta:            map[string]string{"version": http.Meta["version"], transport.HTTPInstanceMeta: http.ID},
		CheckInterval:   http.CheckInterval,
		CheckTimeout:    http.CheckTimeout,
		DeregisterAfter: http.DeregisterAfter,
	}
}
