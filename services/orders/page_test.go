package orders

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/errs"
	"github.com/glasshouse-dev/glasshouse/ident"
	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// pagedWorld is an orders store on backend b with n orders of user u1
// (and a few of u2 between them), its queries traced into rec so a test
// can count them.
func pagedWorld(t testing.TB, b testenv.Backend, n int) (Service, *tracetest.SpanRecorder) {
	t.Helper()
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	store := testenv.OpenStoreOn(t, b, OpenStore, tp)
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		// Three orders share each millisecond, so the page boundaries
		// fall inside ties and the ID must break them.
		at := start.Add(time.Duration(i/3) * time.Millisecond)
		user := "u1"
		if i%10 == 9 {
			user = "u2"
		}
		_, created, err := store.create(ctx, record{
			Order: Order{
				ID: fmt.Sprintf("ord_%04d", (i*7919)%10000), UserID: user, Status: Confirmed, TotalCents: 1200, Currency: "EUR",
				Items:     []Line{{SKU: "MUG", Quantity: 1, UnitPriceCents: 1200}, {SKU: fmt.Sprintf("SKU-%d", i), Quantity: 2, UnitPriceCents: 0}},
				CreatedAt: at,
			},
			IdempotencyKey: fmt.Sprint("k", i), RequestHash: "h", Step: StepDone, UpdatedAt: at,
		})
		if err != nil || !created {
			t.Fatalf("create order %d: %v, %v", i, created, err)
		}
	}
	return NewService(store, nil, nil, Options{}), rec
}

// queries counts the SQL queries among the spans recorded since from.
func queries(rec *tracetest.SpanRecorder, from int) int {
	n := 0
	for _, s := range rec.Ended()[from:] {
		if strings.Contains(s.Name(), "query") {
			n++
		}
	}
	return n
}

func TestListOrdersPagesWithoutGapsOrRepeats(t *testing.T) {
	testenv.OnEachBackend(t, testListOrdersPagesWithoutGapsOrRepeats)
}

