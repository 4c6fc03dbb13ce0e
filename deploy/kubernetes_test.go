package deploy_test

// deploy/k8s: the Kustomize base.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/glasshouse-dev/glasshouse/services"
	"github.com/glasshouse-dev/glasshouse/services/users"
)

// k8sDir holds the base, relative to this package.
const k8sDir = "k8s"

// kinds are the kinds the base may hold, each with its API version and a
// fresh value of its Go type. A Secret is missing on purpose: the token
// key pair is created in the cluster, never committed.
var kinds = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Deployment":          {"apps/v1", func() any { return new(appsv1.Deployment) }},
	"StatefulSet":         {"apps/v1", func() any { return new(appsv1.StatefulSet) }},
	"Service":             {"v1", func() any { return new(corev1.Service) }},
	"ConfigMap":           {"v1", func() any { return new(corev1.ConfigMap) }},
	"NetworkPolicy":       {"networking.k8s.io/v1", func() any { return new(networkingv1.NetworkPolicy) }},
	"PodDisruptionBudget": {"policy/v1", func() any { return new(policyv1.PodDisruptionBudget) }},
	"Cluster":             {"postgresql.cnpg.io/v1", func() any { return new(cnpgCluster) }},
}

// cnpgCluster is the part of CloudNativePG's Cluster (postgresql.cnpg.io/v1)
// that the base uses. It is decoded strictly too, so a field the base
// writes and this type lacks fails here: add it after checking it in the
// CRD's reference (cloudnative-pg.io/documentation, API reference), as no
// schema of the CRD is checked here. A PersistentVolumeClaim has no
// place in the base any more: a service keeps its data in its Cluster.
type cnpgCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Instances int    `json:"instances"`
		ImageName string `json:"imageName"`
		Bootstrap struct {
			InitDB struct {
				Database string `json:"database"`
				Owner    string `json:"owner"`
			} `json:"initdb"`
		} `json:"bootstrap"`
		PostgreSQL struct {
			Parameters map[string]string `json:"parameters"`
		} `json:"postgresql"`
		Storage struct {
			Size string `json:"size"`
		} `json:"storage"`
		Resources corev1.ResourceRequirements `json:"resources"`
	} `json:"spec"`
}

// k8sObjects is the base, decoded.
type k8sObjects struct {
	files        []string
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	clusters     map[string]*cnpgCluster
	policies     map[string]*networkingv1.NetworkPolicy
	budgets      map[string]*policyv1.PodDisruptionBudget
}

// workload is the pods of a Deployment or a StatefulSet.
type workload struct {
	kind, name string
	selector   *metav1.LabelSelector
	template   corev1.PodTemplateSpec
}

// workloads are the base's Deployments and StatefulSets, by name.
func (o k8sObjects) workloads() map[string]workload {
	out := map[string]workload{}
	for name, d := range o.deployments {
		out[name] = workload{"Deployment", name, d.Spec.Selector, d.Spec.Template}
	}
	for name, s := range o.statefulSets {
		out[name] = workload{"StatefulSet", name, s.Spec.Selector, s.Spec.Template}
	}
	return out
}

// loadK8s decodes every document of every manifest into its API type,
// strictly: a misspelt or misplaced field is an error here, where
// `kubectl apply` would drop it without a word (or, with server-side
// validation, fail only at deploy time).
func loadK8s(t *testing.T) k8sObjects {
	t.Helper()
	return loadK8sFrom(t, k8sDir)
}

