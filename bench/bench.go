// Package bench measures what a checkout costs: it drives a target (the
// bare reference chain in bench/chain, or a glasshouse stack) at
// saturation with the load generator's closed loop, one logged-in
// customer buying one item per checkout with a fresh Idempotency-Key, and
// reads from /proc what each of the target's processes spent on it: CPU
// time per checkout and peak resident memory. `glasshouse bench` (make
// bench) runs the targets side by side and writes the report.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/glasshouse-dev/glasshouse/loadgen"
)

// A Process is one of a target's operating-system processes.
type Process struct {
	Name string // "gateway", "orders/1", "jaeger": unique in the target
	PID  int
	// AdminAddr is where a glasshouse service serves /debug/pprof/, or
	// "" for a process to measure but not profile.
	AdminAddr string
}

// Config describes one measurement.
type Config struct {
	Name       string // the target's name in the report
	GatewayURL string
	Processes  []Process
	// Connections is the closed loop's width; Warmup runs before the
	// measured Duration, so that opening connections and filling caches
	// are not in the figures.
	Connections      int
	Warmup, Duration time.Duration
	// ProfileDir, when set, gets a CPU profile of the measured window from
	// every process with an AdminAddr, as NAME.pprof.
	ProfileDir string
	// HalfLoad, when set, follows the closed loop with an open loop this
	// long at half the rate the closed loop reached: requests sent on
	// schedule whatever the answers, so a stall shows in the latency
	// instead of slowing the load down (what a closed loop hides).
	HalfLoad time.Duration
	Progress io.Writer // progress lines; nil discards
}

// Usage is what one process spent during the measured window.
type Usage struct {
	Name string
	// CPU is user plus system time over the window.
	CPU time.Duration
	// PeakRSS is the most memory the process ever held resident
	// (VmHWM), in bytes: its whole life, warm-up and start-up included.
	PeakRSS int64
}

// Result is one target's measurement.
type Result struct {
	Name        string
	Connections int
	Duration    time.Duration
	// Checkouts succeeded and Failed during the window.
	Checkouts, Failed int
	Errors            map[string]int
	P50, P99          time.Duration
	Usage             []Usage
	// HalfLoad is the open loop at half the saturation rate, when asked
	// for (Config.HalfLoad).
	HalfLoad *OpenLoop `json:",omitempty"`
}

// OpenLoop is a target's latency under an open loop at a fixed rate.
type OpenLoop struct {
	Rate     float64 // checkouts per second asked for
	Duration time.Duration
	// Checkouts succeeded and Failed; Skipped were due while the most a
	// loop holds in flight were still unanswered, so never sent.
	Checkouts, Failed, Skipped int
	Errors                     map[string]int
	P50, P99, Max              time.Duration
}

// PerSecond is the checkouts completed per second.
func (r Result) PerSecond() float64 { return float64(r.Checkouts) / r.Duration.Seconds() }

// CPUPerCheckout is the CPU time u (or, with u nil, every process) spent
// per completed checkout.
func (r Result) CPUPerCheckout(u *Usage) time.Duration {
	if r.Checkouts == 0 {
		return 0
	}
	if u != nil {
		return u.CPU / time.Duration(r.Checkouts)
	}
	var total time.Duration
	for _, u := range r.Usage {
		total += u.CPU
	}
	return total / time.Duration(r.Checkouts)
}

// PeakRSS is the sum of every process's peak resident memory.
func (r Result) PeakRSS() int64 {
	var total int64
	for _, u := range r.Usage {
		total += u.PeakRSS
	}
	return total
}