func testListOrdersPagesWithoutGapsOrRepeats(t *testing.T, b testenv.Backend) {
	// 277 orders, 27 of them (one in ten) another user's: 250 are u1's.
	saga, rec := pagedWorld(t, b, 277)
	// Within a request's trace, as the endpoint calls it: queries outside
	// any trace make no span to count.
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))

	var (
		seen   = map[string]bool{}
		all    []Order
		sizes  []int
		cursor string
	)
	for range 10 {
		before := len(rec.Ended())
		page, err := saga.ListOrders(ctx, "u1", Page{Limit: 100, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		// One query for the page's orders and one for all their items,
		// however many orders the page holds.
		if n := queries(rec, before); n != 2 {
			t.Errorf("page %d took %d queries; want 2 (orders, then their items)", len(sizes)+1, n)
		}
		sizes = append(sizes, len(page.Orders))
		for _, o := range page.Orders {
			if o.UserID != "u1" {
				t.Fatalf("u1's page holds %s of %s", o.ID, o.UserID)
			}
			if seen[o.ID] {
				t.Fatalf("order %s is on two pages", o.ID)
			}
			if len(o.Items) != 2 || o.Items[0].SKU != "MUG" {
				t.Fatalf("order %s has items %+v; want its own two lines", o.ID, o.Items)
			}
			seen[o.ID] = true
			all = append(all, o)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if fmt.Sprint(sizes) != "[100 100 50]" {
		t.Errorf("page sizes %v; want [100 100 50]", sizes)
	}
	// Newest first, ties by ID: a total order, so nothing is skipped at a
	// page boundary.
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.CreatedAt.Before(b.CreatedAt) || a.CreatedAt.Equal(b.CreatedAt) && a.ID >= b.ID {
			t.Fatalf("orders %d and %d are out of order: %s@%s then %s@%s", i-1, i, a.ID, a.CreatedAt, b.ID, b.CreatedAt)
		}
	}
	// The same walk again gives the same pages: the order is stable.
	again, err := saga.ListOrders(ctx, "u1", Page{Limit: 100})
	if err != nil || again.Orders[99].ID != all[99].ID {
		t.Errorf("first page again ends with %v (%v); want %s", again.Orders[99].ID, err, all[99].ID)
	}
}

func TestListOrdersDefaultsAndLimits(t *testing.T) {
	testenv.OnEachBackend(t, testListOrdersDefaultsAndLimits)
}

func testListOrdersDefaultsAndLimits(t *testing.T, b testenv.Backend) {
	saga, _ := pagedWorld(t, b, 30)
	ctx := context.Background()

	page, err := saga.ListOrders(ctx, "u1", Page{})
	if err != nil || len(page.Orders) != DefaultPageLimit || page.NextCursor == "" {
		t.Errorf("default page = %d orders, next %q, %v; want %d and a cursor", len(page.Orders), page.NextCursor, err, DefaultPageLimit)
	}
	// Exactly one full page: no cursor to an empty page.
	page, err = saga.ListOrders(ctx, "u1", Page{Limit: 27})
	if err != nil || len(page.Orders) != 27 || page.NextCursor != "" {
		t.Errorf("page of all 27 = %d orders, next %q, %v; want 27 and no cursor", len(page.Orders), page.NextCursor, err)
	}
	if page, err := saga.ListOrders(ctx, "nobody", Page{}); err != nil || len(page.Orders) != 0 || page.NextCursor != "" {
		t.Errorf("a user without orders: %+v, %v", page, err)
	}

	forged := func(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }
	for _, tt := range []struct {
		name string
		page Page
		code string
	}{
		{"negative limit", Page{Limit: -1}, CodeInvalidLimit},
		{"limit above the maximum", Page{Limit: MaxPageLimit + 1}, CodeInvalidLimit},
		{"cursor not base64", Page{Cursor: "%%%"}, CodeInvalidCursor},
		{"cursor without separator", Page{Cursor: forged("12345")}, CodeInvalidCursor},
		{"cursor with a bad time", Page{Cursor: forged("-5:ord_1")}, CodeInvalidCursor},
		{"cursor with a bad order id", Page{Cursor: forged("5:../etc")}, CodeInvalidCursor},
		{"huge cursor", Page{Cursor: strings.Repeat("A", 10_000)}, CodeInvalidCursor},
	} {
		_, err := saga.ListOrders(ctx, "u1", tt.page)
		if errs.KindOf(err) != errs.Invalid || errs.CodeOf(err) != tt.code {
			t.Errorf("%s: %v; want invalid/%s", tt.name, err, tt.code)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("%s: an error of %d bytes", tt.name, len(err.Error()))
		}
	}
	if _, err := saga.ListOrders(ctx, "../u1", Page{}); errs.CodeOf(err) != CodeInvalidUserID {
		t.Errorf("a malformed user id: %v; want invalid_user_id", err)
	}
}

func TestParsePage(t *testing.T) {
	valid := cursor{createdAt: time.UnixMilli(1_700_000_000_000).UTC(), orderID: "ord_1"}.String()
	for _, tt := range []struct {
		limit, cursor string
		want          Page
		code          string
	}{
		{"", "", Page{}, ""},
		{"1", "", Page{Limit: 1}, ""},
		{"100", valid, Page{Limit: 100, Cursor: valid}, ""},
		{"0", "", Page{}, CodeInvalidLimit},
		{"101", "", Page{}, CodeInvalidLimit},
		{"-3", "", Page{}, CodeInvalidLimit},
		{"1e2", "", Page{}, CodeInvalidLimit},
		{" 5", "", Page{}, CodeInvalidLimit},
		{strings.Repeat("9", 40), "", Page{}, CodeInvalidLimit},
		{"", "x y", Page{}, CodeInvalidCursor},
	} {
		got, err := ParsePage(tt.limit, tt.cursor)
		if errs.CodeOf(err) != tt.code || got != tt.want {
			t.Errorf("ParsePage(%.20q, %q) = %+v, %v; want %+v, code %q", tt.limit, tt.cursor, got, err, tt.want, tt.code)
		}
	}
}

// FuzzParsePage: no query string crashes the decoder, whatever it
// accepts is within the rules, and every cursor it accepts names a valid
// position that survives encoding.
func FuzzParsePage(f *testing.F) {
	valid := cursor{createdAt: time.UnixMilli(1_700_000_000_000).UTC(), orderID: "ord_1"}.String()
	for _, seed := range [][2]string{{"", ""}, {"20", valid}, {"0", ""}, {"101", "%%%"}, {"-1", "MTIzNDU"}, {"1", "NTouLi9ldGM"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, limit, cur string) {
		p, err := ParsePage(limit, cur)
		if err != nil {
			if code := errs.CodeOf(err); code != CodeInvalidLimit && code != CodeInvalidCursor || len(err.Error()) > 300 {
				t.Fatalf("ParsePage(%q, %q) = %v", limit, cur, err)
			}
			return
		}
		if p.Limit < 0 || p.Limit > MaxPageLimit {
			t.Fatalf("ParsePage(%q, %q) accepted limit %d", limit, cur, p.Limit)
		}
		if p.Cursor != "" {
			// Cursors need not be canonical ("05:" is "5:"), but one that
			// is accepted always names a position a query can use.
			c, err := parseCursor(p.Cursor)
			if err != nil || !ident.Valid(c.orderID) || c.createdAt.UnixMilli() < 0 {
				t.Fatalf("accepted cursor %q names %+v (%v)", p.Cursor, c, err)
			}
			if back, err := parseCursor(c.String()); err != nil || back != c {
				t.Fatalf("cursor %+v does not survive encoding: %+v, %v", c, back, err)
			}
		}
	})
}

// BenchmarkListOrdersPage compares the first page of 100 with one deep in
// 5,000 orders: with keyset paging the two should cost about the same.
func BenchmarkListOrdersPage(b *testing.B) {
	saga, _ := pagedWorld(b, testenv.SQLite, 5000)
	ctx := context.Background()
	deep := Page{Limit: 100}
	for range 40 {
		page, err := saga.ListOrders(ctx, "u1", deep)
		if err != nil {
			b.Fatal(err)
		}
		deep.Cursor = page.NextCursor
	}
	for _, bc := range []struct {
		name string
		page Page
	}{{"first", Page{Limit: 100}}, {"deep", deep}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if page, err := saga.ListOrders(ctx, "u1", bc.page); err != nil || len(page.Orders) != 100 {
					b.Fatalf("page = %d orders, %v", len(page.Orders), err)
				}
			}
		})
	}
}
