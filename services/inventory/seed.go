package inventory

// Catalogue is the demo catalogue loaded into an empty store: a dozen
// products with stock for tens of thousands of checkouts (load tests and
// chaos runs buy a lot), and one nearly sold out so out-of-stock answers
// show up in demos.
var Catalogue = []Product{
	{SKU: "GH-MUG-01", Name: "Glasshouse mug", Description: "Stoneware mug, 350 ml, glazed in greenhouse green.", PriceCents: 1200, Currency: "EUR", Available: 10000},
	{SKU: "GH-TEE-01", Name: "Trace tee", Description: "Organic cotton T-shirt printed with a Jaeger waterfall.", PriceCents: 2500, Currency: "EUR", Available: 6000},
	{SKU: "GH-HOOD-01", Name: "Breaker hoodie", Description: "Heavy hoodie; opens after five failures, closes when you are warm.", PriceCents: 5500, Currency: "EUR", Available: 3000},
	{SKU: "GH-STICK-01", Name: "Sticker pack", Description: "Ten vinyl stickers: gopher, span, histogram and friends.", PriceCents: 600, Currency: "EUR", Available: 40000},
	{SKU: "GH-NOTE-01", Name: "Runbook notebook", Description: "A5 dotted notebook for incident timelines.", PriceCents: 1400, Currency: "EUR", Available: 8000},
	{SKU: "GH-PEN-01", Name: "On-call pen", Description: "Refillable pen that writes upside down at 3 a.m.", PriceCents: 900, Currency: "EUR", Available: 16000},
	{SKU: "GH-CAP-01", Name: "Canary cap", Description: "Yellow cap for whoever deploys first.", PriceCents: 2000, Currency: "EUR", Available: 4000},
	{SKU: "GH-SOCK-01", Name: "Retry socks", Description: "Three pairs, idempotent: wearing them twice changes nothing.", PriceCents: 1500, Currency: "EUR", Available: 7000},
	{SKU: "GH-BOTTLE-01", Name: "Steel bottle", Description: "Insulated bottle, 750 ml, keeps coffee hot through a postmortem.", PriceCents: 2800, Currency: "EUR", Available: 5000},
	{SKU: "GH-POSTER-01", Name: "Saga poster", Description: "A2 print of the checkout saga, compensations in red.", PriceCents: 1800, Currency: "EUR", Available: 2400},
	{SKU: "GH-BAG-01", Name: "Tote bag", Description: "Canvas tote with room for a laptop and a pager.", PriceCents: 1600, Currency: "EUR", Available: 8000},
	{SKU: "GH-LAMP-01", Name: "Limited lamp", Description: "Hand-blown glass lamp; only a few made.", PriceCents: 12000, Currency: "EUR", Available: 3},
}
