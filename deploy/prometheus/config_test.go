package prometheus

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/glasshouse-dev/glasshouse/services"
)

// relabelConfig is the part of a relabelling these tests read.
type relabelConfig struct {
	SourceLabels []string `json:"source_labels"`
	Regex        string   `json:"regex"`
	Action       string   `json:"action"`
}

// The gRPC listeners register in Consul as services of their own
// (services.Spec.GRPCName), which serve no /metrics: Prometheus must
// scrape none of them, by the tag filter and, should a registration ever
// carry the tag, by an explicit drop of their names, which keeps every
// service's own name. promtool checks the file is valid; this checks it
// means that.
func TestScrapesNoGRPCRegistration(t *testing.T) {
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName         string `json:"job_name"`
			ConsulSDConfigs []struct {
				Tags []string `json:"tags"`
			} `json:"consul_sd_configs"`
			RelabelConfigs []relabelConfig `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sc := range cfg.ScrapeConfigs {
		if len(sc.ConsulSDConfigs) == 0 {
			continue
		}
		found = true
		for _, sd := range sc.ConsulSDConfigs {
			if !slices.Contains(sd.Tags, "glasshouse") {
				t.Errorf("job %s: Consul discovery with tags %v, not filtered to the tag glasshouse", sc.JobName, sd.Tags)
			}
		}
		// The first relabelling that drops by the Consul service name:
		// Prometheus anchors its regex at both ends.
		i := slices.IndexFunc(sc.RelabelConfigs, func(r relabelConfig) bool {
			return r.Action == "drop" && slices.Equal(r.SourceLabels, []string{"__meta_consul_service"})
		})
		if i < 0 {
			t.Errorf("job %s: no relabelling drops by __meta_consul_service, so a -grpc registration tagged glasshouse would be scraped", sc.JobName)
			continue
		}
		drop := regexp.MustCompile("^(?:" + sc.RelabelConfigs[i].Regex + ")$")
		for _, s := range services.All() {
			if drop.MatchString(s.Name) {
				t.Errorf("job %s drops the Consul service %s, one of the platform's own", sc.JobName, s.Name)
			}
			if s.GRPC && !drop.MatchString(s.GRPCName()) {
				t.Errorf("job %s keeps the Consul service %s, a gRPC listener", sc.JobName, s.GRPCName())
			}
		}
	}
	if !found {
		t.Error("prometheus.yml has no Consul-discovered scrape job")
	}
}
