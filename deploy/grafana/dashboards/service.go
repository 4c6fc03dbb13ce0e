package dashboards

// The RED histogram every endpoint observes (observability/endpoint.go).
const (
	requestCount   = "glasshouse_endpoint_request_duration_seconds_count"
	requestBuckets = "glasshouse_endpoint_request_duration_seconds_bucket"
)

// The pool and call metrics of a service's database (storage/metrics.go,
// registered by platform.OpenStore): every service with a store has them,
// a stateless one (the gateway) none, so its database row says "No data".
const (
	dbQueryBuckets = "glasshouse_db_query_duration_seconds_bucket"
	dbQueryLatency = `sum by (le, operation) (rate(` + dbQueryBuckets + `{job="$service"}[$__rate_interval]))`
)

// endpointBuckets are the bucket rates of the chosen endpoint, from the
// raw histogram so that exemplars come along.
const endpointBuckets = `sum by (le) (rate(` + requestBuckets + `{job="$service", endpoint="$endpoint"}[$__rate_interval]))`

// Service looks into one service ($service) and one of its endpoints
// ($endpoint): the RED signals by endpoint, outcome and transport, the latency
// distribution with exemplars that open traces, the Go runtime of each
// instance, and each instance's database pool and calls.
func Service() Dashboard {
	vars := []Variable{
		variable("service", "Service", requestCount, "job"),
		variable("endpoint", "Endpoint", requestCount+`{job="$service"}`, "endpoint"),
	}
	return newDashboard(ServiceUID, "Service detail",
		"One service and one of its endpoints: RED signals, latency distribution with exemplars (click one to open its trace in Jaeger), each instance's Go runtime, and its database.",
		vars,
		newRow("$service",
			timeSeries("Requests per second by endpoint", "reqps",
				q(`job_endpoint:glasshouse_endpoint_requests:rate1m{job="$service"}`, "{{endpoint}}")).
				atLeastZero(),
			timeSeries("Requests per second by outcome", "reqps",
				q(`sum by (outcome) (job_endpoint_outcome:glasshouse_endpoint_requests:rate1m{job="$service"})`, "{{outcome}}")).
				atLeastZero().
				describe("success; business_error, an answer such as out_of_stock or card_declined; error, a failure."),
			timeSeries("Error ratio by endpoint", "percentunit",
				q(`job_endpoint:glasshouse_endpoint_errors:ratio_rate1m{job="$service"}`, "{{endpoint}}")).
				atLeastZero().thresholds(base("green"), step("red", 0.05)),
			timeSeries("Latency", "s",
				q(`job:glasshouse_endpoint_latency_seconds:p50_1m{job="$service"}`, "p50"),
				q(`job:glasshouse_endpoint_latency_seconds:p95_1m{job="$service"}`, "p95"),
				q(`job:glasshouse_endpoint_latency_seconds:p99_1m{job="$service"}`, "p99")).
				atLeastZero().
				describe("Every endpoint of the service together, over 1 minute."),
			timeSeries("Requests per second by transport", "reqps",
				q(`job_transport:glasshouse_endpoint_requests:rate1m{job="$service"}`, "{{transport}}")).
				atLeastZero().
				describe("Calls by the listener they came in on: http, the JSON API every service serves; grpc, the same endpoints over gRPC, which inventory and payments serve too and orders calls. A service without gRPC shows http alone."),
			timeSeries("p99 latency by transport", "s",
				q(`job_transport:glasshouse_endpoint_latency_seconds:p99_1m{job="$service"}`, "{{transport}}")).
				atLeastZero().
				describe("The same endpoints answered over each transport, over 1 minute: a gap between the lines is the transport's own cost, or a different mix of calls (the gateway's reads come over HTTP, orders' saga steps over gRPC)."),
		),
		newRow("$service: $endpoint",
			timeSeries("Requests per second by outcome", "reqps",
				q(`job_endpoint_outcome:glasshouse_endpoint_requests:rate1m{job="$service", endpoint="$endpoint"}`, "{{outcome}}")).
				atLeastZero(),
			timeSeries("Latency, with exemplars", "s",
				q(`histogram_quantile(0.50, `+endpointBuckets+`)`, "p50").withExemplars(),
				q(`histogram_quantile(0.95, `+endpointBuckets+`)`, "p95"),
				q(`histogram_quantile(0.99, `+endpointBuckets+`)`, "p99")).
				atLeastZero().
				describe("Quantiles from the raw histogram rather than the recording rules, because only raw series carry exemplars: each dot is one sampled call, and clicking it opens the call's trace in Jaeger."),
			heatmap("Latency distribution", "s",
				q(endpointBuckets, "").withExemplars()).size(24, 9).
				describe("How many calls fell in each latency bucket over time: a second band of slow calls shows up here long before it moves a percentile. Exemplar dots open traces."),
		),
		newRow("$service: Go runtime, per instance",
			timeSeries("Goroutines", "none",
				q(`go_goroutines{job="$service"}`, "{{instance}}")).size(8, 7).
				describe("A count that only grows is a goroutine leak: a blocked call with no deadline, or a missing cancel."),
			timeSeries("Heap in use", "bytes",
				q(`go_memstats_heap_inuse_bytes{job="$service"}`, "{{instance}}")).size(8, 7).atLeastZero(),
			timeSeries("Resident memory", "bytes",
				q(`process_resident_memory_bytes{job="$service"}`, "{{instance}}")).size(8, 7).atLeastZero(),
			timeSeries("GC cycles per second", "short",
				q(`rate(go_gc_duration_seconds_count{job="$service"}[$__rate_interval])`, "{{instance}}")).size(8, 7).atLeastZero(),
			timeSeries("Longest GC pause", "s",
				// Prometheus 3 stores quantile and le values as floats
				// ("1.0"), Prometheus 2 as exposed ("1"): match both.
				q(`go_gc_duration_seconds{job="$service", quantile=~"1|1.0"}`, "{{instance}}")).size(8, 7).atLeastZero().
				describe("The longest stop-the-world pause among recent collections."),
			timeSeries("CPU", "percentunit",
				q(`rate(process_cpu_seconds_total{job="$service"}[$__rate_interval])`, "{{instance}}")).size(8, 7).atLeastZero().
				describe("CPU time per second: 100 % is one core busy."),
		),
		newRow("$service: database, per instance",
			timeSeries("DB connections", "none",
				q(`go_sql_open_connections{job="$service"}`, "{{instance}} open"),
				q(`go_sql_in_use_connections{job="$service"}`, "{{instance}} in use"),
				q(`go_sql_idle_connections{job="$service"}`, "{{instance}} idle")).
				size(8, 7).atLeastZero().
				describe("The database/sql pool of each instance: open = in use + idle. In use stuck at the pool's limit (10 per instance on PostgreSQL) means calls queue for a connection; see DB pool waits."),
			timeSeries("DB pool waits", "short",
				q(`rate(go_sql_wait_count_total{job="$service"}[$__rate_interval])`, "{{instance}} waits/s"),
				q(`rate(go_sql_wait_duration_seconds_total{job="$service"}[$__rate_interval])`, "{{instance}} seconds waited/s")).
				size(8, 7).atLeastZero().
				describe("Calls per second that found every connection of the pool busy and waited for one, and the seconds spent waiting per second (1 = one caller always waiting). Zero on SQLite, whose pool has no limit."),
			timeSeries("DB query latency", "s",
				q(`histogram_quantile(0.50, `+dbQueryLatency+`)`, "p50 {{operation}}"),
				q(`histogram_quantile(0.99, `+dbQueryLatency+`)`, "p99 {{operation}}")).
				size(8, 7).atLeastZero().
				describe("Every instance together, by operation: exec and query, one statement each (a query until its first rows are ready); tx, a whole transaction from BEGIN to COMMIT or ROLLBACK, lock waits included."),
		),
	)
}