// loadK8sFrom decodes the manifests in dir, as loadK8s does deploy/k8s.
func loadK8sFrom(t *testing.T, dir string) k8sObjects {
	t.Helper()
	o := k8sObjects{
		deployments:  map[string]*appsv1.Deployment{},
		statefulSets: map[string]*appsv1.StatefulSet{},
		services:     map[string]*corev1.Service{},
		configMaps:   map[string]*corev1.ConfigMap{},
		clusters:     map[string]*cnpgCluster{},
		policies:     map[string]*networkingv1.NetworkPolicy{},
		budgets:      map[string]*policyv1.PodDisruptionBudget{},
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if filepath.Base(p) == "kustomization.yaml" {
			continue
		}
		o.files = append(o.files, filepath.Base(p))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
		for n := 1; ; n++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s document %d: %v", p, n, err)
			}
			kind, ok := kinds[meta.Kind]
			if !ok {
				t.Errorf("%s document %d: kind %q is not expected in the base", p, n, meta.Kind)
				continue
			}
			if meta.APIVersion != kind.apiVersion {
				t.Errorf("%s document %d: %s has apiVersion %q, want %q", p, n, meta.Kind, meta.APIVersion, kind.apiVersion)
			}
			obj := kind.new()
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Errorf("%s document %d (%s): %v", p, n, meta.Kind, err)
				continue
			}
			switch obj := obj.(type) {
			case *appsv1.Deployment:
				o.deployments[obj.Name] = obj
			case *appsv1.StatefulSet:
				o.statefulSets[obj.Name] = obj
			case *policyv1.PodDisruptionBudget:
				o.budgets[obj.Name] = obj
			case *corev1.Service:
				o.services[obj.Name] = obj
			case *corev1.ConfigMap:
				o.configMaps[obj.Name] = obj
			case *cnpgCluster:
				o.clusters[obj.Name] = obj
			case *networkingv1.NetworkPolicy:
				o.policies[obj.Name] = obj
			}
		}
	}
	if len(o.files) == 0 {
		t.Fatal("no manifests in deploy/k8s")
	}
	return o
}

// stripComments drops comment lines, to tell an empty document (a file's
// header, say) from one with content.
func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	o := loadK8s(t)
	b, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s, want kustomize.config.k8s.io/v1beta1 Kustomization", k.APIVersion, k.Kind)
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if want := slices.Sorted(slices.Values(o.files)); !reflect.DeepEqual(got, want) {
		t.Errorf("kustomization.yaml lists %v; the manifests here are %v", got, want)
	}
}

func TestKubernetesRunsEveryService(t *testing.T) {
	o := loadK8s(t)
	for _, name := range serviceNames(t) {
		d, ok := o.deployments[name]
		if !ok {
			t.Errorf("no Deployment %s", name)
			continue
		}
		if spec, _ := services.Lookup(name); d.Spec.Replicas == nil || int(*d.Spec.Replicas) != spec.DeployReplicas || *d.Spec.Replicas < 2 {
			t.Errorf("Deployment %s: replicas %s, want DeployReplicas in services/catalog.go (%d), as in compose, and at least 2 (stated, not defaulted)", name, optional(d.Spec.Replicas), spec.DeployReplicas)
		}
		c := glasshouseContainer(t, d)
		if c == nil {
			continue
		}
		if len(c.Command) == 0 || c.Command[0] != name {
			t.Errorf("Deployment %s runs %v, want the %s program", name, c.Command, name)
		}
		svc, ok := o.services[name]
		if !ok {
			t.Errorf("no Service %s", name)
			continue
		}
		if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("Service %s selects %v, which Deployment %s's pods (%v) do not carry", name, svc.Spec.Selector, name, d.Spec.Template.Labels)
		}
		for _, sp := range svc.Spec.Ports {
			if !hasPort(c, sp.TargetPort.String()) {
				t.Errorf("Service %s: targetPort %s is no port of the %s container", name, sp.TargetPort.String(), name)
			}
		}
	}
}

// optional prints a count that may be unset.
func optional(n *int32) string {
	if n == nil {
		return "unset"
	}
	return strconv.Itoa(int(*n))
}

// glasshouseContainer returns the one container of d, which must run the
// glasshouse image.
func glasshouseContainer(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Errorf("Deployment %s: %d containers, want 1", d.Name, len(cs))
		return nil
	}
	if repo, _, _ := imageRef(cs[0].Image); repo != "glasshouse" {
		t.Errorf("Deployment %s runs %s, not the glasshouse image", d.Name, cs[0].Image)
		return nil
	}
	return &cs[0]
}

