package loadgen

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Most tests run in a synctest bubble, where time is a fake clock that
// moves only when every goroutine waits: a "200ms" server answers in no
// real time, and a request due at 10ms leaves at exactly 10ms. That makes
// the schedule and the latencies exact, and the tests fast, on any
// machine.

// runAgainst runs the generator against g in the caller's bubble, and
// checks that the report adds up.
func runAgainst(t *testing.T, ctx context.Context, g *fakeGateway, cfg Config) *Report {
	t.Helper()
	cfg.Target = "http://gateway.test"
	cfg.Client = &http.Client{Transport: inMemory{g}}
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkAddsUp(t, rep)
	return rep
}

// checkAddsUp checks that every request is counted once in every view of
// the report: overall, by operation and by second.
func checkAddsUp(t *testing.T, rep *Report) {
	t.Helper()
	if n := rep.Total.OK + rep.Total.Failed(); n != rep.Total.Requests {
		t.Errorf("%d requests sent but %d answered", rep.Total.Requests, n)
	}
	sum := func(stats ...Stats) Stats {
		var s Stats
		for _, x := range stats {
			s.Requests += x.Requests
			s.OK += x.OK
			s.Skipped += x.Skipped
			for code, n := range x.Errors {
				if s.Errors == nil {
					s.Errors = map[string]int{}
				}
				s.Errors[code] += n
			}
		}
		return s
	}
	same := func(a, b Stats) bool {
		return a.Requests == b.Requests && a.OK == b.OK && a.Skipped == b.Skipped && a.Failed() == b.Failed()
	}
	byOp := func(m map[Op]Stats) []Stats {
		var s []Stats
		for _, op := range Ops() {
			s = append(s, m[op])
		}
		return s
	}
	if s := sum(byOp(rep.ByOp)...); !same(s, rep.Total) {
		t.Errorf("operations add up to %+v, total is %+v", s, rep.Total)
	}
	var seconds []Stats
	for i, sec := range rep.Timeline {
		if sec.Start != time.Duration(i)*time.Second {
			t.Errorf("timeline[%d] starts at %s", i, sec.Start)
		}
		if s := sum(byOp(sec.ByOp)...); !same(s, sec.Total) {
			t.Errorf("second %d: operations add up to %+v, total is %+v", i, s, sec.Total)
		}
		seconds = append(seconds, sec.Total)
	}
	if s := sum(seconds...); !same(s, rep.Total) {
		t.Errorf("seconds add up to %+v, total is %+v", s, rep.Total)
	}
}

// near reports whether a latency is d within the histogram's precision.
func near(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= float64(want)/500+float64(time.Microsecond)
}

// onRoute makes the fake answer requests to route with answer; the others
// go through as usual.
func onRoute(g *fakeGateway, route string, answer func(w http.ResponseWriter, r *http.Request) bool) {
	g.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if g.route(r) != route {
			return false
		}
		return answer(w, r)
	}
}

// setupCalls is how many requests setting up n customers takes: the
// catalogue, then a sign-up and a login each.
func setupCalls(n int) int { return 1 + 2*n }

func totalCalls(g *fakeGateway) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		n += c
	}
	return n
}

func TestSendsOnScheduleWhenTheShopIsSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		g.intercept = func(http.ResponseWriter, *http.Request) bool {
			time.Sleep(200 * time.Millisecond)
			return false
		}
		rep := runAgainst(t, t.Context(), g, Config{Rate: 100, Duration: 3 * time.Second, Users: 2})

		// A closed loop would send one request per worker every 200ms; an
		// open loop sends at 100/s whatever the answers. The clock is exact
		// here, so the count must be too: 300 due, 300 sent.
		if rep.Total.Requests != 300 || rep.Total.Skipped != 0 || rep.Throughput != 100 {
			t.Errorf("sent %d, skipped %d (%v/s); want 300, 0 (100/s)", rep.Total.Requests, rep.Total.Skipped, rep.Throughput)
		}
		if got := totalCalls(g) - setupCalls(2); got != 300 {
			t.Errorf("the shop got %d requests, want 300", got)
		}
		if len(rep.Timeline) != 3 {
			t.Fatalf("timeline has %d seconds, want 3", len(rep.Timeline))
		}
		for i, sec := range rep.Timeline {
			if sec.Total.Requests != 100 {
				t.Errorf("second %d: %d requests, want 100", i, sec.Total.Requests)
			}
		}
		if l := rep.Total.Latency; !near(l.P50, 200*time.Millisecond) || !near(l.Max, 200*time.Millisecond) {
			t.Errorf("latency %+v, want 200ms throughout", l)
		}
		if rep.Total.Failed() != 0 {
			t.Errorf("errors: %v", rep.Total.Errors)
		}
	})
}

