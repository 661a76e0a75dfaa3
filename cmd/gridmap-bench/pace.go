package main

import (
	"context"
	"time"
)

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
// and issues those ops at once: the rate is kept over the run, and virtualIssuer charges the wait.
func (p *pacer) next() time.Time {
	t := p.first.Add(time.Duration(float64(p.n) * p.interval))
	p.n++
	return t
}

// virtualIssuer charges a paced worker's ops as an issuer that is never late would see them.
// The worker's own timer may fire late (by milliseconds when the machine is busy: the cluster
// under test shares its CPUs). That lateness is the load tool's, not the cluster's, yet it
// delays the worker's next op too, so measuring a late-issued op from its scheduled start would
// charge it to the cluster after all. Instead, each op's service time (issue to answer, which
// is the cluster's) is replayed on the exact schedule: an op waits, virtually, only while the
// worker's previous op would still be running there. Ops queued behind a slow answer are still
// charged the wait (no coordinated omission); the timer's lateness never is.
type virtualIssuer struct {
	end time.Time // when the previous op ends on the exact schedule
}

// charge returns the latency of an op scheduled at sched, issued at issued and answered at
// done: its wait behind the previous op on the exact schedule plus done-issued.
func (v *virtualIssuer) charge(sched, issued, done time.Time) time.Duration {
	lat := max(v.end.Sub(sched), 0) + done.Sub(issued)
	v.end = sched.Add(lat)
	return lat
}

// timerSleep is a paced worker's wait: one timer, reused for every op.
type timerSleep struct{ t *time.Timer }

// sleep waits d and reports true, or reports false when ctx ends first.
func (ts *timerSleep) sleep(ctx context.Context, d time.Duration) bool {
	if ts.t == nil {
		ts.t = time.NewTimer(d)
	} else {
		ts.t.Reset(d)
	}
	select {
	case <-ts.t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stop releases the timer.
func (ts *timerSleep) stop() {
	if ts.t != nil {
		ts.t.Stop()
	}
}
