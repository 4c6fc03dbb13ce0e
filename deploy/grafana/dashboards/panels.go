package dashboards

import "fmt"

// The data sources' fixed UIDs, as provisioned in
// deploy/grafana/provisioning/datasources: dashboards refer to data sources
// by UID, so the UIDs must not be left for Grafana to invent.
const (
	PrometheusUID = "prometheus"
	JaegerUID     = "jaeger"
)

// Tag marks every glasshouse dashboard; the header links list them by it.
const Tag = "glasshouse"

// schemaVersion is the dashboard schema these files are written in, that
// of Grafana 11.0. Grafana migrates older schemas forward when it loads
// them, so an older version keeps the files loadable by every Grafana
// from 11.0 on.
const schemaVersion = 39

func prometheusSource() DatasourceRef { return DatasourceRef{Type: "prometheus", UID: PrometheusUID} }

// A query is one PromQL expression of a panel and the name of its series:
// a legend template such as "{{job}}", filled in from each series' labels.
type query struct {
	expr, legend string
	exemplars    bool
}

func q(expr, legend string) query { return query{expr: expr, legend: legend} }

// withExemplars also fetches the exemplars of a histogram query: trace IDs
// that Grafana links to Jaeger (exemplarTraceIdDestinations in the
// Prometheus data source). Only raw histogram series carry them; a
// recording rule's output never does.
func (q query) withExemplars() query {
	q.exemplars = true
	return q
}

// targets turns queries into a panel's targets, lettered A, B, C...
func targets(format string, instant bool, queries []query) []Target {
	out := make([]Target, len(queries))
	for i, q := range queries {
		out[i] = Target{
			RefID:        string(rune('A' + i)),
			Datasource:   prometheusSource(),
			Expr:         q.expr,
			LegendFormat: q.legend,
			Format:       format,
			Instant:      instant,
			Range:        !instant,
			Exemplar:     q.exemplars,
		}
	}
	return out
}

// Default panel size: half the grid's width, 8 rows high.
const (
	defaultWidth  = 12
	defaultHeight = 8
)

func panel(kind, title, unit string, t []Target) Panel {
	ds := prometheusSource()
	return Panel{
		Type: kind, Title: title, Datasource: &ds, Targets: t,
		GridPos:     GridPos{W: defaultWidth, H: defaultHeight},
		FieldConfig: &FieldConfig{Defaults: FieldDefaults{Unit: unit}, Overrides: []any{}},
	}
}

// timeSeries plots queries over time, one line per series.
func timeSeries(title, unit string, queries ...query) Panel {
	p := panel("timeseries", title, unit, targets("time_series", false, queries))
	p.FieldConfig.Defaults.Color = &FieldColor{Mode: "palette-classic"}
	p.FieldConfig.Defaults.Custom = map[string]any{
		"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
		"spanNulls": false, "thresholdsStyle": map[string]any{"mode": "off"},
	}
	p.Options = map[string]any{
		"legend":  map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": []string{}},
		"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
	}
	return p
}

// stat shows the latest value of each series as a number.
func stat(title, unit string, queries ...query) Panel {
	p := panel("stat", title, unit, targets("time_series", true, queries))
	p.GridPos.H = 5
	p.FieldConfig.Defaults.Color = &FieldColor{Mode: "thresholds"}
	p.FieldConfig.Defaults.Thresholds = &Thresholds{Mode: "absolute", Steps: []Step{base("blue")}}
	p.Options = map[string]any{
		"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
		"colorMode":     "background", "graphMode": "none", "textMode": "value_and_name",
		"orientation": "auto", "justifyMode": "auto",
	}
	return p
}

// heatmap shows a histogram's buckets over time. The query must return one
// series per bucket, by le, as rate(..._bucket) summed by le does.
func heatmap(title, unit string, q query) Panel {
	q.legend = "{{le}}"
	p := panel("heatmap", title, "", targets("heatmap", false, []query{q}))
	p.Options = map[string]any{
		// The buckets are already counted by the application; Grafana
		// must not bucket them again.
		"calculate": false,
		"yAxis":     map[string]any{"unit": unit, "axisPlacement": "left"},
		"rowsFrame": map[string]any{"layout": "auto"},
		"color": map[string]any{
			"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5, "fill": "dark-orange", "reverse": false,
		},
		"cellGap":      1,
		"filterValues": map[string]any{"le": 1e-9},
		"showValue":    "never",
		"legend":       map[string]any{"show": true},
		"tooltip":      map[string]any{"mode": "single", "yHistogram": false, "showColorScale": false},
		"exemplars":    map[string]any{"color": "rgba(255,0,255,0.7)"},
	}
	return p
}

// stateTimeline shows a gauge of discrete states as coloured bands, one
// per series, named by states (value → name and colour).
func stateTimeline(title string, q query, states map[string]MappedValue) Panel {
	p := panel("state-timeline", title, "", targets("time_series", false, []query{q}))
	p.FieldConfig.Defaults.Color = &FieldColor{Mode: "thresholds"}
	p.FieldConfig.Defaults.Thresholds = &Thresholds{Mode: "absolute", Steps: []Step{base("green")}}
	p.FieldConfig.Defaults.Mappings = []ValueMapping{{Type: "value", Options: states}}
	p.Options = map[string]any{
		"mergeValues": true, "showValue": "never", "alignValue": "left", "rowHeight": 0.9,
		"legend":  map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true},
		"tooltip": map[string]any{"mode": "single", "sort": "none"},
	}
	return p
}

