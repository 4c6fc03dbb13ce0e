package e2e

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
)

// failures keeps every verdict failure of the long tests, to print them
// once more when the package ends: a CI log shows its tail, and the chaos
// suite's minutes of progress would otherwise bury what failed.
var failures struct {
	sync.Mutex
	lines []string
}

// failf is t.Errorf, remembered for the summary.
func failf(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	t.Error(msg)
	failures.Lock()
	failures.lines = append(failures.lines, t.Name()+": "+msg)
	failures.Unlock()
}

func TestMain(m *testing.M) {
	code := testenv.Run(m) // the shop's PostgreSQL cluster, when a test started one
	if len(failures.lines) > 0 {
		fmt.Println("e2e: what failed, once more:")
		for _, l := range failures.lines {
			fmt.Println("  " + l)
		}
	}
	os.Exit(code)
}
