package chaos

import (
	"math"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
)

func TestCountTalliesTheSecondsAWindowOverlaps(t *testing.T) {
	tl := shop(10).
		fail(3, 4, loadgen.Checkout, 2, "unavailable").
		fail(5, 6, loadgen.Checkout, 1, "out_of_stock").
		slow(4, 5, loadgen.Browse, 300*time.Millisecond).
		report().Timeline
	tl[6].ByOp[loadgen.Browse] = loadgen.Stats{Requests: 20, OK: 20, Skipped: 4}

	tests := []struct {
		name     string
		op       loadgen.Op
		w        Window
		due      int
		failed   int
		business int
		worstP99 time.Duration
	}{
		{"a second half in the window counts", loadgen.Checkout, Window{3500 * time.Millisecond, 4 * time.Second}, 8, 2, 0, 20 * time.Millisecond},
		{"the window's end is exclusive", loadgen.Checkout, Window{0, 3 * time.Second}, 24, 0, 0, 20 * time.Millisecond},
		{"business answers are not failures", loadgen.Checkout, Window{5 * time.Second, 6 * time.Second}, 8, 0, 1, 20 * time.Millisecond},
		{"skipped requests are due but unserved", loadgen.Browse, Window{6 * time.Second, 7 * time.Second}, 24, 0, 0, 0},
		{"worst second's p99", loadgen.Browse, Window{0, 10 * time.Second}, 240, 0, 0, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Count(tl, tt.op, tt.w)
			if got.Due() != tt.due || got.Failed != tt.failed || got.Business != tt.business || got.WorstP99 != tt.worstP99 {
				t.Errorf("Count = due %d, failed %d, business %d, worst p99 %s; want %d, %d, %d, %s",
					got.Due(), got.Failed, got.Business, got.WorstP99, tt.due, tt.failed, tt.business, tt.worstP99)
			}
		})
	}
	skipped := Count(tl, loadgen.Browse, Window{6 * time.Second, 7 * time.Second})
	if skipped.Unserved() != 4 || math.Abs(skipped.ErrorRatio()-4.0/24) > 1e-9 {
		t.Errorf("skipped: unserved %d, ratio %v; want 4, 1/6", skipped.Unserved(), skipped.ErrorRatio())
	}
	all := Count(tl, "", Window{3 * time.Second, 4 * time.Second})
	if all.Due() != 40 || all.Failed != 2 || !all.FailedOnly("unavailable") || all.FailedOnly("internal") {
		t.Errorf("all operations: %+v", all)
	}
}

func TestRecoveredAtIsTheStartOfTheLastUnbrokenRunOfGoodSeconds(t *testing.T) {
	tests := []struct {
		name  string
		tl    *synth
		from  time.Duration
		at    time.Duration
		found bool
	}{
		{"never broken", shop(10), 2 * time.Second, 2 * time.Second, true},
		{"recovers at 6s", shop(10).fail(2, 6, loadgen.Checkout, 8, "unavailable"), 3 * time.Second, 6 * time.Second, true},
		{"a relapse moves it", shop(10).fail(2, 5, loadgen.Checkout, 8, "unavailable").fail(7, 8, loadgen.Checkout, 1, "unavailable"),
			3 * time.Second, 8 * time.Second, true},
		{"the second with from in it counts", shop(10).fail(2, 4, loadgen.Checkout, 8, "unavailable"), 3500 * time.Millisecond, 4 * time.Second, true},
		{"failing to the end", shop(10).fail(2, 10, loadgen.Checkout, 1, "unavailable"), 3 * time.Second, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, found := RecoveredAt(tt.tl.report().Timeline, loadgen.Checkout, tt.from, 1)
			if at != tt.at || found != tt.found {
				t.Errorf("RecoveredAt = %s, %v; want %s, %v", at, found, tt.at, tt.found)
			}
		})
	}
}

func TestSeries(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	s := &Series{Points: []Point{{ms(0), 2}, {ms(200), 2}, {ms(400), 1}, {ms(600), 2}, {ms(800), 1}, {ms(1000), 1}, {ms(1200), 2}}}
	if at, ok := s.FirstAt(ms(300), func(v float64) bool { return v <= 1 }); !ok || at != ms(400) {
		t.Errorf("FirstAt = %s, %v; want 400ms", at, ok)
	}
	if at, ok := s.SettledAt(ms(100), func(v float64) bool { return v <= 1 }); ok {
		t.Errorf("SettledAt = %s, want none: the last point is 2", at)
	}
	if at, ok := s.SettledAt(ms(100), func(v float64) bool { return v >= 1 }); !ok || at != ms(200) {
		t.Errorf("SettledAt = %s, %v; want 200ms", at, ok)
	}
	if m, ok := s.Max(Window{ms(300), ms(1100)}); !ok || m != 2 {
		t.Errorf("Max = %v, %v", m, ok)
	}
	if v, ok := s.Last(Window{0, ms(1100)}); !ok || v != 1 {
		t.Errorf("Last = %v, %v", v, ok)
	}
	var missing *Series
	if _, ok := missing.FirstAt(0, func(float64) bool { return true }); ok {
		t.Error("a missing series has points")
	}

	counter := &Series{Points: []Point{{ms(0), 10}, {ms(200), 15}, {ms(400), 30}, {ms(600), 4}, {ms(800), 9}}}
	if got := counter.Increase(Window{ms(100), ms(700)}); got != 5+15+4 {
		t.Errorf("Increase across a restart = %v, want 24", got)
	}
	if got := counter.Increase(Window{ms(700), ms(2000)}); got != 5 {
		t.Errorf("Increase = %v, want 5", got)
	}
}

func TestLatencyPercentile(t *testing.T) {
	var reqs []Request
	for i := 1; i <= 100; i++ {
		reqs = append(reqs, Request{Latency: time.Duration(i) * time.Millisecond})
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{0, time.Millisecond}, {50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}} {
		if got, n := latencyPercentile(reqs, tt.p); got != tt.want || n != 100 {
			t.Errorf("p%v = %s (%d), want %s", tt.p, got, n, tt.want)
		}
	}
	if got, n := latencyPercentile(nil, 99); got != 0 || n != 0 {
		t.Errorf("no requests: %s, %d", got, n)
	}
}

func TestWindowsFromTheSchedule(t *testing.T) {
	run := newRun(shop(30).report(), 8002*time.Millisecond, 16*time.Second)
	if got, want := run.FaultWindow(), (Window{8002 * time.Millisecond, 16300 * time.Millisecond}); got != want {
		t.Errorf("fault window %s, want %s", got, want)
	}
	if got, want := run.Before(), (Window{0, 8 * time.Second}); got != want {
		t.Errorf("before %s, want %s: the second the fault began in is not steady state", got, want)
	}
	if got, want := run.FaultWindow().Whole(), (Window{8 * time.Second, 16 * time.Second}); got != want {
		t.Errorf("whole seconds of the fault %s, want %s", got, want)
	}
}
