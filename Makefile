# glasshouse — the two commands a newcomer needs are `make run` and
# `make test`; the rest are their building blocks.

GO        ?= go
BIN       := $(CURDIR)/bin
TOOLS     := $(BIN)/tools
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
SERVICES  := inventory

# Pinned tools, built from source through the Go module proxy and cached
# by version, so every machine runs the same ones.
CONSUL_VERSION := v1.14.0
# A consul on PATH wins (or CONSUL_BIN set by hand); else the pinned build.
CONSUL_BIN ?= $(or $(shell command -v consul 2>/dev/null),$(TOOLS)/consul-$(CONSUL_VERSION))
export CONSUL_BIN

.PHONY: all build run test vet fmt-check unit consul clean help

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build every binary into bin/
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

run: build ## run the platform locally (for now: the inventory service on :8082)
	$(BIN)/inventory -data-dir data/inventory

test: fmt-check vet consul ## vet, then every test with the race detector (needs the pinned Consul)
	$(GO) test -race -count=1 ./...

unit: ## only the fast tests, without the race detector
	$(GO) test -short ./...

vet: ## go vet
	$(GO) vet ./...

fmt-check: ## fail when a file is not gofmt-ed
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

consul: $(CONSUL_BIN) ## the pinned Consul (from PATH, or built once)

$(TOOLS)/consul-$(CONSUL_VERSION): tools/consul/go.mod
	@echo "building Consul $(CONSUL_VERSION) from source (first time only, ~3 min)"
	@mkdir -p $(TOOLS)
	cd tools/consul && $(GO) build -o $@ github.com/hashicorp/consul

clean: ## remove build outputs and local data
	rm -rf $(BIN) data run