// selects tells whether a non-empty label selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// hasPort tells whether c declares port, given by name or number.
func hasPort(c *corev1.Container, port string) bool {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return true
		}
	}
	return false
}

func TestKubernetesDeploymentsAreProbedLimitedAndLockedDown(t *testing.T) {
	o := loadK8s(t)
	for name, w := range o.workloads() {
		pod := w.template.Spec
		if w.selector == nil || !selects(w.selector.MatchLabels, w.template.Labels) {
			t.Errorf("%s %s: its selector does not select its own pods", w.kind, name)
		}
		for _, c := range pod.Containers {
			where := fmt.Sprintf("%s %s, container %s", w.kind, name, c.Name)
			checkPinned(t, where, c.Image)
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s: needs a readiness and a liveness probe", where)
			}
			req, lim := c.Resources.Requests, c.Resources.Limits
			if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
				t.Errorf("%s: needs CPU and memory requests and a memory limit (has requests %v, limits %v)", where, req, lim)
			}
			if v := envValue(&c, "GOMEMLIMIT"); v != "" || isGlasshouse(&c) {
				checkGoMemLimit(t, where, v, lim.Memory().Value())
			}

			runAsNonRoot := pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot
			sc := c.SecurityContext
			if sc != nil && sc.RunAsNonRoot != nil {
				runAsNonRoot = *sc.RunAsNonRoot
			}
			if !runAsNonRoot {
				t.Errorf("%s: runAsNonRoot is not set", where)
			}
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation must be false", where)
			}
			if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: capabilities must drop ALL", where)
			}
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem must be true (give writable paths a volume)", where)
			}
		}
	}
}

// isGlasshouse tells whether c runs the glasshouse image.
func isGlasshouse(c *corev1.Container) bool {
	repo, _, _ := imageRef(c.Image)
	return repo == "glasshouse"
}

// envValue is the literal value of c's variable name, "" if unset.
func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// envVar is c's variable name, nil if unset.
func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i, e := range c.Env {
		if e.Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func TestKubernetesServicesProbeHealthAndAdvertiseThePod(t *testing.T) {
	o := loadK8s(t)
	for _, name := range serviceNames(t) {
		d, ok := o.deployments[name]
		if !ok {
			continue // reported by TestKubernetesRunsEveryService
		}
		c := glasshouseContainer(t, d)
		if c == nil {
			continue
		}
		where := "Deployment " + name
		port := listenPort(t, where, envValue(c, "LISTEN_ADDR"))
		if !hasPort(c, port) {
			t.Errorf("%s: LISTEN_ADDR port %s is not a container port", where, port)
		}
		// Probes ask the admin listener, where /healthz and /readyz are;
		// the public port answers them 404.
		admin := listenPort(t, where, envValue(c, "ADMIN_LISTEN_ADDR"))
		if !hasPort(c, "admin") || portNumber(c, "admin") != admin {
			t.Errorf("%s: ADMIN_LISTEN_ADDR port %s must be the container port named admin", where, admin)
		}
		for probe, p := range map[string]struct {
			probe *corev1.Probe
			path  string
		}{
			"readiness": {c.ReadinessProbe, "/readyz"},
			"liveness":  {c.LivenessProbe, "/healthz"},
			"startup":   {c.StartupProbe, "/healthz"},
		} {
			if p.probe == nil {
				continue // required ones are reported above
			}
			g := p.probe.HTTPGet
			if g == nil || g.Path != p.path || !hasPort(c, g.Port.String()) || portNumber(c, g.Port.String()) != admin {
				t.Errorf("%s: the %s probe must GET %s on the admin port %s", where, probe, p.path, admin)
			}
		}
		// Consul's checks and the callers dial the advertised address,
		// which must be the pod's own.
		adv := envVar(c, "ADVERTISE_ADDR")
		if adv == nil || adv.ValueFrom == nil || adv.ValueFrom.FieldRef == nil || adv.ValueFrom.FieldRef.FieldPath != "status.podIP" {
			t.Errorf("%s: ADVERTISE_ADDR must come from the downward API, status.podIP", where)
		}
		// Where to find Consul and the collector comes from the ConfigMap.
		found := false
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef == nil {
				continue
			}
			cm, ok := o.configMaps[from.ConfigMapRef.Name]
			if !ok {
				t.Errorf("%s: envFrom names ConfigMap %s, which the base lacks", where, from.ConfigMapRef.Name)
				continue
			}
			found = cm.Data["CONSUL_HTTP_ADDR"] != "" && cm.Data["OTEL_EXPORTER_OTLP_ENDPOINT"] != ""
		}
		if !found {
			t.Errorf("%s: takes CONSUL_HTTP_ADDR and OTEL_EXPORTER_OTLP_ENDPOINT from no ConfigMap", where)
		}
		for _, key := range []string{"CONSUL_HTTP_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
			if envVar(c, key) != nil {
				t.Errorf("%s: sets %s itself instead of taking it from the ConfigMap", where, key)
			}
		}
		// The root file system is read only: the data directory must be
		// a writable volume.
		if dir := envValue(c, "DATA_DIR"); dir != "" {
			if m := volumeMountAt(c, dir); m == nil || m.ReadOnly {
				t.Errorf("%s: DATA_DIR %s is not a writable volume mount", where, dir)
			}
		}
	}
}

