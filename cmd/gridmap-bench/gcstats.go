package main

import (
	"math"
	"runtime/metrics"
)

// gcWindow measures the garbage collector's activity in this process over a run (inproc mode):
// how many cycles ran and how long the world was stopped. Latency at a fixed load depends on
// both, so the result reports them next to the percentiles.
type gcWindow struct {
	samples []metrics.Sample
}

const (
	gcCyclesMetric = "/gc/cycles/total:gc-cycles"
	gcPausesMetric = "/sched/pauses/total/gc:seconds"
)

// startGCWindow takes the counters at the start of a run.
func startGCWindow() gcWindow {
	w := gcWindow{samples: []metrics.Sample{{Name: gcCyclesMetric}, {Name: gcPausesMetric}}}
	metrics.Read(w.samples)
	return w
}

// end returns the cycles completed since the start and the longest stop-the-world pause among
// them in microseconds (the upper bound of its histogram bucket; 0 without pauses).
func (w gcWindow) end() (cycles uint64, maxPauseUs float64) {
	now := []metrics.Sample{{Name: gcCyclesMetric}, {Name: gcPausesMetric}}
	metrics.Read(now)
	if now[0].Value.Kind() != metrics.KindUint64 || now[1].Value.Kind() != metrics.KindFloat64Histogram {
		return 0, 0 // a runtime without these metrics
	}
	cycles = now[0].Value.Uint64() - w.samples[0].Value.Uint64()
	before, after := w.samples[1].Value.Float64Histogram(), now[1].Value.Float64Histogram()
	for i := len(after.Counts) - 1; i >= 0; i-- {
		if after.Counts[i] > before.Counts[i] {
			upper := after.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = after.Buckets[i]
			}
			return cycles, round1(upper * 1e6)
		}
	}
	return cycles, 0
}
