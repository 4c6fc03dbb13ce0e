package storage

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/glasshouse-dev/glasshouse/errs"
)

func TestLostTellsAGoneDatabaseFromARefusedQuery(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tt := range []struct {
		name string
		err  error
		lost bool
	}{
		{"nothing listening", fmt.Errorf("connect: %w", refused), true},
		{"the connection dropped mid-query", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"a connection the pool must drop", driver.ErrBadConn, true},
		{"a transaction on a closed connection", sql.ErrConnDone, true},
		{"the server shutting down", &pgconn.PgError{Code: "57P01"}, true},
		{"the server crashed", &pgconn.PgError{Code: "57P02"}, true},
		{"the server starting", &pgconn.PgError{Code: "57P03"}, true},
		{"a connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"a unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"a serialization failure", &pgconn.PgError{Code: "40001"}, false},
		{"a wrong password", &pgconn.PgError{Code: "28P01"}, false},
		{"no rows", sql.ErrNoRows, false},
		{"nil", nil, false},
	} {
		if got := Lost(tt.err); got != tt.lost {
			t.Errorf("%s: Lost(%v) = %v, want %v", tt.name, tt.err, got, tt.lost)
		}
	}
}

func TestUnavailableNamesTheDatabaseOnlyForALostOne(t *testing.T) {
	lost := fmt.Errorf("insert order: %w", io.ErrUnexpectedEOF)
	err := Unavailable(lost)
	if errs.KindOf(err) != errs.Unavailable || errs.UpstreamOf(err) != Upstream || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Unavailable(%v) = %v (kind %v, upstream %q), want unavailable from %q keeping its cause",
			lost, err, errs.KindOf(err), errs.UpstreamOf(err), Upstream)
	}
	// A typed answer keeps its kind, and any other error is left alone.
	for _, e := range []error{
		errs.E(errs.Conflict, "out_of_stock", "sold out"),
		errs.Wrap(errs.Timeout, "", io.ErrUnexpectedEOF, "too slow"),
		errors.New("a bug"),
		nil,
	} {
		if got := Unavailable(e); got != e {
			t.Errorf("Unavailable(%v) = %v, want it unchanged", e, got)
		}
	}
}
