package engine

import (
	"math/rand/v2"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// copyRetryMax bounds the pause before a failed partition copy is tried again.
const copyRetryMax = 4 * migrationRetry

// copyBackoff spaces the attempts of partition copies that fail. The driver used to start a
// failed copy again as soon as it ended: a copy to a member cut off by the network fails at once
// (its dial is refused), and one sent without a lease fails before it begins, so on a cut-off or
// starved member each pending copy was retried thousands of times a minute (the Jepsen runs of
// issue 21 logged 17,000 failed copies in one 30 s partition), burning the CPU that the
// members' leases and raft heartbeats needed, which delayed the cluster's recovery after the
// heal. Each failure of a copy now doubles its pause, from migrationRetry up to copyRetryMax,
// with jitter so that a member's copies do not retry in step. A new stint of the target as
// pending (the coordinator dropped it and added it again, as it does once a member is reachable
// again) starts without a pause: that is the moment the copy has a chance. Owned by the
// migration driver's goroutine; not safe for concurrent use.
type copyBackoff struct {
	tasks map[copyTask]copyRetry
}

// copyRetry is one failing copy's state: the stint it failed in, its pause and when it may run.
type copyRetry struct {
	since uint64 // Pending.Since of the stint the failures belong to
	wait  time.Duration
	next  time.Time
}

// ready reports whether the copy of task, whose target's stint began at since, may start at now.
func (b *copyBackoff) ready(task copyTask, since uint64, now time.Time) bool {
	r, ok := b.tasks[task]
	return !ok || r.since != since || !now.Before(r.next)
}

// failed records a failed attempt of task in the stint since at now and returns its pause.
func (b *copyBackoff) failed(task copyTask, since uint64, now time.Time) time.Duration {
	if b.tasks == nil {
		b.tasks = make(map[copyTask]copyRetry)
	}
	r := b.tasks[task]
	if r.since != since {
		r = copyRetry{since: since}
	}
	r.wait = min(max(2*r.wait, migrationRetry), copyRetryMax)
	pause := r.wait/2 + rand.N(r.wait/2+1) // equal jitter: between half the wait and the wait
	r.next = now.Add(pause)
	b.tasks[task] = r
	return pause
}

// succeeded forgets task's failures.
func (b *copyBackoff) succeeded(task copyTask) { delete(b.tasks, task) }

// prune forgets the tasks that t no longer asks of self (no longer owner, or the target no longer
// pending).
func (b *copyBackoff) prune(t *partition.Table, self partition.MemberID) {
	for task := range b.tasks {
		if int(task.p) >= len(t.Partitions) || t.Owner(task.p) != self || !t.IsPending(task.p, task.m) {
			delete(b.tasks, task)
		}
	}
}