// A service that serves gRPC listens for it on the container port named
// grpc, which its Service names too (for port-forward; callers find the
// pods in Consul); its callers state the transport they use; readiness
// stays the HTTP /readyz (TestKubernetesServicesProbeHealthAndAdvertiseThePod).
func TestKubernetesServesGRPCWhereTheCatalogueSays(t *testing.T) {
	o := loadK8s(t)
	for _, spec := range services.All() {
		d, ok := o.deployments[spec.Name]
		if !ok {
			continue // reported by TestKubernetesRunsEveryService
		}
		c := glasshouseContainer(t, d)
		if c == nil {
			continue
		}
		where := "Deployment " + spec.Name
		addr := envValue(c, "GRPC_LISTEN_ADDR")
		if !spec.GRPC {
			if addr != "" || hasPort(c, "grpc") {
				t.Errorf("%s: GRPC_LISTEN_ADDR=%q, port grpc %v; services/catalog.go says %s serves no gRPC", where, addr, hasPort(c, "grpc"), spec.Name)
			}
		} else {
			want := strconv.Itoa(spec.GRPCPort())
			if port := listenPort(t, where, addr); port != want || portNumber(c, "grpc") != want {
				t.Errorf("%s: GRPC_LISTEN_ADDR=%q and container port grpc %q, want both %s (services.Spec.GRPCPort)", where, addr, portNumber(c, "grpc"), want)
			}
			served := false
			if svc, ok := o.services[spec.Name]; ok {
				for _, sp := range svc.Spec.Ports {
					served = served || (sp.Name == "grpc" && sp.TargetPort.String() == "grpc" && strconv.Itoa(int(sp.Port)) == want)
				}
			}
			if !served {
				t.Errorf("Service %s has no port grpc, %s, targeting the container port grpc", spec.Name, want)
			}
		}

		wantTransports := map[string]string{}
		for _, callee := range grpcCalls(spec) {
			wantTransports[transportVar(callee.Name)] = "grpc"
		}
		got := map[string]string{}
		for _, e := range c.Env {
			if strings.HasSuffix(e.Name, "_TRANSPORT") {
				got[e.Name] = e.Value
			}
		}
		if !reflect.DeepEqual(got, wantTransports) {
			t.Errorf("%s: transports %v, want %v", where, got, wantTransports)
		}
	}
}

// portNumber is the number of c's port given by name or number.
func portNumber(c *corev1.Container, port string) string {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return strconv.Itoa(int(p.ContainerPort))
		}
	}
	return ""
}

