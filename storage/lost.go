package storage

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/glasshouse-dev/glasshouse/errs"
)

// Lost reports whether err, from a query or a transaction, says that the
// database went away under the service: it cannot be reached (see
// Unreachable), the connection dropped mid-query, or the server is
// shutting down or restarting. The request is not at fault and the same
// request may succeed once the database is back. A query that the server
// refused (a constraint, a syntax error, a serialization failure after
// its retries) is not lost.
func Lost(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is connection_exception; 57P01-57P03 are
		// admin_shutdown, crash_shutdown and cannot_connect_now.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03" ||
			pgErr.Code == "53300"
	}
	return Unreachable(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone)
}

// Upstream is the name a Lost database goes by in the errors callers see
// (errs.Error.Upstream).
const Upstream = "database"

// Unavailable turns an error that says the database was lost (Lost) into
// an Unavailable *errs.Error naming the database as its upstream, so that
// the caller gets a 503 and knows this instance answered correctly: its
// breaker does not count it and it does not retry elsewhere (every
// replica shares the database). Any other error is returned as it is,
// and so is one that already has a kind other than Internal.
func Unavailable(err error) error {
	if err == nil || errs.KindOf(err) != errs.Internal || !Lost(err) {
		return err
	}
	e := errs.Wrap(errs.Unavailable, "", err, "the service's database cannot be reached; try again shortly")
	e.Upstream = Upstream
	return e
}
