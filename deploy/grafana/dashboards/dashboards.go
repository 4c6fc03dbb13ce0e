// Package dashboards is the source of truth for glasshouse's Grafana
// dashboards. Each dashboard is Go code here; `go generate` writes it as
// the JSON beside this file, which Grafana provisions from this directory
// (deploy/grafana/provisioning/dashboards). The JSON is checked in so that
// Grafana needs no Go, and a test fails when it drifts from the code.
//
// The dashboards read Prometheus, mostly through the recording rules in
// deploy/prometheus/red.rules.yml and slo.rules.yml, so a panel and an
// alert on the same signal always agree. Panels that link to traces query
// the raw histogram instead: only raw series carry exemplars.
//
// Every panel query is run against a live Prometheus, with the platform
// under load, by e2e/dashboards_test.go: a panel that shows "No data" is a
// failing test, not a surprise in an incident.
package dashboards

//go:generate go run ./cmd/gen

import (
	"bytes"
	"encoding/json"
)

// File is one dashboard and the name of its JSON file.
type File struct {
	Name      string
	Dashboard Dashboard
}

// All returns every dashboard, in the order a newcomer would open them.
func All() []File {
	return []File{
		{"overview.json", Overview()},
		{"service.json", Service()},
		{"resilience.json", Resilience()},
		{"checkout.json", Checkout()},
	}
}

// JSON renders a dashboard as its checked-in file: indented, keys in a
// fixed order, a final newline, and no HTML escaping, so that "->" and
// "<" in PromQL read as written.
func (d Dashboard) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
