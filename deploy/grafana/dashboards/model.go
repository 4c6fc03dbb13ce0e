package dashboards

// The subset of Grafana's dashboard JSON model these dashboards use
// (https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/).
// Plain structs rather than a builder library: the JSON a reviewer reads
// in a diff maps field by field onto this file, and nothing is filled in
// behind the generator's back.

// Dashboard is one dashboard, as Grafana's file provisioning reads it.
type Dashboard struct {
	UID         string   `json:"uid"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	// Timezone "browser" shows times in the viewer's zone.
	Timezone string `json:"timezone"`
	// Editable lets people explore in the UI; provisioning still owns the
	// dashboard, and a saved change is refused (allowUiUpdates: false).
	Editable bool `json:"editable"`
	// GraphTooltip 1 shares the crosshair across panels, so a spike in one
	// lines up with the others.
	GraphTooltip  int        `json:"graphTooltip"`
	Time          TimeRange  `json:"time"`
	Refresh       string     `json:"refresh"`
	SchemaVersion int        `json:"schemaVersion"`
	Links         []Link     `json:"links"`
	Templating    Templating `json:"templating"`
	Panels        []Panel    `json:"panels"`
}

// TimeRange is the default time range, in Grafana's relative syntax.
type TimeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Link is a link in the dashboard's header.
type Link struct {
	Title       string   `json:"title"`
	Type        string   `json:"type"` // "dashboards": every dashboard with Tags
	Tags        []string `json:"tags"`
	AsDropdown  bool     `json:"asDropdown"`
	KeepTime    bool     `json:"keepTime"`
	IncludeVars bool     `json:"includeVars"`
}

// Templating holds the dashboard's variables.
type Templating struct {
	List []Variable `json:"list"`
}

// Variable is a query variable: its values are a label's values in
// Prometheus, and panels refer to the chosen one as $Name.
type Variable struct {
	Type       string        `json:"type"` // "query"
	Name       string        `json:"name"`
	Label      string        `json:"label"`
	Datasource DatasourceRef `json:"datasource"`
	// Query is label_values(selector, label); Definition shows it in the
	// variable editor.
	Query      string `json:"query"`
	Definition string `json:"definition"`
	// Refresh 2 reloads the values when the time range changes, so a new
	// service or endpoint appears without reloading the dashboard.
	Refresh int `json:"refresh"`
	// Sort 1 is alphabetical, ascending.
	Sort       int  `json:"sort"`
	Multi      bool `json:"multi"`
	IncludeAll bool `json:"includeAll"`
}

// DatasourceRef names a provisioned data source by its fixed UID.
type DatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Panel is a visualisation, or a row heading (Type "row") that groups the
// panels below it.
type Panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	GridPos     GridPos        `json:"gridPos"`
	Datasource  *DatasourceRef `json:"datasource,omitempty"`
	Targets     []Target       `json:"targets,omitempty"`
	FieldConfig *FieldConfig   `json:"fieldConfig,omitempty"`
	Options     map[string]any `json:"options,omitempty"`
	// Transformations reshape query results before display (tables).
	Transformations []Transformation `json:"transformations,omitempty"`
	// Collapsed and Panels belong to rows: an expanded row lists no panels
	// of its own, they follow it in the dashboard's list.
	Collapsed *bool   `json:"collapsed,omitempty"`
	Panels    []Panel `json:"panels,omitempty"`
}

// GridPos places a panel on the dashboard's 24-column grid; H is in rows
// of about 30 pixels.
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Target is one PromQL query of a panel.
type Target struct {
	RefID        string        `json:"refId"`
	Datasource   DatasourceRef `json:"datasource"`
	Expr         string        `json:"expr"`
	LegendFormat string        `json:"legendFormat,omitempty"`
	// Format is "time_series" (the default), "heatmap" (buckets sorted by
	// le, for heatmaps) or "table".
	Format string `json:"format,omitempty"`
	// Instant asks for the latest value only, as tables and stats show.
	Instant bool `json:"instant,omitempty"`
	Range   bool `json:"range"`
	// Exemplar also fetches exemplars (trace IDs) for the query's series.
	Exemplar bool `json:"exemplar"`
}

// FieldConfig sets how values are shown: unit, thresholds, value names.
type FieldConfig struct {
	Defaults  FieldDefaults `json:"defaults"`
	Overrides []any         `json:"overrides"`
}

// FieldDefaults apply to every series of a panel.
type FieldDefaults struct {
	Unit       string         `json:"unit,omitempty"`
	Min        *float64       `json:"min,omitempty"`
	Decimals   *int           `json:"decimals,omitempty"`
	Color      *FieldColor    `json:"color,omitempty"`
	Thresholds *Thresholds    `json:"thresholds,omitempty"`
	Mappings   []ValueMapping `json:"mappings,omitempty"`
	Links      []DataLink     `json:"links,omitempty"`
	Custom     map[string]any `json:"custom,omitempty"`
}

// FieldColor chooses how series are coloured: "palette-classic" (one
// colour per series) or "thresholds" (by value).
type FieldColor struct {
	Mode string `json:"mode"`
}

// Thresholds colour values by the step they reach.
type Thresholds struct {
	Mode  string `json:"mode"` // "absolute"
	Steps []Step `json:"steps"`
}

// Step is one threshold; the first has a nil Value (from minus infinity).
type Step struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

// ValueMapping gives values names and colours (breaker states).
type ValueMapping struct {
	Type    string                 `json:"type"` // "value"
	Options map[string]MappedValue `json:"options"`
}

// MappedValue is what a mapped value shows.
type MappedValue struct {
	Text  string `json:"text"`
	Color string `json:"color"`
	Index int    `json:"index"`
}

// DataLink turns a series into a link, e.g. to another dashboard.
type DataLink struct {
	Title string `json:"title"`
	URL   string `json:"url"`
}

// Transformation is one step of Grafana's transformation pipeline.
type Transformation struct {
	ID      string         `json:"id"`
	Options map[string]any `json:"options"`
}