func TestAStallShowsInTheRequestsDueDuringIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		// The load's first request starts a one-second stall: nothing is
		// answered before it ends.
		var stall sync.Once
		var until time.Time
		onRoute(g, "GET /api/orders", func(http.ResponseWriter, *http.Request) bool {
			stall.Do(func() { until = time.Now().Add(time.Second) })
			time.Sleep(time.Until(until))
			return false
		})
		rep := runAgainst(t, t.Context(), g, Config{Rate: 100, Duration: 2 * time.Second, Mix: Mix{Orders: 1}})

		// The 100 requests due in the stall waited 1000ms, 990ms, ... 10ms;
		// the 100 after it, nothing. A closed loop would have sent one
		// request per worker during the stall and found a p90 of zero.
		during, after := rep.Timeline[0].Total, rep.Timeline[1].Total
		if during.Requests != 100 || !near(during.Latency.Max, time.Second) || !near(during.Latency.P50, 500*time.Millisecond) || !near(during.Latency.P99, 990*time.Millisecond) {
			t.Errorf("second 0 (the stall): %d requests, latency %+v; want 100, max 1s, p50 500ms, p99 990ms", during.Requests, during.Latency)
		}
		if after.Requests != 100 || after.Latency.Max != 0 {
			t.Errorf("second 1: %d requests, latency %+v; want 100 answered at once", after.Requests, after.Latency)
		}
		if l := rep.Total.Latency; !near(l.P90, 800*time.Millisecond) || !near(l.P99, 980*time.Millisecond) || l.P50 != 0 {
			t.Errorf("run latency %+v; want p50 0, p90 800ms, p99 980ms", l)
		}
	})
}

func TestLateRequestsCountTheirDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The schedule began 300ms ago, as if the generator had been
		// paused: the 30 overdue requests leave at once, each counting
		// from when it was due, and the rest leave on time.
		cfg, err := Config{Target: "http://gateway.test", Rate: 100, Duration: time.Second, Mix: Mix{Browse: 1}}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		answerAtOnce := func(context.Context, Op) error { return nil }
		rep := generate(t.Context(), cfg, time.Now().Add(-300*time.Millisecond), answerAtOnce)

		if rep.Total.Requests != 100 || rep.Total.Skipped != 0 {
			t.Errorf("sent %d, skipped %d; want all 100 sent", rep.Total.Requests, rep.Total.Skipped)
		}
		// Sorted, the latencies are 70 zeros, then 10ms, 20ms, ... 300ms.
		if l := rep.Total.Latency; !near(l.Max, 300*time.Millisecond) || !near(l.P99, 290*time.Millisecond) || !near(l.P90, 200*time.Millisecond) {
			t.Errorf("latency %+v; want p90 200ms, p99 290ms, max 300ms", l)
		}
	})
}

func TestSkipsWhatWouldExceedTheCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		onRoute(g, "GET /api/orders", func(http.ResponseWriter, *http.Request) bool {
			time.Sleep(95 * time.Millisecond)
			return false
		})
		rep := runAgainst(t, t.Context(), g, Config{Rate: 100, Duration: time.Second, MaxInFlight: 5, Mix: Mix{Orders: 1}})

		// Every 100ms: the requests due at 0, 10, ... 40ms fill the five
		// slots, those due at 50 ... 90ms find them full and are skipped,
		// and the slots are free again at 95 ... 135ms.
		if rep.Total.Requests != 50 || rep.Total.Skipped != 50 || rep.ByOp[Orders].Skipped != 50 {
			t.Errorf("sent %d, skipped %d (orders %d); want 50 and 50", rep.Total.Requests, rep.Total.Skipped, rep.ByOp[Orders].Skipped)
		}
		if got := g.count("GET /api/orders"); got != 50 {
			t.Errorf("the shop got %d requests, want 50", got)
		}
		g.mu.Lock()
		maxInFlight := g.maxInFlight
		g.mu.Unlock()
		if maxInFlight > 5 {
			t.Errorf("the shop served %d requests at once, want at most 5", maxInFlight)
		}
		// No request was held back until a slot was free: each waited only
		// for the shop.
		if l := rep.Total.Latency; !near(l.Max, 95*time.Millisecond) {
			t.Errorf("latency %+v; want 95ms throughout", l)
		}
	})
}

