package loadgen

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestWriteText(t *testing.T) {
	ms := time.Millisecond
	rep := &Report{
		Target: "http://127.0.0.1:8080", Rate: 50, Duration: 12300 * ms, Interrupted: true, Throughput: 49.8,
		Total: Stats{
			Requests: 612, OK: 600, Skipped: 3, Errors: map[string]int{"unavailable": 10, CodeTransport: 2},
			Latency: Latency{P50: 2100 * time.Microsecond, P90: 8 * ms, P99: 41234 * time.Microsecond, P999: 950 * ms, Max: 1234 * ms},
		},
		ByOp: map[Op]Stats{
			Browse:   {Requests: 400, OK: 398, Errors: map[string]int{CodeTransport: 2}, Latency: Latency{P50: ms, P90: 2 * ms, P99: 3 * ms, P999: 4 * ms, Max: 5 * ms}},
			Login:    {Requests: 0, Skipped: 3},
			Checkout: {Requests: 150, OK: 142, Errors: map[string]int{"unavailable": 8}, Latency: Latency{P50: 20 * ms, P90: 30 * ms, P99: 40 * ms, P999: 50 * ms, Max: 60 * ms}},
			Orders:   {Requests: 62, OK: 60, Errors: map[string]int{"unavailable": 2}, Latency: Latency{P50: 10 * ms, P90: 10 * ms, P99: 10 * ms, P999: 10 * ms, Max: 10 * ms}},
		},
		ErrorTraces: map[string][]string{"unavailable": {"4bc72f0016f6b4693f08c253bf42317f", "5ad0"}},
	}
	var out strings.Builder
	rep.WriteText(&out)
	text := out.String()

	for _, want := range []string{
		`http://127.0.0.1:8080 at 50 req/s for 12.3s \(interrupted\)`,
		`sent 612 \(49.8/s\)  ok 600 \(98.0%\)  failed 12  skipped 3`,
		`sent +ok +failed +skipped +p50 +p90 +p99 +p99.9 +max`,
		`browse +400 +398 +2 +0 +1ms +2ms +3ms +4ms +5ms`,
		`login +0 +0 +0 +3 +- +- +- +- +-`, // nothing answered: no latency to show
		`checkout +150 +142 +8 +0 +20ms`,
		`all +612 +600 +12 +3 +2.1ms +8ms +41.2ms +950ms +1.23s`,
		// Errors, most frequent first, with where they happened and traces.
		`unavailable +10 +checkout 8, orders 2 +4bc72f0016f6b4693f08c253bf42317f 5ad0\n`,
		`transport_error +2 +browse 2 +-\n`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("summary has no line like %q:\n%s", want, text)
		}
	}
	if strings.Index(text, "unavailable") > strings.Index(text, "transport_error") {
		t.Errorf("errors are not sorted by count:\n%s", text)
	}
}

func TestShortKeepsThreeDigits(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                            "0s",
		950 * time.Microsecond:       "950µs",
		41234567 * time.Nanosecond:   "41.2ms",
		1234567890 * time.Nanosecond: "1.23s",
		61500 * time.Millisecond:     "1m1.5s",
		999999 * time.Nanosecond:     "1ms",
		2100 * time.Microsecond:      "2.1ms",
	} {
		if got := short(d); got != want {
			t.Errorf("short(%d) = %s, want %s", d, got, want)
		}
	}
}
