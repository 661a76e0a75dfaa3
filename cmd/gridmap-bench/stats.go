package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// version is reported in the JSON result ("version").
const version = "v0.1.0-dev"

// result is one run's outcome, printed as one JSON line with -json. The field names are those of
// the Olric harness (bench/olric/result.go) so that the two tools' lines can be
// compared directly; table_size, an Olric setting, is left out. async_backups, mode, target_ops
// and the gc_ fields are gridmap additions.
type result struct {
	System       string  `json:"system"`
	Version      string  `json:"version"`
	Op           string  `json:"op"`
	ValueSize    int     `json:"value_size"`
	Keys         int     `json:"keys"`
	Concurrency  int     `json:"concurrency"`
	Members      int     `json:"members"`
	Backups      int     `json:"sync_backups"`
	AsyncBackups int     `json:"async_backups,omitempty"`
	TLS          bool    `json:"tls,omitempty"`
	Mode         string  `json:"mode"`
	TargetOps    float64 `json:"target_ops,omitempty"`
	DurationS    float64 `json:"duration_s"`
	WarmupS      float64 `json:"warmup_s"`
	Ops          int64   `json:"ops"`
	OpsPerSec    float64 `json:"ops_per_sec"`
	MBPerSec     float64 `json:"mb_per_sec"`
	P50us        float64 `json:"p50_us"`
	P90us        float64 `json:"p90_us"`
	P99us        float64 `json:"p99_us"`
	P999us       float64 `json:"p999_us"`
	MaxUs        float64 `json:"max_us"`
	Errors       int64   `json:"errors"`
	FirstError   string  `json:"first_error,omitempty"`
	StartupMs    int64   `json:"startup_ms"`
	PreloadMs    int64   `json:"preload_ms"`
	// GC activity in the measuring process during the run, warm-up included (inproc mode).
	GCCycles     uint64  `json:"gc_cycles,omitempty"`
	GCPauseMaxUs float64 `json:"gc_pause_max_us,omitempty"`
	// The machine's CPU time during the run, warm-up included (Linux): percent busy, and
	// percent stolen by the hypervisor (cpuWindow).
	CPUBusyPct  float64 `json:"cpu_busy_pct,omitempty"`
	CPUStealPct float64 `json:"cpu_steal_pct,omitempty"`
	// -op publish: the messages delivered to the subscribers (one per member) of those published
	// in the measured time, per second over all subscribers, the latency from the start of
	// Publish to the delivery, and the messages subscribers were told they missed.
	Deliveries       int64   `json:"deliveries,omitempty"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec,omitempty"`
	DeliveryP50us    float64 `json:"delivery_p50_us,omitempty"`
	DeliveryP99us    float64 `json:"delivery_p99_us,omitempty"`
	DeliveryP999us   float64 `json:"delivery_p999_us,omitempty"`
	DeliveryMissed   uint64  `json:"delivery_missed,omitempty"`
}

// tally is what the workers of one process measured.
type tally struct {
	Samples    []time.Duration // one latency per counted op (errors included), any order
	Ops        int64           // counted ops, errors included
	Errors     int64
	FirstError string // "" if no error
	// Records lists the counted ops one by one when the workload records them (-ops-out).
	Records []opRecord
}

// opRecord is one counted op: when it started (its scheduled start when paced), measured from
// the start of the measurement, how long it took, and which worker ran it.
type opRecord struct {
	Start, Latency time.Duration
	Worker         int
}

// add merges o into t.
func (t *tally) add(o tally) {
	t.Samples = append(t.Samples, o.Samples...)
	t.Records = append(t.Records, o.Records...)
	t.Ops += o.Ops
	t.Errors += o.Errors
	if t.FirstError == "" {
		t.FirstError = o.FirstError
	}
}