func TestCountsErrorsByCodeWithTraces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		var mu sync.Mutex
		failed := map[string][]string{} // trace IDs the shop gave failures, by code
		fail := func(w http.ResponseWriter, code string) {
			mu.Lock()
			defer mu.Unlock()
			failed[code] = append(failed[code], w.Header().Get("X-Trace-Id"))
		}
		g.intercept = func(w http.ResponseWriter, r *http.Request) bool {
			switch g.route(r) {
			case "POST /api/orders":
				fail(w, "card_declined")
				writeProblem(w, http.StatusPaymentRequired, "card_declined")
				return true
			case "GET /api/orders":
				fail(w, "http_503") // an answer that is not problem+json, as from a proxy
				http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
				return true
			case "GET /api/products/{sku}":
				// Hang past the client's timeout, until the client gives up.
				<-r.Context().Done()
				return true
			}
			return false
		}
		rep := runAgainst(t, t.Context(), g, Config{Rate: 200, Duration: 2 * time.Second, Timeout: time.Second})

		checkouts, orders, browse, logins := rep.ByOp[Checkout], rep.ByOp[Orders], rep.ByOp[Browse], rep.ByOp[Login]
		if checkouts.Requests == 0 || checkouts.Errors["card_declined"] != checkouts.Requests {
			t.Errorf("checkout: %d sent, errors %v; want all card_declined", checkouts.Requests, checkouts.Errors)
		}
		if orders.Requests == 0 || orders.Errors["http_503"] != orders.Requests {
			t.Errorf("orders: %d sent, errors %v; want all http_503", orders.Requests, orders.Errors)
		}
		timedOut := g.count("GET /api/products/{sku}")
		if timedOut == 0 || browse.Errors[CodeTransport] != timedOut || browse.OK != g.count("GET /api/products")-1+g.count("GET /api/products/{sku}/recommendations") {
			t.Errorf("browse: %d ok, errors %v; want %d transport errors, the rest ok", browse.OK, browse.Errors, timedOut)
		}
		if !near(browse.Latency.Max, time.Second) {
			t.Errorf("browse latency %+v; want a max of 1s, the timeout", browse.Latency)
		}
		if logins.Requests == 0 || logins.OK != logins.Requests {
			t.Errorf("login: %d sent, %d ok; want all ok", logins.Requests, logins.OK)
		}
		if want := checkouts.Requests + orders.Requests + timedOut; rep.Total.Failed() != want || len(rep.Total.Errors) != 3 {
			t.Errorf("errors %v; want %d in three codes", rep.Total.Errors, want)
		}

		for _, code := range []string{"card_declined", "http_503"} {
			got := rep.ErrorTraces[code]
			if len(got) != tracesPerCode {
				t.Errorf("%s: %d traces, want %d", code, len(got), tracesPerCode)
			}
			for _, id := range got {
				if !slices.Contains(failed[code], id) {
					t.Errorf("%s: trace %s is not one of a request that failed so", code, id)
				}
			}
		}
		if got := rep.ErrorTraces[CodeTransport]; len(got) != 0 {
			t.Errorf("transport errors have traces %v; a request with no answer has none", got)
		}
	})
}