// volumeMountAt is the mount of c at dir, nil if none.
func volumeMountAt(c *corev1.Container, dir string) *corev1.VolumeMount {
	for i, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == path.Clean(dir) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// secretFile finds the Secret volume that puts file into the container
// under the file's own name as key, and the keys it projects (nil: all of
// them).
func secretFile(d *appsv1.Deployment, c *corev1.Container, file string) (secret string, keys []string, ok bool) {
	m := volumeMountAt(c, path.Dir(file))
	if m == nil {
		return "", nil, false
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name != m.Name || v.Secret == nil {
			continue
		}
		projected := v.Secret.Items == nil
		for _, item := range v.Secret.Items {
			keys = append(keys, item.Key)
			projected = projected || (item.Key == path.Base(file) && item.Path == path.Base(file))
		}
		return v.Secret.SecretName, keys, projected
	}
	return "", nil, false
}

func TestKubernetesTokenKeysComeFromOneSecret(t *testing.T) {
	o := loadK8s(t)
	d, ok := o.deployments["users"]
	if !ok {
		t.Fatal("no Deployment users")
	}
	c := glasshouseContainer(t, d)
	if c == nil {
		t.FailNow()
	}
	private := envValue(c, "JWT_PRIVATE_KEY_FILE")
	secret, keys, ok := secretFile(d, c, private)
	if private == "" || !ok {
		t.Fatalf("users: JWT_PRIVATE_KEY_FILE=%q must be a file of a Secret volume", private)
	}
	// users finds the public key beside the private one, and with a
	// read-only mount it cannot write one there: it needs both.
	if keys != nil && (!slices.Contains(keys, path.Base(private)) || !slices.Contains(keys, path.Base(users.PublicKeyPath(private)))) {
		t.Errorf("users: the Secret volume projects %v; users needs the private and the public key", keys)
	}
	for _, name := range tokenReaders() {
		d, ok := o.deployments[name]
		if !ok {
			continue
		}
		c := glasshouseContainer(t, d)
		if c == nil {
			continue
		}
		public := envValue(c, "JWT_PUBLIC_KEY_FILE")
		if public != users.PublicKeyPath(private) {
			t.Errorf("%s: JWT_PUBLIC_KEY_FILE=%q, want %q, the name users gives the public key", name, public, users.PublicKeyPath(private))
		}
		s, keys, ok := secretFile(d, c, public)
		if !ok || s != secret {
			t.Errorf("%s: %s must come from the Secret %s", name, public, secret)
		}
		// Only what it needs: a service that checks tokens never holds
		// the key that signs them.
		if !reflect.DeepEqual(keys, []string{path.Base(public)}) {
			t.Errorf("%s: the Secret volume projects %v, want only [%s]", name, keys, path.Base(public))
		}
	}
}

func TestKubernetesPodsKeepNothingOnAVolume(t *testing.T) {
	o := loadK8s(t)
	for name, d := range o.deployments {
		pod := d.Spec.Template.Spec
		for _, v := range pod.Volumes {
			// A claim, or a directory of the node, would tie a pod to its
			// data: the data belongs in the service's database.
			if v.PersistentVolumeClaim != nil || v.HostPath != nil || v.Ephemeral != nil {
				t.Errorf("Deployment %s mounts volume %s, a claim or a node's disk: its pods must keep nothing that outlives them", name, v.Name)
			}
		}
		// Nothing ties the replicas to one node any more.
		if a := pod.Affinity; a != nil && a.PodAffinity != nil && len(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 {
			t.Errorf("Deployment %s requires its pods next to others (podAffinity); replicas on PostgreSQL can run on any node", name)
		}
	}
}

func TestKubernetesEachStoreHasItsOwnDatabaseCluster(t *testing.T) {
	o := loadK8s(t)
	// Which Deployments read each Secret's DATABASE_URL.
	readers := map[string][]string{}
	for _, spec := range services.All() {
		d, ok := o.deployments[spec.Name]
		if !ok {
			continue // reported by TestKubernetesRunsEveryService
		}
		c := glasshouseContainer(t, d)
		if c == nil {
			continue
		}
		url := envVar(c, "DATABASE_URL")
		if spec.Store == "" {
			if url != nil {
				t.Errorf("Deployment %s has no store, but sets DATABASE_URL", spec.Name)
			}
			continue
		}
		if dir := envValue(c, "DATA_DIR"); dir != "" {
			t.Errorf("Deployment %s: DATA_DIR=%s; its store is its PostgreSQL cluster", spec.Name, dir)
		}
		// The cluster that initialises the service's database, owned by
		// the service's role.
		var cluster *cnpgCluster
		for _, cl := range o.clusters {
			if cl.Spec.Bootstrap.InitDB.Database == spec.Name {
				if cluster != nil {
					t.Errorf("Clusters %s and %s both create database %s", cluster.Name, cl.Name, spec.Name)
				}
				cluster = cl
			}
		}
		if cluster == nil {
			t.Errorf("%s has a store, but no CloudNativePG Cluster creates its database %s", spec.Name, spec.Name)
			continue
		}
		if cluster.Spec.Bootstrap.InitDB.Owner != spec.Name {
			t.Errorf("Cluster %s: database %s is owned by %q, want the service's own role %s", cluster.Name, spec.Name, cluster.Spec.Bootstrap.InitDB.Owner, spec.Name)
		}
		if cluster.Spec.Instances < 1 {
			t.Errorf("Cluster %s: %d instances", cluster.Name, cluster.Spec.Instances)
		}
		checkPinned(t, "Cluster "+cluster.Name, cluster.Spec.ImageName)
		// CloudNativePG writes the owner's connection URL into the
		// Secret <cluster>-app, key uri: the Deployment must take
		// DATABASE_URL from there, not from a literal or another Secret.
		want := cluster.Name + "-app"
		if url == nil || url.ValueFrom == nil || url.ValueFrom.SecretKeyRef == nil ||
			url.ValueFrom.SecretKeyRef.Name != want || url.ValueFrom.SecretKeyRef.Key != "uri" {
			t.Errorf("Deployment %s: DATABASE_URL must come from secretKeyRef %s, key uri, which CloudNativePG writes", spec.Name, want)
		}
		if url != nil && url.ValueFrom != nil && url.ValueFrom.SecretKeyRef != nil {
			readers[url.ValueFrom.SecretKeyRef.Name] = append(readers[url.ValueFrom.SecretKeyRef.Name], spec.Name)
		}
	}
	for secret, names := range readers {
		if len(names) > 1 {
			t.Errorf("%v all read DATABASE_URL from %s: each service has a database of its own", names, secret)
		}
	}
	for name, cl := range o.clusters {
		if spec, ok := services.Lookup(cl.Spec.Bootstrap.InitDB.Database); !ok || spec.Store == "" {
			t.Errorf("Cluster %s creates database %q, which no service with a store owns", name, cl.Spec.Bootstrap.InitDB.Database)
		}
	}
}

func TestKubernetesPlatformAddressesNameItsServices(t *testing.T) {
	o := loadK8s(t)
	cm, ok := o.configMaps["glasshouse"]
	if !ok {
		t.Fatal("no ConfigMap glasshouse")
	}
	for _, key := range []string{"CONSUL_HTTP_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT", "NATS_URL"} {
		addr := cm.Data[key]
		host, port := hostOf(addr), ""
		if u, err := url.Parse(addr); err == nil && u.Port() != "" {
			port = u.Port()
		} else {
			_, port, _ = net.SplitHostPort(addr)
		}
		svc, ok := o.services[host]
		if !ok {
			t.Errorf("%s=%q: the base has no Service %q", key, addr, host)
			continue
		}
		served := false
		for _, p := range svc.Spec.Ports {
			served = served || strconv.Itoa(int(p.Port)) == port
		}
		if !served {
			t.Errorf("%s=%q: Service %s has no port %s", key, addr, host, port)
		}
	}
}

func TestKubernetesJaegerConfigIsTheLocalStacks(t *testing.T) {
	o := loadK8s(t)
	cm, ok := o.configMaps["jaeger"]
	if !ok {
		t.Fatal("no ConfigMap jaeger")
	}
	local, err := os.ReadFile(filepath.Join("jaeger", "local.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := yaml.Unmarshal(local, &want); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ConfigMap jaeger's config.yaml differs from deploy/jaeger/local.yaml; keep them the same\n got: %v\nwant: %v", got, want)
	}
}
