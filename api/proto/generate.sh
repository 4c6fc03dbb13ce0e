#!/bin/sh
# Writes the Go code for every .proto file below api/proto into OUT
# (default: beside each .proto file), with Debian's protoc and the
# protoc-gen-go and protoc-gen-go-grpc versions go.mod pins as tools. No
# remote plugin or registry is involved, so the output is the same on
# every machine with the same protoc (TestGeneratedCodeIsCurrent checks).
set -eu
cd "$(dirname "$0")"
out=${1:-.}
command -v protoc >/dev/null || {
	echo "protoc not found: install Debian's protobuf-compiler (make protoc)" >&2
	exit 1
}
go=${GO:-go}
protoc \
	--plugin=protoc-gen-go="$($go tool -n protoc-gen-go)" \
	--plugin=protoc-gen-go-grpc="$($go tool -n protoc-gen-go-grpc)" \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	-I . $(find . -name '*.proto' | sort)
