# glasshouse — the two commands a newcomer needs are `make run` and
# `make test`; the rest are their building blocks.

GO        ?= go
# go.mod names the toolchain to build with (see the comment there); let the
# go command fetch it through the module proxy when this machine's is older.
export GOTOOLCHAIN ?= auto
BIN       := $(CURDIR)/bin
TOOLS     := $(BIN)/tools
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

# Pinned tools, built from source through the Go module proxy (each in its
# own module under tools/) and cached by version, so every machine runs the
# same ones. Debian's prometheus package is built without Consul service
# discovery, so Prometheus is built from source too.
CONSUL_VERSION     := v1.14.0
JAEGER_VERSION     := v1.76.0
PROMETHEUS_VERSION := v0.316.0
NATS_VERSION       := v2.15.3
# A consul on PATH wins (or CONSUL_BIN set by hand); else the pinned build.
CONSUL_BIN     ?= $(or $(shell command -v consul 2>/dev/null),$(TOOLS)/consul-$(CONSUL_VERSION))
JAEGER_BIN     ?= $(TOOLS)/jaeger-$(JAEGER_VERSION)
PROMETHEUS_BIN ?= $(TOOLS)/prometheus-$(PROMETHEUS_VERSION)
PROMTOOL_BIN   ?= $(TOOLS)/promtool-$(PROMETHEUS_VERSION)
NATS_BIN       ?= $(TOOLS)/nats-server-$(NATS_VERSION)
export CONSUL_BIN JAEGER_BIN PROMETHEUS_BIN PROMTOOL_BIN NATS_BIN

COMPOSE ?= docker compose

.PHONY: all build run run-postgres test chaos bench vet fmt-check unit tools postgres protoc consul jaeger prometheus nats clean help up down fuzz vuln generate

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build every binary into bin/
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

run: build tools ## run the whole platform locally: Consul, NATS, Jaeger, Prometheus, every service
	$(BIN)/glasshouse up

run-postgres: build tools postgres ## as run, with every store on a local PostgreSQL (run/postgres/), orders ×2
	$(BIN)/glasshouse up --store postgres

up: ## run the platform in containers with Grafana and the Jaeger UI (Docker Engine 25+)
	GLASSHOUSE_VERSION=$(VERSION) $(COMPOSE) up --build --detach --wait
	@echo "gateway http://localhost:8080  Grafana http://localhost:3000  Jaeger http://localhost:16686  Prometheus http://localhost:9090  Consul http://localhost:8500/ui"

down: ## stop the containers (data stays in volumes; docker compose down --volumes wipes it)
	$(COMPOSE) down

# The end-to-end package runs alone, after the others: its chaos verdicts
# hold latencies to budgets, and on two cores the other packages' tests
# running beside it would be measured too.
test: fmt-check vet tools postgres protoc fuzz vuln ## vet, fuzz, govulncheck, then every test with the race detector (against the real tools)
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/e2e$$')
	$(GO) test -race -count=1 -timeout 40m ./e2e

chaos: build tools ## kill services under load on a fresh local stack; report in reports/
	$(BIN)/glasshouse chaos

# BENCHFLAGS go to glasshouse bench, e.g. BENCHFLAGS='-profile -duration 30s'.
bench: build tools ## a checkout at saturation: bare reference chain (bench/) vs glasshouse, traced and not; report in reports/
	$(GO) build -o $(BIN)/benchchain ./bench/chain
	$(BIN)/glasshouse bench -chain $(BIN)/benchchain $(BENCHFLAGS)

unit: ## only the fast tests, without the race detector
	$(GO) test -short ./...

# docker-compose.yml, the Dockerfile, the Kubernetes manifests and the
# Prometheus instance counts come from services/catalog.go and the
# templates in deploy/templates; the Grafana dashboards from their Go in
# deploy/grafana/dashboards; each service's client_gen.go from its api.go
# (transport/clientgen). Tests in deploy/ and services/ fail when a
# checked-in file differs from what this writes.
generate: protoc ## write every generated file (compose, k8s, Dockerfile, dashboards, clients, gRPC code)
	$(GO) generate ./...

vet: ## go vet
	$(GO) vet ./...

fmt-check: ## fail when a file is not gofmt-ed
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

postgres: ## PostgreSQL's server binaries for the store tests (Debian's package, installed when missing)
	@tools/postgres.sh

protoc: ## protoc for the gRPC contracts in api/proto (Debian's package, installed when missing)
	@tools/protoc.sh

