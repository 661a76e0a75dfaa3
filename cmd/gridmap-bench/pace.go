package main

import "time"

// pacer schedules the ops of one worker when the total rate is fixed (-target-ops). Every worker
// gets an equal share of the rate; the workers' schedules are staggered evenly so the cluster sees a
// smooth stream rather than bursts of all workers at once. A pacer only computes times; the worker
// sleeps until them. Not safe for concurrent use: one pacer per worker.
type pacer struct {
	first    time.Time // scheduled time of op 0
	interval float64   // nanoseconds between two ops of this worker
	n        int64     // ops scheduled so far
}

// newPacer returns the pacer of worker w (0 <= w < workers) for a total rate of totalOps ops/s
// (> 0) over all workers, starting at start.
func newPacer(start time.Time, totalOps float64, workers, w int) *pacer {
	interval := float64(workers) * 1e9 / totalOps
	return &pacer{
		first:    start.Add(time.Duration(interval * float64(w) / float64(workers))),
		interval: interval,
	}
}

// next returns the scheduled start of the next op. A worker that falls behind gets times in the past
// and issues those ops at once: the rate is kept over the run, and the worker measures such an op
// from its scheduled start, so the wait counts (no coordinated omission).
func (p *pacer) next() time.Time {
	t := p.first.Add(time.Duration(float64(p.n) * p.interval))
	p.n++
	return t
}
