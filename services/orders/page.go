package orders

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
)

// A cursor names the last order of a page by its sort key (creation time
// in unix milliseconds, then ID), so the next page starts right after it
// however many orders were placed in between: keyset pagination, which
// neither skips nor repeats an order and costs one index seek per page,
// where an OFFSET would rescan every earlier page.
//
// On the wire it is opaque (URL-safe base64 of "millis:id"): clients pass
// it back untouched, and the service may change what is inside.
type cursor struct {
	createdAt time.Time
	orderID   string
}

// maxCursorLen bounds a cursor before it is decoded; one this service
// issues is under 120 bytes.
const maxCursorLen = 128

func (c cursor) String() string {
	raw := strconv.FormatInt(c.createdAt.UnixMilli(), 10) + ":" + c.orderID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// parseCursor decodes a cursor from a client, refusing anything this
// service could not have issued (Invalid invalid_cursor). The detail never
// echoes the cursor: it is opaque to the client, so quoting it helps no
// one.
func parseCursor(s string) (cursor, error) {
	bad := func(why string) (cursor, error) {
		return cursor{}, errs.E(errs.Invalid, CodeInvalidCursor, "cursor is not one this service issued (%s): pass back next_cursor unchanged, or omit it for the first page", why)
	}
	if len(s) > maxCursorLen {
		return bad("too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad("not base64url")
	}
	millis, id, ok := strings.Cut(string(raw), ":")
	if !ok {
		return bad("no separator")
	}
	ms, err := strconv.ParseInt(millis, 10, 64)
	if err != nil || ms < 0 {
		return bad("bad time")
	}
	if !ident.Valid(id) {
		return bad("bad order id")
	}
	return cursor{createdAt: time.UnixMilli(ms).UTC(), orderID: id}, nil
}

// checkLimit applies the page size rule: 0 is the default, 1 to
// MaxPageLimit is taken as asked, anything else is Invalid invalid_limit.
func checkLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultPageLimit, nil
	case limit < 0 || limit > MaxPageLimit:
		return 0, errs.E(errs.Invalid, CodeInvalidLimit, "limit must be 1 to %d orders, got %d", MaxPageLimit, limit)
	}
	return limit, nil
}

// ParsePage reads a page request from the query parameters of
// GET /orders (limit, cursor), as the orders service and the gateway
// both decode them: a limit that is not a whole number from 1 to
// MaxPageLimit is Invalid invalid_limit, a malformed cursor Invalid
// invalid_cursor. Absent parameters mean the first page of
// DefaultPageLimit orders.
func ParsePage(limit, cursor string) (Page, error) {
	var p Page
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 {
			return Page{}, errs.E(errs.Invalid, CodeInvalidLimit, "limit must be a whole number from 1 to %d, got %s", MaxPageLimit, ident.Quote(limit))
		}
		if _, err := checkLimit(n); err != nil {
			return Page{}, err
		}
		p.Limit = n
	}
	if cursor != "" {
		if _, err := parseCursor(cursor); err != nil {
			return Page{}, err
		}
		p.Cursor = cursor
	}
	return p, nil
}