tools: ## the pinned Consul, Jaeger, Prometheus and NATS (built once, in parallel)
	@$(MAKE) --no-print-directory -j4 consul jaeger prometheus nats

# Fuzzing and supply chain (docs/security.md). Every native fuzz target
# runs for FUZZTIME; a failure leaves its input in testdata/fuzz/ to commit
# as a regression case.
FUZZTIME ?= 5s

fuzz: ## run every go test -fuzz target for FUZZTIME (5s) each
	@FUZZTIME=$(FUZZTIME) GO=$(GO) tools/fuzz.sh

# govulncheck, pinned, against a local copy of the Go vulnerability
# database: these machines cannot reach vuln.go.dev, so the reports come
# from a pinned golang.org/x/vulndb through the module proxy (bump
# VULNDB_VERSION to refresh them). Accepted findings, each with its
# reason, are in tools/govulncheck/exceptions.
GOVULNCHECK_VERSION := v1.9.0
VULNDB_VERSION      := v0.0.0-20261105234957-e22db6528018
GOVULNCHECK_BIN     := $(TOOLS)/govulncheck-$(GOVULNCHECK_VERSION)
VULNDB_BIN          := $(TOOLS)/vulndb
VULNDB_DIR          := $(TOOLS)/vulndb-$(VULNDB_VERSION)

vuln: $(GOVULNCHECK_BIN) $(VULNDB_BIN) $(VULNDB_DIR)/index/modules.json ## govulncheck ./... against the offline database
	$(GOVULNCHECK_BIN) -db file://$(VULNDB_DIR) -format json ./... > $(BIN)/govulncheck.json
	$(VULNDB_BIN) check -exceptions tools/govulncheck/exceptions < $(BIN)/govulncheck.json

$(GOVULNCHECK_BIN): tools/govulncheck/go.mod
	@echo "building govulncheck $(GOVULNCHECK_VERSION) from source (first time only, ~1 min)"
	@mkdir -p $(TOOLS)
	cd tools/govulncheck && $(GO) build -o $@ golang.org/x/vuln/cmd/govulncheck

$(VULNDB_BIN): tools/vulndb/go.mod $(wildcard tools/vulndb/*.go)
	@mkdir -p $(TOOLS)
	cd tools/vulndb && $(GO) test ./... && $(GO) build -o $@ .

$(VULNDB_DIR)/index/modules.json: | $(VULNDB_BIN)
	$(VULNDB_BIN) build -version $(VULNDB_VERSION) -out $(VULNDB_DIR)

consul: $(CONSUL_BIN)
jaeger: $(JAEGER_BIN)
prometheus: $(PROMETHEUS_BIN) $(PROMTOOL_BIN)
nats: $(NATS_BIN)

$(TOOLS)/consul-$(CONSUL_VERSION): tools/consul/go.mod
	@echo "building Consul $(CONSUL_VERSION) from source (first time only, ~3 min)"
	@mkdir -p $(TOOLS)
	cd tools/consul && $(GO) build -o $@ github.com/hashicorp/consul

$(TOOLS)/jaeger-$(JAEGER_VERSION): tools/jaeger/go.mod
	@echo "building Jaeger $(JAEGER_VERSION) from source (first time only, ~3 min)"
	@mkdir -p $(TOOLS)
	cd tools/jaeger && $(GO) build -o $@ github.com/jaegertracing/jaeger/cmd/jaeger

$(TOOLS)/prometheus-$(PROMETHEUS_VERSION): tools/prometheus/go.mod
	@echo "building Prometheus $(PROMETHEUS_VERSION) from source (first time only, ~4 min)"
	@mkdir -p $(TOOLS)
	cd tools/prometheus && $(GO) build -o $@ github.com/prometheus/prometheus/cmd/prometheus

$(TOOLS)/promtool-$(PROMETHEUS_VERSION): tools/prometheus/go.mod
	@mkdir -p $(TOOLS)
	cd tools/prometheus && $(GO) build -o $@ github.com/prometheus/prometheus/cmd/promtool

$(TOOLS)/nats-server-$(NATS_VERSION): tools/nats/go.mod
	@echo "building nats-server $(NATS_VERSION) from source (first time only, ~2 min)"
	@mkdir -p $(TOOLS)
	cd tools/nats && $(GO) build -o $@ github.com/nats-io/nats-server/v2

clean: ## remove build outputs and local data
	rm -rf $(BIN) data run
