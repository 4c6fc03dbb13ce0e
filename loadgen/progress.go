package loadgen

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress is the state of a run for one progress line.
type progress struct {
	elapsed             time.Duration
	rate                float64 // requests sent per second since the last line
	ok, failed, skipped int     // so far
	inFlight            int
	answered            int           // since the last line
	p99                 time.Duration // of those answers
}

func (p progress) String() string {
	p99 := "-"
	if p.answered > 0 {
		p99 = short(p.p99)
	}
	return fmt.Sprintf("%5s  rate %.1f/s  ok %d  err %d  skipped %d  in-flight %d  p99 %s",
		p.elapsed.Round(time.Second), p.rate, p.ok, p.failed, p.skipped, p.inFlight, p99)
}

// showProgress writes a progress line to w every interval until the
// returned stop is called. On a terminal each line overwrites the last;
// elsewhere (a file, a pipe, a CI log) lines follow each other.
func showProgress(w io.Writer, every time.Duration, rec *recorder) (stop func()) {
	if w == nil {
		return func() {}
	}
	terminal := isTerminal(w)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		printed := false
		for {
			select {
			case <-done:
				if terminal && printed {
					fmt.Fprintln(w) // leave the last line in place
				}
				return
			case now := <-ticker.C:
				if terminal {
					fmt.Fprintf(w, "\r%s\x1b[K", rec.progress(now)) // ESC[K clears the rest of a longer line
				} else {
					fmt.Fprintln(w, rec.progress(now))
				}
				printed = true
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// isTerminal reports whether w is a character device, as a terminal is.
// It is a heuristic (so is /dev/null), good enough to choose a layout.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
