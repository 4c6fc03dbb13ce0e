package deploy_test

// NATS with JetStream: one server in docker compose, a cluster of three
// in Kubernetes, both the release the local stack builds.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/glasshouse-dev/glasshouse/stack"
)

// natsImage is the official image of the pinned release: its Alpine
// variant, whose wget runs compose's healthcheck.
var natsImage = "nats:" + strings.TrimPrefix(stack.NATSVersion, "v") + "-alpine"

// argValue is the value of --name in args, written --name=value or
// --name value; ok is false when the flag is absent.
func argValue(args []string, name string) (value string, ok bool) {
	for i, a := range args {
		if v, found := strings.CutPrefix(a, "--"+name+"="); found {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func TestComposeRunsOneJetStreamServerOnItsVolume(t *testing.T) {
	p := loadCompose(t)
	s, ok := p.AllServices()["nats"]
	if !ok {
		t.Fatal("docker-compose.yml has no nats service")
	}
	if s.Image != natsImage {
		t.Errorf("compose's nats runs %s; want %s, the release the local stack builds (stack.NATSVersion)", s.Image, natsImage)
	}
	args := composeArgs(s)
	if !slices.Contains(args, "--jetstream") {
		t.Errorf("compose's nats %v: JetStream is off (no --jetstream)", args)
	}
	store, _ := argValue(args, "store_dir")
	if v := mountAt(s, store); store == "" || v == nil || v.Type != types.VolumeTypeVolume || v.Source != "nats-data" {
		t.Errorf("compose's nats stores in %q, which is not its named volume nats-data: the streams would go with the container", store)
	}
	if port, _ := argValue(args, "port"); port != "4222" {
		t.Errorf("compose's nats serves clients on %q; NATS_URL says 4222", port)
	}
	monitor, _ := argValue(args, "http_port")
	want := "http://127.0.0.1:" + monitor + "/healthz?js-enabled-only=true"
	if hc := s.HealthCheck; monitor == "" || hc == nil || len(hc.Test) < 2 || hc.Test[0] != "CMD" || !slices.Contains(hc.Test, want) {
		t.Errorf("compose's nats healthcheck %v; want one in exec form asking %s (200 once JetStream is up)", s.HealthCheck, want)
	}
}

func TestKubernetesRunsAThreeNodeJetStreamCluster(t *testing.T) {
	o := loadK8s(t)
	ss, ok := o.statefulSets["nats"]
	if !ok {
		t.Fatal("deploy/k8s has no StatefulSet nats")
	}
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Fatalf("StatefulSet nats has %v replicas; want 3, so a stream of 3 replicas survives losing one", ss.Spec.Replicas)
	}
	// A server is ready only once it reaches the others: started one
	// after another, the first would wait for ever.
	if ss.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("StatefulSet nats: podManagementPolicy %q; want Parallel", ss.Spec.PodManagementPolicy)
	}
	pods := ss.Spec.Template.Labels
	c := ss.Spec.Template.Spec.Containers[0]
	if c.Image != natsImage {
		t.Errorf("StatefulSet nats runs %s; want %s, as compose and the local stack", c.Image, natsImage)
	}
	args := append(slices.Clone(c.Command), c.Args...)
	if !slices.Contains(args, "--jetstream") {
		t.Errorf("StatefulSet nats %v: JetStream is off (no --jetstream)", args)
	}
	// Each server's store is its own claim, which follows it.
	store, _ := argValue(args, "store_dir")
	claimed := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == store {
			claimed = slices.ContainsFunc(ss.Spec.VolumeClaimTemplates, func(pvc corev1.PersistentVolumeClaim) bool { return pvc.Name == m.Name })
		}
	}
	if store == "" || !claimed {
		t.Errorf("StatefulSet nats stores in %q, which is not a volume from its volumeClaimTemplates", store)
	}
	// A JetStream server's name must be unique and stable: the pod's.
	if name, _ := argValue(args, "server_name"); name != "$(POD_NAME)" || envVar(&c, "POD_NAME") == nil ||
		envVar(&c, "POD_NAME").ValueFrom == nil || envVar(&c, "POD_NAME").ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("StatefulSet nats: --server_name=%q; want $(POD_NAME), from metadata.name", name)
	}

	// The routes name every pod through the headless Service, which
	// publishes them before they are ready.
	headless, ok := o.services[ss.Spec.ServiceName]
	if !ok {
		t.Fatalf("StatefulSet nats names the Service %q, which the base lacks", ss.Spec.ServiceName)
	}
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses || !selects(headless.Spec.Selector, pods) {
		t.Errorf("Service %s: clusterIP %q, publishNotReadyAddresses %v, selector %v; want a headless Service of the nats pods that publishes them unready",
			headless.Name, headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses, headless.Spec.Selector)
	}
	var want []string
	for i := range int(*ss.Spec.Replicas) {
		want = append(want, fmt.Sprintf("nats://%s-%d.%s:6222", ss.Name, i, headless.Name))
	}
	if routes, _ := argValue(args, "routes"); routes != strings.Join(want, ",") {
		t.Errorf("StatefulSet nats routes %q; want every pod, %s", routes, strings.Join(want, ","))
	}
	if cluster, _ := argValue(args, "cluster"); !strings.HasSuffix(cluster, ":6222") {
		t.Errorf("StatefulSet nats listens for routes on %q; want port 6222", cluster)
	}
	servesOn := func(svc *corev1.Service, port int32, target string) bool {
		return slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
			return p.Port == port && p.TargetPort == intstr.FromString(target)
		})
	}
	for port, name := range map[int32]string{4222: "client", 6222: "cluster", 8222: "monitor"} {
		if !servesOn(headless, port, name) {
			t.Errorf("Service %s lacks port %d (%s)", headless.Name, port, name)
		}
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == name && p.ContainerPort == port }) {
			t.Errorf("StatefulSet nats: no container port %s %d", name, port)
		}
	}
	// The clients' Service, which NATS_URL names.
	if svc, ok := o.services["nats"]; !ok || !selects(svc.Spec.Selector, pods) || !servesOn(svc, 4222, "client") {
		t.Errorf("no Service nats selecting the nats pods on 4222")
	}
	// Its probes ask the monitoring port whether JetStream is up.
	for what, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Port != intstr.FromString("monitor") || !strings.HasPrefix(probe.HTTPGet.Path, "/healthz") {
			t.Errorf("StatefulSet nats: its %s probe %+v does not ask /healthz on the monitoring port", what, probe)
		}
	}
	// Voluntary disruptions take one server at a time, keeping a quorum.
	pdb, ok := o.budgets["nats"]
	if !ok || pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) || !selects(pdb.Spec.Selector.MatchLabels, pods) {
		t.Errorf("no PodDisruptionBudget nats of its pods with maxUnavailable 1")
	}
}