func TestTheMixIsRespected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		const users = 10
		rep := runAgainst(t, t.Context(), g, Config{Rate: 1000, Duration: 3 * time.Second, Users: users})

		// The fake refuses any misuse of the API with its problem code, so
		// no error means: tokens, cards, Idempotency-Keys, baskets and order
		// IDs were all as the API wants them.
		if rep.Total.Failed() != 0 {
			t.Fatalf("errors: %v", rep.Total.Errors)
		}
		mix, n := DefaultMix(), float64(rep.Total.Requests)
		for _, op := range Ops() {
			share, want := float64(rep.ByOp[op].Requests)/n, float64(mix[op])/100
			// One standard deviation of a 60 % share in 3,000 requests is
			// 0.9 points; 4 points is 4.5 of them (3 points was 3.4, and
			// failed about once in 1,500 runs).
			if math.Abs(share-want) > 0.04 {
				t.Errorf("%s: %.1f%% of requests, want %.0f%%", op, 100*share, 100*want)
			}
		}

		// Each operation is the calls it should be.
		browse := g.count("GET /api/products") - 1 + g.count("GET /api/products/{sku}") + g.count("GET /api/products/{sku}/recommendations")
		orders := g.count("GET /api/orders") + g.count("GET /api/orders/{id}")
		for op, calls := range map[Op]int{
			Browse:   browse,
			Login:    g.count("POST /api/login") - users,
			Checkout: g.count("POST /api/orders"),
			Orders:   orders,
		} {
			if rep.ByOp[op].Requests != calls {
				t.Errorf("%s: %d requests, but the shop got %d calls for it", op, rep.ByOp[op].Requests, calls)
			}
		}
		// Both kinds of each operation happen.
		for _, route := range []string{"GET /api/products", "GET /api/products/{sku}", "GET /api/products/{sku}/recommendations", "GET /api/orders", "GET /api/orders/{id}"} {
			if g.count(route) == 0 {
				t.Errorf("no %s", route)
			}
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.basketSizes[1] == 0 || g.basketSizes[2] == 0 {
			t.Errorf("orders by number of items: %v; want some of one and some of two", g.basketSizes)
		}
		if g.sold["GH-LAMP-01"] != 0 {
			t.Errorf("sold %d of the 3 lamps; the load must leave scarce products alone", g.sold["GH-LAMP-01"])
		}
	})
}

func TestOperationsOutOfTheMixAreNeverSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		rep := runAgainst(t, t.Context(), g, Config{Rate: 100, Duration: time.Second, Users: 3, Mix: Mix{Browse: 3, Checkout: 1}})
		if rep.ByOp[Login].Requests != 0 || rep.ByOp[Orders].Requests != 0 || rep.ByOp[Browse].Requests+rep.ByOp[Checkout].Requests != 100 {
			t.Errorf("requests by operation: %+v; want only browse and checkout", rep.ByOp)
		}
		if g.count("POST /api/login") != 3 || g.count("GET /api/orders") != 0 {
			t.Errorf("the shop got %d logins and %d order lists; want the setup's 3 and none", g.count("POST /api/login"), g.count("GET /api/orders"))
		}
	})
}

func TestSetUpSignsUpAndLogsInEveryCustomer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		for run := 1; run <= 2; run++ {
			// No login operation: every login the shop sees is the setup's.
			rep := runAgainst(t, t.Context(), g, Config{Rate: 200, Duration: 2 * time.Second, Users: 7, Mix: Mix{Checkout: 1, Orders: 1}})
			if rep.Total.Failed() != 0 {
				t.Fatalf("run %d: errors %v", run, rep.Total.Errors)
			}

			g.mu.Lock()
			// A second run on the same shop signs up customers of its own.
			if len(g.passwords) != 7*run {
				t.Errorf("run %d: %d accounts, want %d", run, len(g.passwords), 7*run)
			}
			for email, n := range g.logins {
				if n != 1 {
					t.Errorf("run %d: %s logged in %d times, want once", run, email, n)
				}
			}
			// Requests go to customers at random: over 400 requests each
			// of the 7 is all but sure to make some.
			if len(g.byCustomer) != 7*run {
				t.Errorf("run %d: %d customers made requests, want %d", run, len(g.byCustomer), 7*run)
			}
			g.mu.Unlock()
		}
	})
}

func TestCustomersLogInInTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		// 100 logins over 4 customers: 25 each, plus the setup's one.
		// Drawn at random, all four would be even about one run in 1000.
		const users = 4
		rep := runAgainst(t, t.Context(), g, Config{Rate: 100, Duration: time.Second, Users: users, Mix: Mix{Login: 1}})
		if rep.Total.Failed() != 0 || rep.ByOp[Login].Requests != 100 {
			t.Fatalf("logins: %+v", rep.ByOp[Login])
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.logins) != users {
			t.Fatalf("%d customers logged in, want %d", len(g.logins), users)
		}
		for email, n := range g.logins {
			if n != 1+100/users {
				t.Errorf("%s logged in %d times, want %d: customers take turns", email, n, 1+100/users)
			}
		}
	})
}

func TestSetUpFailuresAreErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shop  func(g *fakeGateway)
		mix   Mix
		error string
	}{{
		name: "sign-up refused",
		shop: func(g *fakeGateway) {
			onRoute(g, "POST /api/users", func(w http.ResponseWriter, _ *http.Request) bool {
				writeProblem(w, http.StatusServiceUnavailable, "unavailable")
				return true
			})
		},
		error: "POST /api/users: 503 unavailable (trace ",
	}, {
		name: "login refused",
		shop: func(g *fakeGateway) {
			onRoute(g, "POST /api/login", func(w http.ResponseWriter, _ *http.Request) bool {
				writeProblem(w, http.StatusUnauthorized, "invalid_credentials")
				return true
			})
		},
		error: "POST /api/login: 401 invalid_credentials",
	}, {
		name: "login without a token",
		shop: func(g *fakeGateway) {
			onRoute(g, "POST /api/login", func(w http.ResponseWriter, _ *http.Request) bool {
				writeJSON(w, http.StatusOK, map[string]string{"expires_at": "2030-01-01T00:00:00Z"})
				return true
			})
		},
		error: "invalid_response",
	}, {
		name: "nothing left to buy",
		shop: func(g *fakeGateway) {
			for sku := range g.stock {
				g.stock[sku] = minStock - 1
			}
		},
		error: "no product has 10 units left to buy",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newFakeGateway()
				tc.shop(g)
				rep, err := Run(t.Context(), Config{
					Target: "http://gateway.test", Client: &http.Client{Transport: inMemory{g}},
					Rate: 100, Duration: time.Second,
				})
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("Run: %v, want an error with %q", err, tc.error)
				}
				if rep != nil {
					t.Errorf("a failed setup returned a report")
				}
			})
		})
	}
}

func TestCancellingStopsEarlyAndReportsTheRunSoFar(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		onRoute(g, "GET /api/orders", func(http.ResponseWriter, *http.Request) bool {
			time.Sleep(100 * time.Millisecond)
			return false
		})
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 505*time.Millisecond)
		defer cancel()
		rep := runAgainst(t, ctx, g, Config{Rate: 100, Duration: 10 * time.Second, Mix: Mix{Orders: 1}})

		if !rep.Started.Equal(start) {
			t.Fatalf("the load started at %s, want at once: this test assumes the setup takes no time", rep.Started.Sub(start))
		}
		// Due at 0, 10, ... 500ms: 51 requests, the last ten still in flight
		// at the cancel. They are answered, not abandoned.
		if !rep.Interrupted || rep.Duration != 505*time.Millisecond {
			t.Errorf("interrupted %v after %s; want true after 505ms", rep.Interrupted, rep.Duration)
		}
		if rep.Total.Requests != 51 || rep.Total.OK != 51 || g.count("GET /api/orders") != 51 {
			t.Errorf("sent %d, ok %d, the shop got %d; want 51 each", rep.Total.Requests, rep.Total.OK, g.count("GET /api/orders"))
		}
		if len(rep.Timeline) != 1 {
			t.Errorf("timeline of %d seconds, want 1", len(rep.Timeline))
		}
	})
}

func TestProgressLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		g.intercept = func(http.ResponseWriter, *http.Request) bool {
			time.Sleep(3 * time.Millisecond)
			return false
		}
		// Lines every 1005ms, off the 20ms schedule, so that no request is
		// due just as a line is written.
		var out bytes.Buffer
		runAgainst(t, t.Context(), g, Config{Rate: 50, Duration: 3 * time.Second, Progress: &out, ProgressEvery: 1005 * time.Millisecond})

		// At 1005ms, 51 requests were sent (0 ... 1000ms) and answered; at
		// 2010ms, 50 more. The run ends at 2983ms, before a third line.
		want := "   1s  rate 50.7/s  ok 51  err 0  skipped 0  in-flight 0  p99 3ms\n" +
			"   2s  rate 49.8/s  ok 101  err 0  skipped 0  in-flight 0  p99 3ms\n"
		if out.String() != want {
			t.Errorf("progress:\n%s\nwant:\n%s", out.String(), want)
		}
	})
}

