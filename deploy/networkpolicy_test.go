package deploy_test

// deploy/k8s/networkpolicy.yaml: only the edges the platform has.

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/glasshouse-dev/glasshouse/services"
)

// peer is a possible source or destination of traffic: a pod of the base,
// a Prometheus pod in another namespace, or the world outside.
type peer struct {
	name      string
	labels    map[string]string // nil: outside the cluster
	inBase    bool              // in the namespace the policies govern
	container *corev1.Container // nil for peers outside the base
}

// edge is one connection: from a peer to a named port of a base pod.
type edge struct{ from, to, port string }

func (e edge) String() string { return fmt.Sprintf("%s -> %s:%s", e.from, e.to, e.port) }

// wantEdges are the connections the platform makes, and so the only ones
// the policies may allow: each service's calls in services/catalog.go
// (TestCatalogueCallsAreTheServicesImported checks them against the
// code), over gRPC where the callee serves it and the caller is not the
// public entry (grpcCalls), the public entry, and the platform's own.
// A call over gRPC keeps its http edge: http is the caller's fallback
// transport, and that of a rolling update's pods from before gRPC.
func wantEdges() map[edge]bool {
	want := map[edge]bool{
		{"prometheus", "consul", "http"}: true, // Consul service discovery
		{"nats", "nats", "cluster"}:      true, // the routes between NATS servers
	}
	for _, s := range services.All() {
		for _, callee := range s.Calls {
			want[edge{s.Name, callee, "http"}] = true
		}
		for _, callee := range grpcCalls(s) {
			want[edge{s.Name, callee.Name, "grpc"}] = true
		}
		if s.GRPC {
			want[edge{"consul", s.Name, "grpc"}] = true // Consul's gRPC health check
		}
		if s.Public {
			want[edge{"outside", s.Name, "http"}] = true
			// The public port is public: a pod outside the base is as
			// welcome there as the internet (pods of the base are not:
			// their egress rules name only the calls).
			want[edge{"prometheus", s.Name, "http"}] = true
			want[edge{"cnpg-operator", s.Name, "http"}] = true
		}
		if s.Store != "" {
			// Its own database, and nobody else's; the cluster's
			// instances replicate to each other, and CloudNativePG's
			// operator asks each instance manager for its status.
			db := s.Name + "-db"
			want[edge{s.Name, db, "postgresql"}] = true
			want[edge{db, db, "postgresql"}] = true
			want[edge{"cnpg-operator", db, "status"}] = true
		}
		want[edge{s.Name, "consul", "http"}] = true
		want[edge{s.Name, "jaeger", "otlp-http"}] = true
		want[edge{s.Name, "nats", "client"}] = true      // every service is given NATS_URL
		want[edge{"consul", s.Name, "admin"}] = true     // the readiness check
		want[edge{"prometheus", s.Name, "admin"}] = true // the scrape
	}
	return want
}

