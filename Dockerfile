# syntax=docker/dockerfile:1.12

# One image for the whole platform: every service binary and the glasshouse
# CLI. The container's command chooses the program:
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t glasshouse:dev .
#   docker run --rm glasshouse:dev inventory -h
#
# Why one image rather than one per service: the services are built from
# one module at one commit and released together, so one image means one
# build, one vulnerability scan and one tag to promote, and it guarantees
# that every container runs the same transport/ and observability/ code.
# The cost is small: the six binaries are ~115 MB together, and a machine
# that runs the whole platform stores and pulls them once, about what five
# per-service images would hold between them; only a machine that runs a
# single service carries ~90 MB it never executes. Split the image when
# services start to ship on their own schedules.
#
# Every base image is pinned by tag. A release pipeline should also pin
# by digest (image:tag@sha256:...) so that the build can be reproduced
# exactly; the tags here keep getting base-image security updates.

# ---- build: cross-compile every binary on the builder's own platform ----
# Pure Go needs no emulator: `docker buildx build --platform
# linux/amd64,linux/arm64` runs this stage once per target, natively, with
# GOOS/GOARCH set from the target platform.
# The Go version must be at least the go line of go.mod: the golang image
# sets GOTOOLCHAIN=local, so an older Go fails instead of downloading a
# newer one (deploy/dockerfile_test.go checks this).
FROM --platform=$BUILDPLATFORM golang:1.26.10-bookworm AS build
WORKDIR /src

# Modules first, in their own step: it reruns only when go.mod or go.sum
# change, not on every source edit.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev
# CGO_ENABLED=0: the SQLite driver (modernc.org/sqlite) is pure Go, so every
# binary is static and runs on an image without a C library.
# -trimpath: no build-machine paths in the binary, so the same source gives
# the same binary on any machine. -s -w: no symbol table or DWARF; panics
# still print function names and line numbers.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bin/ ./cmd/...

# The only writable tree in the image: data/ for a service's SQLite file,
# keys/ for the token key pair and public-keys/ for the copy of the public
# key that token checkers mount without the private one. It is owned by
# the runtime user (below), because an empty named volume mounted there
# starts out with the owner and mode of the directory in the image, and
# that is what lets a non-root process write to it.
RUN mkdir -p /out/state/glasshouse/data /out/state/glasshouse/keys /out/state/glasshouse/public-keys \
 && chmod 0750 /out/state/glasshouse/data /out/state/glasshouse/keys /out/state/glasshouse/public-keys

# ---- runtime ----
# distroless/static: CA certificates, tzdata and /etc/passwd, and nothing
# else (no shell, no package manager). The :nonroot variant's default user
# is 65532.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="glasshouse" \
      org.opencontainers.image.description="glasshouse services (users, inventory, payments, orders, gateway) and the glasshouse CLI" \
      org.opencontainers.image.source="https://github.com/glasshouse-dev/glasshouse" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/
# Relative defaults such as data/keys/users-jwt.key land inside the writable
# tree; compose and Kubernetes still name every path explicitly.
WORKDIR /var/lib/glasshouse

# Numeric, so that the kubelet can check runAsNonRoot without looking up a
# user name, and stated here, so that changing the base image can't quietly
# turn the containers into root.
USER 65532:65532

# Public APIs: users 8081, inventory 8082, orders 8083, payments 8084,
# gateway 8080. Admin listeners (metrics, health, pprof), 1000 above each:
# 9080-9084, never to be published.
EXPOSE 8080 8081 8082 8083 8084 9080 9081 9082 9083 9084

# No ENTRYPOINT: the command is the program, e.g. ["inventory"] or
# ["glasshouse", "load", "-target", "http://gateway:8080"].
CMD ["glasshouse", "help"]