// Measure warms the target up, then drives it for cfg.Duration and reads
// what each process spent meanwhile.
func Measure(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Name: cfg.Name, Connections: cfg.Connections}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	checkouts := func(d time.Duration, connections int, rate float64) (*loadgen.Report, error) {
		return loadgen.Run(ctx, loadgen.Config{
			Target: cfg.GatewayURL, Connections: connections, Rate: rate, Duration: d,
			Users: 1, Mix: loadgen.Mix{loadgen.Checkout: 1}, Items: 1, Progress: progress, ProgressEvery: 5 * time.Second,
		})
	}
	load := func(d time.Duration) (*loadgen.Report, error) { return checkouts(d, cfg.Connections, 0) }
	if cfg.Warmup > 0 {
		fmt.Fprintf(progress, "  %s: warming up for %s\n", cfg.Name, cfg.Warmup)
		if _, err := load(cfg.Warmup); err != nil {
			return res, fmt.Errorf("%s: warm-up: %w", cfg.Name, err)
		}
	}
	before, err := cpuTimes(cfg.Processes)
	if err != nil {
		return res, err
	}
	profiles := startProfiles(ctx, cfg)
	fmt.Fprintf(progress, "  %s: %d connections for %s\n", cfg.Name, cfg.Connections, cfg.Duration)
	rep, err := load(cfg.Duration)
	if err != nil {
		return res, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	after, err := cpuTimes(cfg.Processes)
	if err != nil {
		return res, err
	}
	if err := profiles(); err != nil {
		return res, err
	}
	if rep.Interrupted {
		return res, fmt.Errorf("%s: interrupted", cfg.Name)
	}
	res.Duration = rep.Duration
	res.Checkouts, res.Failed, res.Errors = rep.Total.OK, rep.Total.Failed(), rep.Total.Errors
	res.P50, res.P99 = rep.Total.Latency.P50, rep.Total.Latency.P99
	for i, p := range cfg.Processes {
		rss, err := peakRSS(p.PID)
		if err != nil {
			return res, fmt.Errorf("%s: %w", p.Name, err)
		}
		res.Usage = append(res.Usage, Usage{Name: p.Name, CPU: after[i] - before[i], PeakRSS: rss})
	}
	if cfg.HalfLoad > 0 && res.Checkouts > 0 {
		rate := res.PerSecond() / 2
		fmt.Fprintf(progress, "  %s: open loop at %.0f checkouts/s (half of saturation) for %s\n", cfg.Name, rate, cfg.HalfLoad)
		open, err := checkouts(cfg.HalfLoad, 0, rate)
		if err != nil {
			return res, fmt.Errorf("%s: open loop: %w", cfg.Name, err)
		}
		if open.Interrupted {
			return res, fmt.Errorf("%s: interrupted", cfg.Name)
		}
		t := open.Total
		res.HalfLoad = &OpenLoop{Rate: rate, Duration: open.Duration, Checkouts: t.OK, Failed: t.Failed(), Skipped: t.Skipped,
			Errors: t.Errors, P50: t.Latency.P50, P99: t.Latency.P99, Max: t.Latency.Max}
	}
	return res, nil
}

// startProfiles asks every process with an admin listener for a CPU
// profile of the next cfg.Duration, and returns a function that waits for
// them and writes them to cfg.ProfileDir.
func startProfiles(ctx context.Context, cfg Config) func() error {
	if cfg.ProfileDir == "" {
		return func() error { return nil }
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	seconds := max(1, int(cfg.Duration.Seconds()))
	client := &http.Client{Timeout: cfg.Duration + 30*time.Second}
	for _, p := range cfg.Processes {
		if p.AdminAddr == "" {
			continue
		}
		wg.Go(func() {
			err := func() error {
				req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.AdminAddr, seconds), nil)
				if err != nil {
					return err
				}
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("GET /debug/pprof/profile: %s", resp.Status)
				}
				if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
					return err
				}
				f, err := os.Create(filepath.Join(cfg.ProfileDir, strings.ReplaceAll(p.Name, "/", "-")+".pprof"))
				if err != nil {
					return err
				}
				_, err = io.Copy(f, resp.Body)
				return errors.Join(err, f.Close())
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("profile of %s: %w", p.Name, err))
				mu.Unlock()
			}
		})
	}
	return func() error {
		wg.Wait()
		return errors.Join(errs...)
	}
}

// clockTick is the unit of /proc/PID/stat's times: USER_HZ, 100 on every
// Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

// cpuTimes reads each process's user plus system time so far.
func cpuTimes(procs []Process) ([]time.Duration, error) {
	times := make([]time.Duration, len(procs))
	for i, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		// The command name, in parentheses, may hold spaces: the fields
		// count from after its closing one. utime and stime are fields 14
		// and 15 of the line, the 12th and 13th after the name.
		_, rest, ok := strings.Cut(string(b), ") ")
		fields := strings.Fields(rest)
		if !ok || len(fields) < 13 {
			return nil, fmt.Errorf("%s: /proc/%d/stat is not what Linux writes: %q", p.Name, p.PID, b)
		}
		utime, err1 := strconv.ParseInt(fields[11], 10, 64)
		stime, err2 := strconv.ParseInt(fields[12], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%s: /proc/%d/stat: %w", p.Name, p.PID, err)
		}
		times[i] = time.Duration(utime+stime) * clockTick
	}
	return times, nil
}

// peakRSS is VmHWM from /proc/PID/status, in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
}

// Machine describes this machine for the report: CPU model, cores and
// memory.
func Machine() string {
	model, cores := "unknown CPU", 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				model = strings.TrimSpace(v)
			case "processor":
				cores++
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				if kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
					mem = fmt.Sprintf(", %d GiB", (kib+1<<19)>>20)
				}
			}
		}
	}
	return fmt.Sprintf("%s, %d cores%s", model, cores, mem)
}

// byName orders usages by name, for stable reports.
func byName(us []Usage) []Usage {
	us = slices.Clone(us)
	slices.SortFunc(us, func(a, b Usage) int { return strings.Compare(a.Name, b.Name) })
	return us
}
