package dashboards

// Checkout follows the shop's money path: checkouts by outcome against
// their SLOs (deploy/prometheus/slo.rules.yml), and the saga behind them:
// compensations, the recovery loop, and what payments and inventory
// answered.
func Checkout() Dashboard {
	return newDashboard(CheckoutUID, "Checkout",
		"Checkouts (POST /api/orders) against their SLOs, and the saga behind them: reserve stock, charge, commit; compensate on failure; recover interrupted checkouts.",
		nil,
		newRow("Checkouts",
			timeSeries("Checkouts per minute, by outcome", "opm",
				q(`sum by (status, code) (rate(glasshouse_orders_checkouts_total[$__rate_interval])) * 60`, "{{status}} ({{code}})")).
				atLeastZero().
				describe("Finished checkouts by final status: CONFIRMED; REJECTED (out of stock, nothing held or charged); FAILED (declined card, or a dependency unavailable: stock released, any charge refunded). The code is the failure's error code."),
			timeSeries("Checkout latency at the gateway", "s",
				q(`job_endpoint:glasshouse_endpoint_latency_seconds:p50_1m{job="gateway", endpoint="PlaceOrder"}`, "p50"),
				q(`job_endpoint:glasshouse_endpoint_latency_seconds:p95_1m{job="gateway", endpoint="PlaceOrder"}`, "p95"),
				q(`job_endpoint:glasshouse_endpoint_latency_seconds:p99_1m{job="gateway", endpoint="PlaceOrder"}`, "p99")).
				atLeastZero().thresholds(base("green"), step("red", 0.5)).
				describe("What a customer waits for POST /api/orders. The dashed line is the latency SLO: 99 % of checkouts that do not fail within 500 ms."),
		),
		newRow("Service level objectives (30 days)",
			timeSeries("Error budget burn rate", "suffix:×",
				q(`slo:sli_error:ratio_rate1h / on (slo) slo:error_budget:ratio`, "{{slo}}, 1h"),
				q(`slo:sli_error:ratio_rate6h / on (slo) slo:error_budget:ratio`, "{{slo}}, 6h")).
				atLeastZero().thresholds(base("green"), step("orange", 6), step("red", 14.4)).
				describe("How fast each SLO spends its 30-day error budget: at 1× it lasts the 30 days exactly. The dashed lines are the pages: 14.4× over 1h (and 5m) is fast burn, 6× over 6h (and 30m) slow burn. checkout-availability: 99.5 % of checkouts do not fail; checkout-latency: 99 % of those answer within 500 ms."),
			timeSeries("Bad checkouts (SLI), over 5 minutes", "percentunit",
				q(`slo:sli_error:ratio_rate5m`, "{{slo}}")).
				atLeastZero().
				describe("checkout-availability: the share of checkouts that failed. checkout-latency: the share of checkouts that did not fail but took longer than 500 ms."),
		),
		newRow("The saga",
			timeSeries("Saga compensations per minute", "opm",
				q(`sum by (action) (rate(glasshouse_orders_saga_compensations_total[$__rate_interval])) * 60`, "{{action}}")).
				atLeastZero().
				describe("What failed checkouts gave back: release (the stock reservation), refund (a charge)."),
			timeSeries("Recovery-loop actions per minute", "opm",
				q(`sum by (action) (rate(glasshouse_orders_recovery_actions_total[$__rate_interval])) * 60`, "{{action}}")).
				atLeastZero().
				describe("Interrupted checkouts the recovery loop finished: forward (the customer had paid), compensate, deferred (a dependency is down: next pass), settle (a failed order whose charge was in doubt, now answered)."),
			timeSeries("Payment declines vs failures per minute", "opm",
				// "or vector(0)": a quiet minute is a 0, not "No data".
				q(`sum(rate(glasshouse_payments_charges_total{result="card_declined"}[$__rate_interval])) * 60 or vector(0)`, "declined (an answer)"),
				q(`sum(rate(glasshouse_payments_charges_total{result!~"succeeded|card_declined"}[$__rate_interval])) * 60 or vector(0)`, "failed (a fault)")).
				atLeastZero().
				describe("Charge calls payments answered with card_declined, a business answer that fails the checkout but no service, against those that failed, such as injected faults. Every call counts, so a retried charge counts once per attempt."),
			timeSeries("Stock reservations per minute", "opm",
				q(`sum by (operation, result) (rate(glasshouse_inventory_reservation_operations_total[$__rate_interval])) * 60`, "{{operation}} {{result}}")).
				atLeastZero().
				describe("Inventory's side of the saga: reserve, commit and release calls by result (ok, or an error code such as out_of_stock)."),
		),
		newRow("Events (orders' outbox → NATS → consumers)",
			timeSeries("Outbox rows waiting to be published", "short",
				// Every orders replica counts the one shared outbox: max.
				q(`max by (job) (glasshouse_outbox_depth)`, "{{job}}")).
				atLeastZero().
				describe("Order events written with their order's change and not yet acknowledged by the ORDERS stream. It grows while NATS is down (checkouts carry on) and drains when it is back. Alert: GlasshouseOutboxStuck."),
			timeSeries("Oldest unpublished outbox row", "s",
				q(`max by (job) (glasshouse_outbox_oldest_age_seconds)`, "{{job}}")).
				atLeastZero().thresholds(base("green"), step("red", 60)).
				describe("How long the oldest waiting event has waited: 0 when none waits. Over 60 s for 2 minutes alerts (GlasshouseOutboxStuck)."),
			timeSeries("Events published and failed per minute", "opm",
				q(`sum by (subject) (rate(glasshouse_outbox_published_total[$__rate_interval])) * 60`, "published {{subject}}"),
				// "or vector(0)": a quiet minute is a 0, not "No data".
				q(`sum(rate(glasshouse_outbox_publish_failures_total[$__rate_interval])) * 60 or vector(0)`, "publish failures")).
				atLeastZero().
				describe("Events the relay published and the stream acknowledged, by subject, against publishes that got no acknowledgement (retried with backoff)."),
			timeSeries("Consumer lag", "short",
				// Every replica reports the server's count for the
				// consumer they share: max.
				q(`max by (consumer) (glasshouse_consumer_pending_messages + glasshouse_consumer_ack_pending_messages)`, "{{consumer}}")).
				atLeastZero().thresholds(base("green"), step("red", 100)).
				describe("Messages each durable consumer has not acknowledged yet: not delivered, or delivered and being handled. Over 100 for 5 minutes alerts (GlasshouseConsumerLagging)."),
			timeSeries("Consumer deliveries per minute", "opm",
				q(`sum by (consumer) (rate(glasshouse_consumer_handled_total[$__rate_interval])) * 60`, "handled {{consumer}}"),
				q(`sum(rate(glasshouse_consumer_redeliveries_total[$__rate_interval])) * 60 or vector(0)`, "redeliveries"),
				q(`sum(rate(glasshouse_consumer_dead_letters_total[$__rate_interval])) * 60 or vector(0)`, "dead letters")).
				atLeastZero().
				describe("Events handled and committed by each consumer; redeliveries (a failure, a crash before the ack, or an ack that timed out); and poison messages moved to the DEADLETTER stream."),
		),
	)
}