// TestOverRealHTTP runs a short load over a real HTTP server and the
// default client, in real time. The request count is exact even so: an
// open loop sends every request it schedules, late or not.
func TestOverRealHTTP(t *testing.T) {
	g := newFakeGateway()
	srv := httptest.NewServer(g)
	defer srv.Close()

	rep, err := Run(t.Context(), Config{Target: srv.URL, Rate: 200, Duration: 500 * time.Millisecond, Users: 3})
	if err != nil {
		t.Fatal(err)
	}
	checkAddsUp(t, rep)
	if rep.Total.Requests+rep.Total.Skipped != 100 || rep.Total.Failed() != 0 {
		t.Errorf("sent %d, skipped %d, errors %v; want 100 sent, no errors", rep.Total.Requests, rep.Total.Skipped, rep.Total.Errors)
	}
	if got := totalCalls(g) - setupCalls(3); got != rep.Total.Requests {
		t.Errorf("the shop got %d requests, the report says %d", got, rep.Total.Requests)
	}
}

func TestConfigIsChecked(t *testing.T) {
	ok := Config{Target: "http://127.0.0.1:1", Rate: 1, Duration: time.Second}
	for name, change := range map[string]func(*Config){
		"no target":         func(c *Config) { c.Target = "" },
		"target not a URL":  func(c *Config) { c.Target = "127.0.0.1:8080" },
		"no rate":           func(c *Config) { c.Rate = 0 },
		"negative duration": func(c *Config) { c.Duration = -time.Second },
		"negative users":    func(c *Config) { c.Users = -1 },
		"negative items":    func(c *Config) { c.Items = -1 },
		"negative conns":    func(c *Config) { c.Connections = -1 },
		"an empty mix":      func(c *Config) { c.Mix = Mix{Browse: 0} },
	} {
		cfg := ok
		change(&cfg)
		// Nothing listens on the target: an error about it would mean Run
		// went ahead instead of refusing the config.
		if _, err := Run(t.Context(), cfg); err == nil || strings.Contains(err.Error(), "setup") {
			t.Errorf("%s: Run gave %v, want the config refused", name, err)
		}
	}
}

// A closed loop keeps exactly Connections requests in flight and sends
// the next one when one is answered: against a shop that answers in
// 10ms, 4 connections for a second make 400 requests, at most 4 at once,
// each timed from when it was sent.
func TestAClosedLoopKeepsItsConnectionsBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGateway()
		onRoute(g, "POST /api/orders", func(w http.ResponseWriter, r *http.Request) bool {
			time.Sleep(10 * time.Millisecond)
			return false
		})
		rep := runAgainst(t, t.Context(), g, Config{
			Connections: 4, Duration: time.Second, Users: 1, Mix: Mix{Checkout: 1}, Items: 1,
		})
		if rep.Total.Requests != 400 || rep.Total.OK != 400 || rep.Total.Skipped != 0 {
			t.Errorf("sent %d, ok %d, skipped %d; want 400 sent and answered", rep.Total.Requests, rep.Total.OK, rep.Total.Skipped)
		}
		if rep.Throughput != 400 || rep.Connections != 4 || rep.Rate != 0 {
			t.Errorf("throughput %g/s over %d connections (rate %g); want 400/s over 4", rep.Throughput, rep.Connections, rep.Rate)
		}
		if l := rep.ByOp[Checkout].Latency; !near(l.P50, 10*time.Millisecond) || !near(l.Max, 10*time.Millisecond) {
			t.Errorf("checkout latency %+v; want 10ms each", l)
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.maxInFlight != 4 {
			t.Errorf("at most %d requests in flight; want 4", g.maxInFlight)
		}
		if g.basketSizes[1] != 400 || len(g.basketSizes) != 1 {
			t.Errorf("baskets by size %v; want 400 of one item", g.basketSizes)
		}
		var out bytes.Buffer
		rep.WriteText(&out)
		if !strings.Contains(out.String(), "closed loop over 4 connections") {
			t.Errorf("the summary does not say it was a closed loop:\n%s", out.String())
		}
	})
}
