package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/glasshouse-dev/glasshouse/errs"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// codeOf is the one table between error kinds and gRPC status codes, as
// statusOf is for HTTP. Each kind has one code. Two codes serve two kinds
// each (Declined is a FAILED_PRECONDITION like Conflict, RateLimited a
// RESOURCE_EXHAUSTED like TooLarge): our servers send the kind itself in
// an ErrorInfo detail, so it survives the round trip exactly; read
// backwards, the table gives the first kind listed for a code, which is
// what a status without that detail means (one that gRPC itself made,
// such as an oversized message or a refused connection).
var codeOf = []struct {
	kind errs.Kind
	code codes.Code
}{
	{errs.Internal, codes.Internal},
	{errs.Invalid, codes.InvalidArgument},
	{errs.Unauthenticated, codes.Unauthenticated},
	{errs.Forbidden, codes.PermissionDenied},
	{errs.NotFound, codes.NotFound},
	{errs.NotAllowed, codes.Unimplemented},
	{errs.Conflict, codes.FailedPrecondition},
	{errs.Declined, codes.FailedPrecondition},
	{errs.TooLarge, codes.ResourceExhausted},
	{errs.RateLimited, codes.ResourceExhausted},
	{errs.Unavailable, codes.Unavailable},
	{errs.Timeout, codes.DeadlineExceeded},
}

// Codes outside the table, as a peer or gRPC may still send them.
var kindOfOtherCode = map[codes.Code]errs.Kind{
	codes.Unknown:       errs.Internal,
	codes.DataLoss:      errs.Internal,
	codes.OutOfRange:    errs.Invalid,
	codes.AlreadyExists: errs.Conflict,
	codes.Aborted:       errs.Conflict,
}

// errNeverSent marks a gRPC call that failed before it was sent: its
// connection could not be opened (see notSent).
var errNeverSent = errors.New("the connection could not be opened")

// errorDomain names our ErrorInfo details, so a status from some other
// server is never mistaken for one of ours.
const errorDomain = "glasshouse"

// GRPCCode returns the gRPC status code for err's kind.
func GRPCCode(err error) codes.Code {
	kind := errs.KindOf(err)
	for _, row := range codeOf {
		if row.kind == kind {
			return row.code
		}
	}
	return codes.Internal
}

// KindOfCode maps a gRPC status code received from a peer to an error
// kind, for a status that carries no kind of its own.
func KindOfCode(c codes.Code) errs.Kind {
	for _, row := range codeOf {
		if row.code == c {
			return row.kind
		}
	}
	if k, ok := kindOfOtherCode[c]; ok {
		return k
	}
	return errs.Internal
}

// GRPCStatus is err as a gRPC status, as ProblemFor is for HTTP: the code
// from the table, the detail as the message, and an ErrorInfo with the
// stable code as its reason, the kind, the upstream if any and the trace
// ID. Internal errors keep their cause out of the message.
func GRPCStatus(ctx context.Context, err error) *status.Status {
	p := ProblemFor(ctx, err)
	meta := map[string]string{"kind": errs.KindOf(err).String()}
	if p.Upstream != "" {
		meta["upstream"] = p.Upstream
	}
	if p.TraceID != "" {
		meta["trace_id"] = p.TraceID
	}
	st := status.New(GRPCCode(err), p.Detail)
	if withInfo, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: p.Code, Domain: errorDomain, Metadata: meta}); derr == nil {
		st = withInfo
	}
	return st
}

// kindByName reads a kind back from its name.
var kindByName = func() map[string]errs.Kind {
	m := map[string]errs.Kind{}
	for _, row := range codeOf {
		m[row.kind.String()] = row.kind
	}
	return m
}()

// DecodeGRPCError turns an error returned by a gRPC call into the typed
// error the peer returned, as DecodeProblem does for HTTP. A status with
// our ErrorInfo comes back exactly (kind, code, detail, upstream); any
// other takes its kind from the table, its code from the kind. A deadline
// or cancellation keeps the context's error as its cause, so the retry
// loop knows the caller's time ran out.
func DecodeGRPCError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err // not from gRPC: one of ours already, or the codec's
	}
	if st.Code() == codes.OK {
		return nil
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != errorDomain {
			continue
		}
		kind, known := kindByName[info.GetMetadata()["kind"]]
		if !known || info.GetReason() == "" || len(info.GetReason()) > 64 {
			break
		}
		return &errs.Error{Kind: kind, Code: info.GetReason(), Detail: truncate(st.Message(), maxDetail), Upstream: truncate(info.GetMetadata()["upstream"], 64)}
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		return errs.Wrap(errs.Timeout, "timeout", fmt.Errorf("%w: %s", context.DeadlineExceeded, st.Message()), "no answer within the call's deadline")
	case codes.Canceled:
		return errs.Wrap(errs.Internal, "canceled", fmt.Errorf("%w: %s", context.Canceled, st.Message()), "the call was cancelled")
	}
	cause := errors.New(st.String())
	if st.Code() == codes.Unavailable && strings.Contains(st.Message(), "while dialing") {
		// gRPC could not open the connection: the call never left.
		cause = fmt.Errorf("%w: %s", errNeverSent, st.String())
	}
	return errs.Wrap(KindOfCode(st.Code()), "", cause, "%s", truncate(st.Message(), maxDetail))
}
