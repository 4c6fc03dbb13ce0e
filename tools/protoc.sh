#!/usr/bin/env bash
# Makes sure protoc is on this machine: the gRPC contracts in api/proto are
# generated with Debian's protobuf-compiler (3.21.12 on bookworm, as the
# committed code names) and the plugins go.mod pins, and api/proto's test
# regenerates them to catch a stale commit. When missing, the package is
# installed.
set -euo pipefail
command -v protoc >/dev/null 2>&1 && exit 0
exec "$(dirname "$0")/apt-install.sh" protobuf-compiler "protoc, for the gRPC contracts in api/proto"
