// Package services is the catalogue of the platform's services: one Spec
// each, in start order. The services themselves live one package each
// below this directory (services/users, services/orders, ...); this
// package imports none of them, so anything may read the list: the local
// stack, the chaos runner, `glasshouse status`, and the generator that
// writes docker-compose.yml, the Kubernetes base and the Prometheus
// instance counts from it (deploy/cmd/gen, run by `make generate`).
//
// Adding a service is one entry in All, its package and its main, then
// `make generate`.
package services

// AdminOffset puts an instance's admin listener (/metrics, /healthz,
// /readyz, /debug/pprof/) this far above its public port, as every
// service's own default does: inventory serves its API on 8082 and its
// admin routes on 9082.
const AdminOffset = 1000

// GRPCOffset puts an instance's gRPC listener this far from its public
// HTTP port, for the services that serve gRPC too (Spec.GRPC): inventory
// serves HTTP on 8082 and gRPC on 7082.
const GRPCOffset = -1000

// GRPCSuffix makes the Consul name of a service's gRPC endpoint:
// "inventory-grpc". It is a service of its own in Consul, beside the HTTP
// one, with its own check (grpc.health.v1), so any Consul client, DNS
// included, finds the gRPC addresses as it finds the HTTP ones.
const GRPCSuffix = "-grpc"

// TokenRole is what a service does with the customers' bearer tokens.
type TokenRole int

const (
	// NoTokens: the service never sees a token.
	NoTokens TokenRole = iota
	// SignsTokens: the service holds the private key and signs tokens;
	// it starts first, since the checkers wait for its public key.
	SignsTokens
	// ChecksTokens: the service checks tokens with the signer's public
	// key, and is never given the private one.
	ChecksTokens
)

// Spec is one service as the platform runs it.
type Spec struct {
	// Name is the service's package, program and container name, and the
	// name it registers under in Consul.
	Name string
	// Summary says what the service does, in a phrase; it heads the
	// service's generated manifests.
	Summary string
	// Port is the public API port; the admin port is AdminOffset above.
	Port int
	// Replicas is how many instances the local stack runs on its SQLite
	// files (`make run`), where replicas share one file on one host.
	Replicas int
	// PostgresReplicas, when set, is how many instances the local stack
	// runs on its PostgreSQL store (`glasshouse up --store postgres`)
	// instead of Replicas: a networked database lets replicas that would
	// only contend for one SQLite file run side by side.
	PostgresReplicas int
	// DeployReplicas is how many instances docker compose and the
	// Kubernetes base run. There every store is a PostgreSQL database of
	// the service's own, so a service's instances share nothing but that
	// database, and none runs alone: at least 2 (deploy/ tests it).
	DeployReplicas int
	// GRPC marks a service that serves its API over gRPC too, on the
	// port GRPCOffset from Port, registered in Consul as Name+GRPCSuffix.
	GRPC bool
	// Calls are the services it calls, found through Consul.
	Calls []string
	// GRPCCalls are those of Calls it calls over gRPC by default (the
	// callee serves GRPC; -<callee>-transport=http switches back); the
	// rest it calls over HTTP.
	GRPCCalls []string
	// Public marks the one entry reachable from outside the platform.
	Public bool
	// Store is the SQLite file in the service's DATA_DIR; "" for a
	// stateless service. A service with a store gets a PostgreSQL database
	// and role named after it in compose and Kubernetes.
	Store string
	// Tokens is what the service does with bearer tokens.
	Tokens TokenRole
	// MemoryMiB is the container's memory limit (compose and Kubernetes).
	MemoryMiB int
	// CPUMilli is the CPU the scheduler reserves, in thousandths of a
	// core; there is no CPU limit (see deploy/templates/k8s-service.yaml.tmpl).
	CPUMilli int
}

// AdminPort is the port of the service's admin listener.
func (s Spec) AdminPort() int { return s.Port + AdminOffset }

// GRPCPort is the port of the service's gRPC listener, or 0 when it
// serves none.
func (s Spec) GRPCPort() int {
	if !s.GRPC {
		return 0
	}
	return s.Port + GRPCOffset
}

// GRPCName is the service's gRPC endpoint's name in Consul, or "" when it
// serves none.
func (s Spec) GRPCName() string {
	if !s.GRPC {
		return ""
	}
	return s.Name + GRPCSuffix
}

// GoMemLimitMiB is the GOMEMLIMIT every instance runs with, about 7/8 of
// its memory limit: Go does not read the container's limit, and this
// makes the collector work harder as the heap nears it, rather than
// leave the kernel to kill the process.
func (s Spec) GoMemLimitMiB() int { return s.MemoryMiB * 7 / 8 }

// All returns every service in start order: users first (it writes the
// token key pair the others read), the gateway, which calls the rest,
// last. A caller may change what it is given.
func All() []Spec {
	return []Spec{
		{
			Name:           "users",
			Summary:        "accounts, password hashes and the tokens everyone else checks",
			Port:           8081,
			Replicas:       1,
			DeployReplicas: 2,
			Store:          "users.db",
			Tokens:         SignsTokens,
			MemoryMiB:      64,
			CPUMilli:       50,
		},
		{
			Name:           "inventory",
			Summary:        "products, stock and reservations",
			Port:           8082,
			GRPC:           true,
			Replicas:       2,
			DeployReplicas: 2,
			Store:          "inventory.db",
			MemoryMiB:      64,
			CPUMilli:       50,
		},
		{
			Name: "payments",
			Summary: "charges and refunds, idempotent by order ID, with fault knobs (FAULT_ERROR_RATE, " +
				"FAULT_LATENCY; PUT /admin/faults on an instance's admin port, never through the gateway)",
			Port:           8084,
			GRPC:           true,
			Replicas:       2,
			DeployReplicas: 2,
			Store:          "payments.db",
			MemoryMiB:      64,
			CPUMilli:       50,
		},
		{
			Name:             "orders",
			Summary:          "orders and the checkout saga across inventory and payments",
			Port:             8083,
			Replicas:         1,
			DeployReplicas:   2,
			PostgresReplicas: 2,
			Calls:            []string{"inventory", "payments"},
			GRPCCalls:        []string{"inventory", "payments"},
			Store:            "orders.db",
			Tokens:           ChecksTokens,
			MemoryMiB:        96,
			CPUMilli:         50,
		},
		{
			Name:           "recommendations",
			Summary:        "customers who bought X also bought Y, learnt from orders' events on NATS",
			Port:           8085,
			GRPC:           true,
			Replicas:       1,
			DeployReplicas: 2,
			Store:          "recommendations.db",
			MemoryMiB:      48,
			CPUMilli:       50,
		},
		{
			Name:           "gateway",
			Summary:        "the only public entry",
			Port:           8080,
			Replicas:       1,
			DeployReplicas: 2,
			Calls:          []string{"users", "inventory", "orders", "recommendations"},
			GRPCCalls:      []string{"recommendations"},
			Public:         true,
			Tokens:         ChecksTokens,
			MemoryMiB:      64,
			CPUMilli:       100,
		},
	}
}

// Names returns the services' names in start order.
func Names() []string {
	all := All()
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.Name
	}
	return names
}

// Lookup returns the service called name.
func Lookup(name string) (Spec, bool) {
	for _, s := range All() {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}