func TestNetworkPoliciesAllowOnlyThePlatformsEdges(t *testing.T) {
	o := loadK8s(t)
	if len(o.policies) == 0 {
		t.Fatal("deploy/k8s has no NetworkPolicy")
	}
	peers := []peer{
		{name: "outside"},
		{name: "prometheus", labels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
	}
	workloads := o.workloads()
	for _, name := range slices.Sorted(maps.Keys(workloads)) {
		w := workloads[name]
		c := &w.template.Spec.Containers[0]
		peers = append(peers, peer{name: name, labels: w.template.Labels, inBase: true, container: c})
	}
	// CloudNativePG's pods: the operator in its own namespace, and each
	// Cluster's instances in the base's, with the label and the ports
	// the operator gives them.
	peers = append(peers, peer{name: "cnpg-operator", labels: map[string]string{"app.kubernetes.io/name": "cloudnative-pg"}})
	for _, name := range slices.Sorted(maps.Keys(o.clusters)) {
		peers = append(peers, peer{
			name:   name,
			labels: map[string]string{"cnpg.io/cluster": name, "cnpg.io/podRole": "instance"},
			inBase: true,
			container: &corev1.Container{Ports: []corev1.ContainerPort{
				{Name: "postgresql", ContainerPort: 5432},
				{Name: "metrics", ContainerPort: 9187},
				{Name: "status", ContainerPort: 8000},
			}},
		})
	}
	want := wantEdges()
	got := map[edge]bool{}
	for _, from := range peers {
		for _, to := range peers {
			if !to.inBase {
				continue
			}
			for _, port := range to.container.Ports {
				if allowed(t, o.policies, from, to, port) {
					got[edge{from.name, to.name, port.Name}] = true
				}
			}
		}
	}
	for e := range want {
		if !got[e] {
			t.Errorf("the policies block %s, an edge the platform needs", e)
		}
	}
	for e := range got {
		if !want[e] {
			t.Errorf("the policies allow %s, which the platform never uses", e)
		}
	}
}

func TestServicesDoNotExposeTheAdminPort(t *testing.T) {
	o := loadK8s(t)
	for _, name := range serviceNames(t) {
		d, ok := o.deployments[name]
		svc, ok2 := o.services[name]
		if !ok || !ok2 {
			continue // reported by TestKubernetesRunsEveryService
		}
		c := glasshouseContainer(t, d)
		if c == nil {
			continue
		}
		admin := portNumber(c, "admin")
		for _, sp := range svc.Spec.Ports {
			if target := sp.TargetPort.String(); target == "admin" || target == admin || strconv.Itoa(int(sp.Port)) == admin {
				t.Errorf("Service %s exposes the admin port (%s): it is for Consul and Prometheus, who dial the pod", name, target)
			}
		}
	}
}

// allowed tells whether the policies let from open a connection to port
// of to: to's ingress policies must admit it, and, when from is a pod of
// the base, from's egress policies too. A pod that no policy of a type
// selects is not isolated for that type.
func allowed(t *testing.T, policies map[string]*networkingv1.NetworkPolicy, from, to peer, port corev1.ContainerPort) bool {
	ingress, egress := false, false
	ingressIsolated, egressIsolated := false, false
	for _, p := range policies {
		if slices.Contains(policyTypes(p), networkingv1.PolicyTypeIngress) && selectsPod(t, &p.Spec.PodSelector, to.labels) {
			ingressIsolated = true
			for _, r := range p.Spec.Ingress {
				if peersAdmit(t, r.From, from) && portsAdmit(r.Ports, to, port) {
					ingress = true
				}
			}
		}
		if from.inBase && slices.Contains(policyTypes(p), networkingv1.PolicyTypeEgress) && selectsPod(t, &p.Spec.PodSelector, from.labels) {
			egressIsolated = true
			for _, r := range p.Spec.Egress {
				if peersAdmit(t, r.To, to) && portsAdmit(r.Ports, to, port) {
					egress = true
				}
			}
		}
	}
	return (ingress || !ingressIsolated) && (egress || !egressIsolated)
}

// policyTypes are p's types, defaulted as the API server does.
func policyTypes(p *networkingv1.NetworkPolicy) []networkingv1.PolicyType {
	if len(p.Spec.PolicyTypes) > 0 {
		return p.Spec.PolicyTypes
	}
	types := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	if len(p.Spec.Egress) > 0 {
		types = append(types, networkingv1.PolicyTypeEgress)
	}
	return types
}

func selectsPod(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if podLabels == nil {
		return false // outside the cluster: no pod selector matches it
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("label selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(podLabels))
}

// peersAdmit tells whether a rule's peers include p: no peers means
// everyone; a bare podSelector means pods of the base's namespace; with a
// namespaceSelector, pods of any namespace it selects.
func peersAdmit(t *testing.T, peers []networkingv1.NetworkPolicyPeer, p peer) bool {
	if len(peers) == 0 {
		return true
	}
	for _, np := range peers {
		switch {
		case np.IPBlock != nil:
			t.Errorf("ipBlock peers are not modelled by this test: %v", np.IPBlock)
		case np.NamespaceSelector != nil:
			// Every namespace selector here is {} (all namespaces), so
			// only the pod selector narrows it.
			if len(np.NamespaceSelector.MatchLabels)+len(np.NamespaceSelector.MatchExpressions) > 0 {
				t.Errorf("namespace selectors other than {} are not modelled by this test: %v", np.NamespaceSelector)
			}
			if np.PodSelector == nil && p.labels != nil || np.PodSelector != nil && selectsPod(t, np.PodSelector, p.labels) {
				return true
			}
		case np.PodSelector != nil:
			if p.inBase && selectsPod(t, np.PodSelector, p.labels) {
				return true
			}
		}
	}
	return false
}

// portsAdmit tells whether a rule's ports include port of the pod to: no
// ports means all; a named port is the destination container's.
func portsAdmit(ports []networkingv1.NetworkPolicyPort, to peer, port corev1.ContainerPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, np := range ports {
		if np.Protocol != nil && *np.Protocol != corev1.ProtocolTCP {
			continue
		}
		if np.Port == nil {
			return true
		}
		if np.Port.String() == port.Name || np.Port.String() == strconv.Itoa(int(port.ContainerPort)) {
			return true
		}
	}
	return false
}
