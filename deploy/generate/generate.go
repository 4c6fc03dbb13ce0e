// Package generate writes the deployment files that list the platform's
// services from the one list of them, services.All: docker-compose.yml,
// the Dockerfile, the Kubernetes manifests of each service with the
// kustomization and network policies that name them, and the
// Prometheus rules that know how many instances each service runs.
//
// Each file is a text/template in deploy/templates, which holds
// everything that is not in the catalogue (comments included), so the
// generated file reads as if written by hand. deploy/cmd/gen writes the
// files (`make generate`); the drift tests in deploy/ compare the
// checked-in files with Files.
package generate

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/glasshouse-dev/glasshouse/services"
)

// Command is how to run the generator, named in every file it writes.
const Command = "make generate"

// File is one generated file.
type File struct {
	// Path is relative to the repository root, with slashes.
	Path string
	// Template is the template it comes from, relative to the root.
	Template string
	Content  []byte
}

// output is one file to write from one template; Service is set for the
// per-service manifests.
type output struct {
	path, template string
	service        *services.Spec
}

// infraMiB are the compose memory limits of the containers that run no
// service of ours; the compose header adds them up with the services'.
// jwt-keys is the one-shot job that writes the token key pair. nats holds
// 15 MiB when idle with JetStream on; its 48 came out of Prometheus' 256,
// which held 100 after a minute of load in the local stack. The 96 that
// recommendations' two instances take came out of consul (160), grafana
// (192) and load (96), 32 each (see docs/events.md for what was measured).
func infraMiB() map[string]int {
	return map[string]int{"consul": 128, "nats": 48, "jaeger": 384, "prometheus": 224, "grafana": 160, "postgres": 192, "jwt-keys": 32, "load": 64}
}

// The connection budget of compose's one PostgreSQL server: each
// instance of a service with a store opens at most composeMaxConns
// connections (DATABASE_MAX_CONNS), and all of them together must stay
// under the server's max_connections, less the 3 it reserves for
// superusers (superuser_reserved_connections).
const (
	composeMaxConns   = 5
	postgresMaxConns  = 60
	superuserReserved = 3
)

// outputs lists every generated file.
func outputs(all []services.Spec) []output {
	outs := []output{
		{path: "docker-compose.yml", template: "compose.yml.tmpl"},
		{path: "deploy/postgres/init.sh", template: "postgres-init.sh.tmpl"},
		{path: "Dockerfile", template: "Dockerfile.tmpl"},
		{path: "deploy/k8s/kustomization.yaml", template: "k8s-kustomization.yaml.tmpl"},
		{path: "deploy/k8s/networkpolicy.yaml", template: "k8s-networkpolicy.yaml.tmpl"},
		{path: "deploy/prometheus/resilience.rules.yml", template: "resilience.rules.yml.tmpl"},
	}
	for i := range all {
		outs = append(outs, output{path: "deploy/k8s/" + all[i].Name + ".yaml", template: "k8s-service.yaml.tmpl", service: &all[i]})
	}
	return outs
}

// data is what every template sees.
type data struct {
	// Services are the catalogue, in start order.
	Services []services.Spec
	// Service is the one a per-service template renders.
	Service services.Spec
	// Signer is the service that signs tokens; Public the entry point.
	Signer, Public services.Spec
	// Infra are the memory limits, in MiB, of the other containers.
	Infra map[string]int
}

// Files renders every generated file from the templates under
// root/deploy/templates and the catalogue, services.All.
func Files(root string) ([]File, error) { return Render(root, services.All()) }

// Render renders every generated file for the services all, in start
// order: the files as they would be with another catalogue (a test adds
// a service with it).
func Render(root string, all []services.Spec) ([]File, error) {
	d := data{Services: all, Infra: infraMiB()}
	for _, s := range all {
		if s.Tokens == services.SignsTokens {
			d.Signer = s
		}
		if s.Public {
			d.Public = s
		}
	}
	if d.Signer.Name == "" || d.Public.Name == "" {
		return nil, fmt.Errorf("the catalogue needs a service that signs tokens and a public one")
	}
	var files []File
	for _, o := range outputs(all) {
		tmplPath := path.Join("deploy", "templates", o.template)
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(tmplPath)))
		if err != nil {
			return nil, err
		}
		t := template.New(o.template).Funcs(funcs(all, tmplPath)).Option("missingkey=error")
		if strings.HasSuffix(o.template, ".rules.yml.tmpl") {
			// Prometheus rules use {{ }} in their own annotation templates.
			t.Delims("[[", "]]")
		}
		t, err = t.Parse(string(src))
		if err != nil {
			return nil, err
		}
		d := d
		if o.service != nil {
			d.Service = *o.service
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, d); err != nil {
			return nil, err
		}
		files = append(files, File{Path: o.path, Template: tmplPath, Content: buf.Bytes()})
	}
	return files, nil
}

