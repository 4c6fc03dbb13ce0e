package dashboards

// breakerStates names the values of glasshouse_client_breaker_state
// (transport/remote.go).
func breakerStates() map[string]MappedValue {
	return map[string]MappedValue{
		"0": {Text: "closed", Color: "green", Index: 0},
		"1": {Text: "half-open", Color: "yellow", Index: 1},
		"2": {Text: "open", Color: "red", Index: 2},
	}
}

// Resilience shows the client side of every call between services: the
// breaker per callee instance, retries, calls given up as unavailable and
// why, and what each caller sees in Consul. Next to it, the causes a demo
// turns on: the payments fault knobs, and the gateway's rate limit.
func Resilience() Dashboard {
	return newDashboard(ResilienceUID, "Resilience",
		"How callers cope with failing callees: circuit breakers per callee instance, retries, unavailable answers by reason, service discovery, and the payments fault knobs that cause them in a demo.",
		nil,
		newRow("Circuit breakers",
			stateTimeline("Breaker state, caller → callee instance",
				q(`glasshouse_client_breaker_state`, "{{instance}} → {{remote}} {{remote_instance}}"), breakerStates()).size(24, 9).
				describe("One breaker per caller instance and callee instance. It opens after 5 consecutive failures, lets one probe through after 5 s (half-open), and closes when the probe succeeds. A breaker that has not closed for a minute fires GlasshouseCircuitBreakerOpen."),
			timeSeries("Breaker transitions", "short",
				q(`sum by (job, remote, remote_instance, to) (increase(glasshouse_client_breaker_transitions_total[$__rate_interval]))`, "{{job}} → {{remote}} {{remote_instance}}: {{to}}")).
				bars().size(24, 7).
				describe("State changes per interval, by the state entered."),
		),
		newRow("Retries and unavailable answers",
			timeSeries("Retries per second", "ops",
				q(`sum by (job, remote, endpoint) (rate(glasshouse_client_retries_total[$__rate_interval]))`, "{{job}} → {{remote}}.{{endpoint}}")).
				atLeastZero().
				describe("Attempts sent again after a failure. Only idempotent calls are retried, and calls that provably never left (breaker open, connection refused). Retries hide a failing instance from customers, at this cost."),
			timeSeries("Unavailable answers per second, by reason", "ops",
				q(`sum by (job, remote, reason) (rate(glasshouse_client_unavailable_total[$__rate_interval]))`, "{{job}} → {{remote}}: {{reason}}")).
				atLeastZero().
				describe("Calls given up: no_instances (none passing in Consul), breaker_open (every breaker refused), failed (attempts exhausted), deadline (the 3 s retry budget ran out)."),
			timeSeries("Payments faults injected per second", "ops",
				q(`sum by (type) (rate(glasshouse_payments_faults_injected_total[$__rate_interval]))`, "{{type}}")).
				size(8, 8).atLeastZero().
				describe("Faults the payments fault knobs injected into charges and refunds: the cause behind a demo's retries and open breakers."),
			timeSeries("Payments fault knobs", "percentunit",
				q(`glasshouse_payments_fault_error_rate`, "{{instance}} error rate")).
				size(8, 8).atLeastZero().
				describe("Each payments instance's error-rate knob, set with PUT /admin/faults on the instance."),
			timeSeries("Requests refused by the rate limit", "reqps",
				q(`sum(rate(glasshouse_gateway_rate_limited_total[$__rate_interval]))`, "429 rate_limited")).
				size(8, 8).atLeastZero().
				describe("Requests the gateway answered 429 because their client exceeded its per-IP rate limit."),
		),
		newRow("Discovery",
			timeSeries("Instances each caller sees in Consul", "none",
				q(`min by (job, remote) (glasshouse_client_instances)`, "{{job}} sees {{remote}}")).
				size(8, 8).atLeastZero().
				describe("Passing instances of each callee, as its callers' Consul watches report them (the fewest any caller instance sees)."),
			timeSeries("Instances registered in Consul", "none",
				q(`sum by (job) (glasshouse_consul_registered)`, "{{job}}")).
				size(8, 8).atLeastZero().
				describe("Instances that hold a registration in Consul, by their own account."),
			timeSeries("Consul registration failures per second", "ops",
				q(`sum by (job) (rate(glasshouse_consul_registration_failures_total[$__rate_interval]))`, "{{job}}")).
				size(8, 8).atLeastZero().
				describe("Failed attempts to register; an instance keeps serving while Consul is away and registers again with backoff."),
		),
	)
}
