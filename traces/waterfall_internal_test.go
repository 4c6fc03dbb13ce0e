package traces

import (
	"testing"
	"time"
)

func TestFormatDuration(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{0, "0µs"},
		{18 * time.Microsecond, "18µs"},
		{999 * time.Microsecond, "999µs"},
		{999600 * time.Nanosecond, "1.00ms"},
		{8453 * time.Microsecond, "8.45ms"},
		{48200 * time.Microsecond, "48.2ms"},
		{999400 * time.Microsecond, "999ms"},
		{999600 * time.Microsecond, "1.00s"},
		{1250 * time.Millisecond, "1.25s"},
		{12345 * time.Millisecond, "12.3s"},
		{90 * time.Second, "1m30s"},
	}
	for _, c := range cases {
		if got := formatDuration(c.d); got != c.want {
			t.Errorf("formatDuration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