// IsGenerated tells whether content starts, or starts after a Dockerfile's
// syntax line, with the header that the generator writes.
func IsGenerated(content []byte) bool {
	s := string(content)
	if strings.HasPrefix(s, "# syntax=") {
		_, s, _ = strings.Cut(s, "\n")
	}
	first, _, _ := strings.Cut(s, "\n")
	return strings.HasPrefix(first, "# Code generated ") && strings.HasSuffix(first, " DO NOT EDIT.")
}

func funcs(all []services.Spec, tmplPath string) template.FuncMap {
	return template.FuncMap{
		// header is the first comment of every generated file.
		"header": func() string {
			return "# Code generated by deploy/cmd/gen from services/catalog.go and " + tmplPath + ". DO NOT EDIT.\n" +
				"# Change those and run `" + Command + "`."
		},
		"comment": comment,
		// para joins the sentences given, skipping a false one (from
		// `and cond "sentence"`), into one paragraph.
		"para": func(sentences ...any) string {
			var parts []string
			for _, s := range sentences {
				if s, ok := s.(string); ok && s != "" {
					parts = append(parts, s)
				}
			}
			return strings.Join(parts, " ")
		},
		"number": func(n int) string {
			if words := []string{"Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"}; n < len(words) {
				return words[n]
			}
			return fmt.Sprint(n)
		},
		"list":      list,
		"instances": instances,
		"signs":     func(s services.Spec) bool { return s.Tokens == services.SignsTokens },
		"checks":    func(s services.Spec) bool { return s.Tokens == services.ChecksTokens },
		// calledBy lists the services that call name, in start order.
		"calledBy": func(name string) []string {
			var callers []string
			for _, s := range all {
				if slices.Contains(s.Calls, name) {
					callers = append(callers, s.Name)
				}
			}
			return callers
		},
		"adminOffset": func() int { return services.AdminOffset },
		// grpcServices lists the services that serve gRPC too, in start
		// order.
		"grpcServices": func() []services.Spec {
			var out []services.Spec
			for _, s := range all {
				if s.GRPC {
					out = append(out, s)
				}
			}
			return out
		},
		// grpcCalls lists the services s calls over gRPC, in the order of
		// its Calls.
		"grpcCalls": func(s services.Spec) []string {
			var names []string
			for _, c := range s.Calls {
				if callee, ok := lookup(all, c); ok && callsOverGRPC(s, callee) {
					names = append(names, c)
				}
			}
			return names
		},
		// grpcCallers lists the services that call name over gRPC, in
		// start order.
		"grpcCallers": func(name string) []string {
			var callers []string
			callee, _ := lookup(all, name)
			for _, s := range all {
				if slices.Contains(s.Calls, name) && callsOverGRPC(s, callee) {
					callers = append(callers, s.Name)
				}
			}
			return callers
		},
		"transportVar": transportVar,
		"grpcNames": func(specs []services.Spec) []string {
			var names []string
			for _, s := range specs {
				names = append(names, s.Name)
			}
			return names
		},
		"grpcConsulNames": func(specs []services.Spec) []string {
			var names []string
			for _, s := range specs {
				names = append(names, s.GRPCName())
			}
			return names
		},
		// grpcPorts says where each service's gRPC listener is:
		// "inventory 7082, payments 7084".
		"grpcPorts": func(specs []services.Spec) string {
			var parts []string
			for _, s := range specs {
				parts = append(parts, fmt.Sprintf("%s %d", s.Name, s.GRPCPort()))
			}
			return strings.Join(parts, ", ")
		},
		// grpcClients lists the services that call any other over gRPC.
		"grpcClients": func() []string {
			var names []string
			for _, s := range all {
				if slices.ContainsFunc(s.Calls, func(c string) bool { callee, _ := lookup(all, c); return callsOverGRPC(s, callee) }) {
					names = append(names, s.Name)
				}
			}
			return names
		},
		// grpcTransportVars are the variables that the gRPC clients set,
		// in start order: "INVENTORY_TRANSPORT", "PAYMENTS_TRANSPORT".
		"grpcTransportVars": func() []string {
			var vars []string
			for _, s := range all {
				for _, c := range s.Calls {
					if callee, _ := lookup(all, c); callsOverGRPC(s, callee) && !slices.Contains(vars, transportVar(c)) {
						vars = append(vars, transportVar(c))
					}
				}
			}
			return vars
		},
		// grpcOffset is how far below the public port the gRPC one is.
		"grpcOffset": func() int { return -services.GRPCOffset },
		// stores lists the services that own a database, in start order.
		"stores": func() []services.Spec {
			var out []services.Spec
			for _, s := range all {
				if s.Store != "" {
					out = append(out, s)
				}
			}
			return out
		},
		// cluster names a service's CloudNativePG Cluster: "orders-db".
		"cluster": func(s services.Spec) string { return s.Name + "-db" },
		// passwordVar is the compose variable of a service's database
		// password: "ORDERS_DB_PASSWORD".
		"passwordVar":      passwordVar,
		"composeMaxConns":  func() int { return composeMaxConns },
		"postgresMaxConns": func() int { return postgresMaxConns },
		// connsAtMost is what every instance's pool may open together.
		"connsAtMost": func() int {
			n := 0
			for _, s := range all {
				if s.Store != "" {
					n += s.DeployReplicas * composeMaxConns
				}
			}
			return n
		},
		"superuserReserved": func() int { return superuserReserved },
		"add":               func(a, b int) int { return a + b },
		// gomemlimit applies the services' GOMEMLIMIT rule to another
		// container's limit.
		"gomemlimit": func(mib int) int { return services.Spec{MemoryMiB: mib}.GoMemLimitMiB() },
		"names": func() []string {
			var names []string
			for _, s := range all {
				names = append(names, s.Name)
			}
			return names
		},
		"checkers": func() []string {
			var names []string
			for _, s := range all {
				if s.Tokens == services.ChecksTokens {
					names = append(names, s.Name)
				}
			}
			return names
		},
		// replicated says which services compose and Kubernetes run more
		// than once: "users, inventory and payments twice".
		"replicated": func() string {
			byCount := map[int][]string{}
			var counts []int
			for _, s := range all {
				if s.DeployReplicas > 1 {
					if byCount[s.DeployReplicas] == nil {
						counts = append(counts, s.DeployReplicas)
					}
					byCount[s.DeployReplicas] = append(byCount[s.DeployReplicas], s.Name)
				}
			}
			var parts []string
			for _, n := range counts {
				times := fmt.Sprintf("%d times", n)
				if n == 2 {
					times = "twice"
				}
				parts = append(parts, list(byCount[n])+" "+times)
			}
			return strings.Join(parts, ", ")
		},
		// memoryTotal is what compose's containers may use together,
		// without the load profile.
		"memoryTotal": func() int {
			total := 0
			for name, mib := range infraMiB() {
				if name != "load" {
					total += mib
				}
			}
			for _, s := range all {
				total += s.DeployReplicas * s.MemoryMiB
			}
			return total
		},
		// portRange is the services' public ports, "8080-8084".
		"portRange": func() string {
			byPort := sortedByPort(all)
			return fmt.Sprintf("%d-%d", byPort[0].Port, byPort[len(byPort)-1].Port)
		},
		"ports": func(admin bool) string {
			var ports []string
			for _, s := range sortedByPort(all) {
				p := s.Port
				if admin {
					p = s.AdminPort()
				}
				ports = append(ports, fmt.Sprint(p))
			}
			return strings.Join(ports, " ")
		},
		"join": strings.Join,
		// publicPorts lists each service's public port in port order:
		// "gateway 8080, users 8081, ...".
		"publicPorts": func() string {
			var parts []string
			for _, s := range sortedByPort(all) {
				parts = append(parts, fmt.Sprintf("%s %d", s.Name, s.Port))
			}
			return strings.Join(parts, ", ")
		},
		"adminPortRange": func() string {
			byPort := sortedByPort(all)
			return fmt.Sprintf("%d-%d", byPort[0].AdminPort(), byPort[len(byPort)-1].AdminPort())
		},
	}
}

