#!/usr/bin/env bash
# Makes sure protoc is on this machine: the gRPC contracts in api/proto are
# generated with Debian's protobuf-compiler (3.21.12 on bookworm) and the
# plugins go.mod pins, and api/proto's test regenerates them to catch a
# stale commit. When missing, the package is installed.
set -euo pipefail

if command -v protoc >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "protoc is missing: install your system's protobuf compiler (3.21.12, as the committed code names)" >&2
  exit 1
fi
echo "installing Debian's protobuf-compiler (protoc, for the gRPC contracts in api/proto)"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
