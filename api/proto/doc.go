// Package proto holds the protobuf contracts of the services that speak
// gRPC, one folder per service and version (inventory/v1, payments/v1),
// with the Go code protoc writes from them committed beside each file.
//
// Change a .proto file, then run `make generate` (or ./generate.sh).
// TestGeneratedCodeIsCurrent fails when the committed code differs from
// what the pinned generators write.
package proto

//go:generate ./generate.sh