// callsOverGRPC tells whether caller calls callee over gRPC, as the
// catalogue's GRPCCalls say: orders calls inventory and payments so, and
// the gateway calls recommendations so but forwards the public HTTP/JSON
// API of the others as it is, over HTTP. The variable transportVar names
// picks the transport; the templates set it.
func callsOverGRPC(caller, callee services.Spec) bool {
	return callee.GRPC && slices.Contains(caller.GRPCCalls, callee.Name)
}

// transportVar is the variable that picks the transport a caller uses
// for the service called name: "INVENTORY_TRANSPORT" (grpc or http).
func transportVar(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_TRANSPORT"
}

// lookup returns the service called name in all.
func lookup(all []services.Spec, name string) (services.Spec, bool) {
	i := slices.IndexFunc(all, func(s services.Spec) bool { return s.Name == name })
	if i < 0 {
		return services.Spec{}, false
	}
	return all[i], true
}

// sortedByPort returns the services in the order of their ports.
func sortedByPort(all []services.Spec) []services.Spec {
	return slices.SortedFunc(slices.Values(all), func(a, b services.Spec) int { return cmp.Compare(a.Port, b.Port) })
}

// passwordVar is the compose variable that holds s's database password.
func passwordVar(s services.Spec) string {
	return strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_")) + "_DB_PASSWORD"
}

// instances names a service's instances in compose: the service's own
// name when it runs once, name-1, name-2, ... when it runs more often.
func instances(s services.Spec) []string {
	if s.DeployReplicas <= 1 {
		return []string{s.Name}
	}
	names := make([]string, s.DeployReplicas)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", s.Name, i+1)
	}
	return names
}

// list joins names as prose: "a", "a and b", "a, b and c".
func list(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// comment wraps text into YAML comment lines of at most 74 columns, each
// starting with indent and "# ".
func comment(indent, text string) string {
	const width = 74
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(indent)+2+len(line)+1+len(w) > width {
			lines = append(lines, indent+"# "+line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, indent+"# "+line)
	}
	return strings.Join(lines, "\n")
}

// ModuleRoot is the nearest directory at or above the working directory
// that holds go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the glasshouse module (no go.mod above the working directory)")
		}
		dir = parent
	}
}