// table lists the latest value of each series with its labels as columns;
// hide names columns not worth showing, rename gives others a header.
func table(title string, q query, hide []string, rename map[string]string) Panel {
	p := panel("table", title, "", targets("table", true, []query{q}))
	excluded := map[string]bool{}
	for _, h := range hide {
		excluded[h] = true
	}
	p.Transformations = []Transformation{{ID: "organize", Options: map[string]any{
		"excludeByName": excluded, "renameByName": rename,
	}}}
	p.Options = map[string]any{"showHeader": true, "cellHeight": "sm"}
	return p
}

// size sets a panel's width (of 24 columns) and height.
func (p Panel) size(w, h int) Panel {
	p.GridPos.W, p.GridPos.H = w, h
	return p
}

// describe sets the text behind the panel's (i) icon: what the panel
// shows and how to read it.
func (p Panel) describe(text string) Panel {
	p.Description = text
	return p
}

// atLeastZero pins the y axis at 0, so a small wobble does not look like
// a cliff.
func (p Panel) atLeastZero() Panel {
	zero := 0.0
	p.FieldConfig.Defaults.Min = &zero
	return p
}

// thresholds colours values by the steps they reach; a time series also
// draws them as dashed lines (an alert's threshold, an SLO's target).
func (p Panel) thresholds(steps ...Step) Panel {
	p.FieldConfig.Defaults.Thresholds = &Thresholds{Mode: "absolute", Steps: steps}
	if p.Type == "timeseries" {
		p.FieldConfig.Defaults.Custom["thresholdsStyle"] = map[string]any{"mode": "dashed"}
	}
	return p
}

// bars draws a time series as bars: for counts of rare events, which a
// line would smear between samples.
func (p Panel) bars() Panel {
	p.FieldConfig.Defaults.Custom["drawStyle"] = "bars"
	p.FieldConfig.Defaults.Custom["fillOpacity"] = 80
	return p
}

// linkTo makes every series a link, e.g. to a dashboard for its service;
// the URL may use ${__field.labels.NAME} and ${__url_time_range}.
func (p Panel) linkTo(title, url string) Panel {
	p.FieldConfig.Defaults.Links = append(p.FieldConfig.Defaults.Links, DataLink{Title: title, URL: url})
	return p
}

func base(color string) Step { return Step{Color: color} }

func step(color string, value float64) Step { return Step{Color: color, Value: &value} }

// A row is a titled group of panels, laid out left to right.
type row struct {
	title  string
	panels []Panel
}

func newRow(title string, panels ...Panel) row { return row{title: title, panels: panels} }

// variable is a query variable over a label's values in Prometheus.
func variable(name, label, selector, labelName string) Variable {
	query := fmt.Sprintf("label_values(%s, %s)", selector, labelName)
	return Variable{
		Type: "query", Name: name, Label: label, Datasource: prometheusSource(),
		Query: query, Definition: query, Refresh: 2, Sort: 1,
	}
}

// newDashboard assembles a dashboard from rows: it sets what every
// glasshouse dashboard shares, places the panels on the grid (each row
// starts a new line; panels fill it left to right and wrap at 24
// columns) and numbers them, as Grafana needs a unique ID per panel.
func newDashboard(uid, title, description string, vars []Variable, rows ...row) Dashboard {
	d := Dashboard{
		UID: uid, Title: title, Description: description,
		Tags: []string{Tag}, Timezone: "browser", Editable: true, GraphTooltip: 1,
		// 30 minutes of 1m rates at a 10 s refresh: the recent past of a
		// demo or an incident, live.
		Time: TimeRange{From: "now-30m", To: "now"}, Refresh: "10s",
		SchemaVersion: schemaVersion,
		Links: []Link{{
			Title: "glasshouse dashboards", Type: "dashboards", Tags: []string{Tag},
			AsDropdown: true, KeepTime: true, IncludeVars: false,
		}},
		Templating: Templating{List: vars},
	}
	if d.Templating.List == nil {
		d.Templating.List = []Variable{}
	}
	id, y := 0, 0
	for _, r := range rows {
		id++
		expanded := false
		d.Panels = append(d.Panels, Panel{
			ID: id, Type: "row", Title: r.title, Collapsed: &expanded,
			GridPos: GridPos{H: 1, W: 24, X: 0, Y: y},
		})
		y++
		x, lineHeight := 0, 0
		for _, p := range r.panels {
			if x+p.GridPos.W > 24 {
				x, y, lineHeight = 0, y+lineHeight, 0
			}
			id++
			p.ID = id
			p.GridPos.X, p.GridPos.Y = x, y
			x += p.GridPos.W
			lineHeight = max(lineHeight, p.GridPos.H)
			d.Panels = append(d.Panels, p)
		}
		y += lineHeight
	}
	return d
}
