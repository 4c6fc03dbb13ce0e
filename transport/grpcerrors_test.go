package transport

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/observability"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestEveryKindHasOneCodeAndComesBack(t *testing.T) {
	seen := map[errs.Kind]bool{}
	for _, row := range codeOf {
		if seen[row.kind] {
			t.Errorf("kind %v has two rows", row.kind)
		}
		seen[row.kind] = true
		// Read back from the code alone, a kind gives the first kind of
		// its code: the same one or its row's elder.
		if back := KindOfCode(row.code); back != row.kind && GRPCCode(errs.E(back, "", "")) != row.code {
			t.Errorf("%v → %v → %v", row.kind, row.code, back)
		}
	}
	for kind := errs.Internal; kind <= errs.Timeout; kind++ {
		if !seen[kind] {
			t.Errorf("kind %v has no gRPC code", kind)
		}
	}
	// gRPC's own statuses, which carry no kind.
	for code, want := range map[codes.Code]errs.Kind{
		codes.ResourceExhausted: errs.TooLarge, // an oversized message
		codes.Unavailable:       errs.Unavailable,
		codes.Unimplemented:     errs.NotAllowed,
		codes.Unknown:           errs.Internal,
		codes.Internal:          errs.Internal,
		codes.DeadlineExceeded:  errs.Timeout,
	} {
		if got := errs.KindOf(DecodeGRPCError(status.Error(code, "x"))); got != want {
			t.Errorf("a bare %v decodes to %v; want %v", code, got, want)
		}
	}
	if err := DecodeGRPCError(status.Error(codes.DeadlineExceeded, "x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a bare DEADLINE_EXCEEDED (%v) does not say the deadline passed", err)
	}
	if err := DecodeGRPCError(status.Error(codes.Canceled, "x")); !errors.Is(err, context.Canceled) {
		t.Errorf("a bare CANCELED (%v) does not say the call was cancelled", err)
	}
}

func TestARefusedGRPCConnectionProvesTheCallNeverLeft(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	tel, shutdown, err := observability.Setup(context.Background(), observability.Config{ServiceName: "t", Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	conn, err := NewGRPCConn(addr, tel, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = DecodeGRPCError(conn.Invoke(ctx, "/x.Y/Z", &emptyMessage{}, &emptyMessage{}, grpc.ForceCodec(bytesCodec{})))
	if errs.KindOf(err) != errs.Unavailable || !notSent(err) {
		t.Errorf("a call to a closed port = %v (never sent: %v); want unavailable, provably never sent", err, notSent(err))
	}
	if notSent(DecodeGRPCError(status.Error(codes.Unavailable, "transport is closing"))) {
		t.Error("a connection lost mid-call counts as never sent")
	}
}

type emptyMessage struct{}

type bytesCodec struct{}

func (bytesCodec) Marshal(any) ([]byte, error) { return nil, nil }
func (bytesCodec) Unmarshal([]byte, any) error { return nil }
func (bytesCodec) Name() string                { return "proto" }