// newResult computes the result of cfg's run from the merged tally. It sorts t.Samples in place.
func newResult(cfg config, t tally, startup, preload time.Duration) result {
	slices.Sort(t.Samples)
	secs := cfg.Duration.Seconds()
	r := result{
		System: "gridmap", Version: version, Op: cfg.Op, ValueSize: cfg.ValueSize, Keys: cfg.Keys,
		Concurrency: cfg.Concurrency, Members: cfg.Members, Backups: cfg.syncBackups(),
		Mode: cfg.Mode, TargetOps: cfg.TargetOps, DurationS: secs, WarmupS: cfg.Warmup.Seconds(),
		Ops: t.Ops, OpsPerSec: round1(float64(t.Ops) / secs),
		MBPerSec: round1(float64(t.Ops) * float64(cfg.ValueSize) / secs / 1e6),
		P50us:    percentileUs(t.Samples, 0.50), P90us: percentileUs(t.Samples, 0.90),
		P99us: percentileUs(t.Samples, 0.99), P999us: percentileUs(t.Samples, 0.999),
		MaxUs:  percentileUs(t.Samples, 1),
		Errors: t.Errors, FirstError: t.FirstError,
		StartupMs: startup.Milliseconds(), PreloadMs: preload.Milliseconds(),
	}
	r.TLS = cfg.TLS
	if cfg.AsyncBackups {
		r.AsyncBackups = cfg.Backups
	}
	return r
}

// percentileUs returns the p-quantile (0 < p <= 1) of sorted in microseconds, rounded to 0.1: the
// nearest-rank sample ceil-ish(p*n), as the Olric harness computes it. 0 for no samples.
func percentileUs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return round1(float64(sorted[i].Nanoseconds()) / 1e3)
}

// round1 rounds a non-negative f to one decimal.
func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// printSummary writes the human summary of r.
func printSummary(w io.Writer, r result) {
	backups := fmt.Sprintf("%d sync backup(s)", r.Backups)
	if r.AsyncBackups > 0 {
		backups = fmt.Sprintf("%d async backup(s)", r.AsyncBackups)
	}
	paced := ""
	if r.TargetOps > 0 {
		paced = fmt.Sprintf(", paced at %.0f ops/s", r.TargetOps)
	}
	fmt.Fprintf(w, "gridmap-bench %s: %s, %d B values, %d keys, %d members (%s), %s, concurrency %d%s, %gs (warm-up %gs)\n",
		r.Version, r.Op, r.ValueSize, r.Keys, r.Members, r.Mode, backups, r.Concurrency, paced, r.DurationS, r.WarmupS)
	fmt.Fprintf(w, "  throughput  %d ops, %.1f ops/s, %.1f MB/s, %d errors\n", r.Ops, r.OpsPerSec, r.MBPerSec, r.Errors)
	fmt.Fprintf(w, "  latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		fmtUs(r.P50us), fmtUs(r.P90us), fmtUs(r.P99us), fmtUs(r.P999us), fmtUs(r.MaxUs))
	fmt.Fprintf(w, "  startup     %d ms, preload %d ms\n", r.StartupMs, r.PreloadMs)
	if r.GCCycles > 0 {
		fmt.Fprintf(w, "  gc          %d cycles, longest stop-the-world pause %s\n", r.GCCycles, fmtUs(r.GCPauseMaxUs))
	}
	if r.CPUBusyPct > 0 {
		fmt.Fprintf(w, "  cpu         %.1f%% busy, %.1f%% stolen by the hypervisor (whole machine)\n", r.CPUBusyPct, r.CPUStealPct)
	}
	if r.Deliveries > 0 {
		fmt.Fprintf(w, "  delivery    %d messages to %d subscribers, %.1f msgs/s, p50 %s  p99 %s  p99.9 %s, %d missed\n",
			r.Deliveries, r.Members, r.DeliveriesPerSec, fmtUs(r.DeliveryP50us), fmtUs(r.DeliveryP99us), fmtUs(r.DeliveryP999us), r.DeliveryMissed)
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "  first error %s\n", r.FirstError)
	}
}

// fmtUs formats a latency given in microseconds with a readable unit.
func fmtUs(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return fmt.Sprintf("%.1fµs", us)
	}
}
