package chaos

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metrics is one scrape of an instance's /metrics: the samples of every
// gauge, counter and untyped metric, by name. The runner reads the
// instances directly rather than through Prometheus: its scrape interval
// (5s) is coarser than the seconds an experiment measures, and a probe
// every 200ms tells when a breaker opened to within a fifth of a second.
type metrics map[string][]sample

type sample struct {
	labels map[string]string
	value  float64
}

// scrape reads the metrics of the instance serving on addr.
func scrape(ctx context.Context, client *http.Client, addr string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", addr, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s/metrics: %w", addr, err)
	}
	m := metrics{}
	for name, f := range families {
		for _, s := range f.GetMetric() {
			var v float64
			switch {
			case s.Gauge != nil:
				v = s.GetGauge().GetValue()
			case s.Counter != nil:
				v = s.GetCounter().GetValue()
			case s.Untyped != nil:
				v = s.GetUntyped().GetValue()
			default:
				continue // histograms and summaries: not needed here
			}
			labels := make(map[string]string, len(s.GetLabel()))
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			m[name] = append(m[name], sample{labels: labels, value: v})
		}
	}
	return m, nil
}

// each calls fn with the labels and value of every sample of name.
func (m metrics) each(name string, fn func(labels map[string]string, v float64)) {
	for _, s := range m[name] {
		fn(s.labels, s.value)
	}
}

// sum adds up the samples of name whose labels include every one in
// match, and reports whether there was any.
func (m metrics) sum(name string, match map[string]string) (float64, bool) {
	total, found := 0.0, false
	m.each(name, func(labels map[string]string, v float64) {
		for k, want := range match {
			if labels[k] != want {
				return
			}
		}
		total, found = total+v, true
	})
	return total, found
}
