package dashboards

// The dashboards' UIDs: stable, so links and bookmarks survive a rebuild.
const (
	OverviewUID   = "glasshouse-overview"
	ServiceUID    = "glasshouse-service"
	ResilienceUID = "glasshouse-resilience"
	CheckoutUID   = "glasshouse-checkout"
)

// serviceLink opens the Service detail dashboard for a series' job.
const serviceLink = "/d/" + ServiceUID + "?var-service=${__field.labels.job}&${__url_time_range}"

// Overview is the first screen: is every service up, busy, failing, slow?
// One line per service, from the RED recording rules.
func Overview() Dashboard {
	return newDashboard(OverviewUID, "Platform overview",
		"Every glasshouse service at a glance: request rate, error ratio and latency from the RED recording rules, and whether every instance is up. Click a series to open its Service detail dashboard.",
		nil,
		newRow("Requests, errors, duration per service",
			timeSeries("Requests per second", "reqps",
				q(`job:glasshouse_endpoint_requests:rate1m`, "{{job}}")).
				atLeastZero().linkTo("Service detail", serviceLink).
				describe("Endpoint calls per second, every endpoint and outcome, averaged over 1 minute."),
			timeSeries("Error ratio", "percentunit",
				q(`job:glasshouse_endpoint_errors:ratio_rate1m`, "{{job}}")).
				atLeastZero().linkTo("Service detail", serviceLink).
				thresholds(base("green"), step("red", 0.05)).
				describe("The share of calls that failed (outcome=\"error\"); business answers such as a declined card are not failures. The dashed line is the GlasshouseHighErrorRatio alert's threshold."),
			timeSeries("Latency p99", "s",
				q(`job:glasshouse_endpoint_latency_seconds:p99_1m`, "{{job}}")).
				atLeastZero().linkTo("Service detail", serviceLink).
				describe("99 % of calls answered within this time, over 1 minute. Interpolated within histogram buckets."),
			timeSeries("Latency p50", "s",
				q(`job:glasshouse_endpoint_latency_seconds:p50_1m`, "{{job}}")).
				atLeastZero().linkTo("Service detail", serviceLink).
				describe("The median call, over 1 minute."),
		),
		newRow("Instances",
			stat("Instances up", "none",
				q(`job:glasshouse_instances_up:count`, "{{job}}")).size(8, 5).
				describe("Instances of each service that answered Prometheus' last scrape. Targets come from Consul."),
			stat("Instances missing", "none",
				q(`job:glasshouse_instances:desired - on (job) job:glasshouse_instances_up:count`, "{{job}}")).size(8, 5).
				thresholds(base("green"), step("red", 1)).
				describe("Desired instances (job:glasshouse_instances:desired in resilience.rules.yml) minus those up. Above 0 for a minute, GlasshouseInstancesBelowDesired fires."),
			stat("Alerts firing", "none",
				// "or vector(0)": no firing alert is a 0, not "No data".
				q(`count(ALERTS{alertstate="firing"}) or vector(0)`, "alerts")).size(8, 5).
				thresholds(base("green"), step("red", 1)).
				describe("Prometheus alerts firing now; their list is on Prometheus' /alerts page."),
			table("Scrape targets",
				q(`max by (job, instance, version) (up)`, ""),
				[]string{"Time"}, map[string]string{"Value": "up"}).size(24, 8).
				describe("Every instance Prometheus found in Consul, with the version it runs (from its Consul metadata); up is 1 when the last scrape succeeded."),
		),
		newRow("The shop, and its telemetry",
			timeSeries("Shop activity per minute", "opm",
				q(`sum by (status) (rate(glasshouse_orders_checkouts_total[$__rate_interval])) * 60`, "checkout {{status}}"),
				q(`sum by (result) (rate(glasshouse_users_logins_total[$__rate_interval])) * 60`, "login {{result}}"),
				q(`sum by (result) (rate(glasshouse_users_registrations_total[$__rate_interval])) * 60`, "sign-up {{result}}")).
				atLeastZero().
				describe("What customers do, in business terms: checkouts by final status, logins and sign-ups by result."),
			timeSeries("Spans exported per second", "ops",
				q(`sum by (job, result) (rate(glasshouse_spans_exported_total[$__rate_interval]))`, "{{job}} {{result}}"),
				q(`sum by (job) (rate(glasshouse_spans_ended_total[$__rate_interval])) - sum by (job) (rate(glasshouse_spans_exported_total[$__rate_interval]))`, "{{job}} not exported")).
				describe("Spans each service handed to the OTLP exporter. A failure series means traces are being lost on the way to Jaeger; "+
					"a \"not exported\" series above zero, spans that ended but were dropped by a full batch queue (or still wait in it)."),
		),
	)
}
