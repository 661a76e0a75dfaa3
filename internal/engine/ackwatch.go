package engine

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// Slow or dead.
//
// An owner reports a replica target that did not acknowledge within BackupAckTimeout to the
// coordinator, which demotes it: out of every partition's backups for a while, and each of
// those replicas copied again in full once it is trusted again. Right for a dead or cut-off
// member; wrong for a live one that is merely slow, as every member is on a starved machine or
// just after a network heals: in issue 21's fault runs (load 20 to 40, -race) backup
// acknowledgements took longer than the local timings' 250 ms, owners reported live members
// every second or two, and the full copies that followed each demotion loaded the machine
// further, so that the cluster took over 60 s to be safe again after a heal.
//
// So an owner watches each target's answers (ackWatch) and tells the two apart:
//   - A call that timed out while an answer from the target arrived (to another call, or late
//     to an earlier one that had timed out: the transport notes every frame it reads from a
//     peer, LastHeard) is slow, not dead: the target is not reported, and the owner waits
//     longer for it next time.
//   - A target is reported only when it stays silent for two attempts in a row: the first call
//     that times out without any answer since it was sent marks the target and doubles the
//     next wait; a call sent after the mark that times out in silence too reports it. A live
//     but slow target's late answer to the first call arrives during the second; a dead or
//     cut-off target's never does. So a stopped or cut-off target is reported after about three
//     BackupAckTimeouts instead of one (0.75 s with the local timings, 1.5 s on a LAN).
//   - Answers to other calls prove the target alive only for a while: once this member's
//     replica calls to it have failed for ackSlackMax BackupAckTimeouts without one succeeding,
//     its timeouts count as silence whatever else it answers (a member alive but unable to
//     apply backups must not hold its partitions' writers forever).
//   - The wait adapts to the target's recent acknowledgements: twice the slowest of them
//     (decaying by half every ackHalfLife), at least BackupAckTimeout and at most
//     ackStretchMax times it.
//   - A failed connection is reported at once, as before: a dead process refuses it.

// ackStretchMax bounds the adaptive wait for a replica's acknowledgement, in BackupAckTimeouts:
// how much later than a fast member a slow one that dies is reported (1 s with the local
// timings, 2 s on a LAN).
const ackStretchMax = 4

// ackSlack is how much longer than the slowest recent acknowledgement of a target the owner
// waits for the next one.
const ackSlack = 2

// ackSlackMax bounds, in BackupAckTimeouts, how long a target whose replica calls all fail is
// still taken for slow because it answers other calls (2 s with the local timings).
const ackSlackMax = 2 * ackStretchMax

// ackHalfLife is how fast a target's slowness is forgotten: its slowest recent acknowledgement
// counts half as much after each ackHalfLife.
const ackHalfLife = 10 * time.Second

// ackWatch holds what an owner observed of each replica target's answers. Lookups are a read of
// an immutable map (copied when a member first appears), updates atomic: it is on every
// backup's path.
type ackWatch struct {
	base  time.Time // the monotonic origin of the times below
	mu    sync.Mutex
	peers atomic.Pointer[map[partition.MemberID]*ackPeer]
}

// ackPeer is one target's record; times are nanoseconds since ackWatch.base.
type ackPeer struct {
	heard atomic.Int64 // when its last answer arrived
	// failing is when the first replica call to it that timed out since one last succeeded
	// was sent (0: none).
	failing atomic.Int64
	slow    atomic.Int64 // its slowest recent acknowledgement (ns), as of slowAt
	slowAt  atomic.Int64 // when slow was set
	// silentAt is when a call to it first timed out without any answer from it since the call
	// was sent (0: not since its last answer): the first of the two strikes.
	silentAt atomic.Int64
}

// now returns the watch's clock.
func (w *ackWatch) now() int64 { return int64(time.Since(w.base)) }

// peer returns m's record, creating it.
func (w *ackWatch) peer(m partition.MemberID) *ackPeer {
	if ps := w.peers.Load(); ps != nil {
		if p := (*ps)[m]; p != nil {
			return p
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.peers.Load()
	if old != nil {
		if p := (*old)[m]; p != nil {
			return p
		}
	}
	next := make(map[partition.MemberID]*ackPeer, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	p := &ackPeer{}
	next[m] = p
	w.peers.Store(&next)
	return p
}

// forget drops the records of members not in keep (members that left the table).
func (w *ackWatch) forget(keep func(partition.MemberID) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.peers.Load()
	if old == nil {
		return
	}
	next := make(map[partition.MemberID]*ackPeer, len(*old))
	for k, v := range *old {
		if keep(k) {
			next[k] = v
		}
	}
	if len(next) != len(*old) {
		w.peers.Store(&next)
	}
}

// slowness returns p's slowest recent acknowledgement, decayed to now.
func (p *ackPeer) slowness(now int64) time.Duration {
	slow := p.slow.Load()
	if slow == 0 {
		return 0
	}
	halvings := (now - p.slowAt.Load()) / int64(ackHalfLife)
	if halvings >= 63 {
		return 0
	}
	return time.Duration(slow >> max(halvings, 0))
}

// raise records an acknowledgement (or a wait for one) of took at now.
func (p *ackPeer) raise(took time.Duration, now int64) {
	if took > p.slowness(now) {
		p.slow.Store(int64(took))
		p.slowAt.Store(now)
	}
}

// answered records that m answered a call sent at start (ackWatch.now): acknowledged it (ok),
// or answered it with an error.
func (w *ackWatch) answered(m partition.MemberID, start int64, ok bool) {
	now := w.now()
	p := w.peer(m)
	p.heard.Store(now)
	if ok && p.failing.Load() != 0 {
		p.failing.Store(0)
	}
	p.raise(time.Duration(now-start), now)
}

// timedOut records that a call to m sent at start timed out after waiting timeout (the whole
// wait, not cut short by a deadline); heard is when the transport last read anything from m
// (0: never). It reports whether m is to be reported: silent since a call sent after its
// first silent timeout (see the top of this file). When an answer from m arrived since start,
// m is slow: the next wait for it is longer (timeout counts as an acknowledgement that slow).
// base is BackupAckTimeout.
func (w *ackWatch) timedOut(m partition.MemberID, start, heard int64, timeout, base time.Duration) (gone bool) {
	p := w.peer(m)
	now := w.now()
	heard = max(heard, p.heard.Load())
	since := p.failing.Load()
	if since == 0 || since > start {
		p.failing.CompareAndSwap(since, start)
		since = start
	}
	if now-since > int64(ackSlackMax*base) {
		heard = 0 // failing too long: other answers no longer count
	}
	if heard >= start {
		p.raise(timeout, now)
		return false
	}
	mark := p.silentAt.Load()
	if mark == 0 || heard >= mark {
		// The first strike, or silence again after an answer: wait once more, and longer.
		p.silentAt.CompareAndSwap(mark, now)
		p.raise(timeout, now)
		return false
	}
	// Sent before the first strike: the same silence, not a second one.
	return start >= mark
}

// wait returns how long to wait for m's acknowledgement given base, the wait for a fast
// member (BackupAckTimeout): ackSlack times m's recent slowness, within [base,
// ackStretchMax*base].
func (w *ackWatch) wait(m partition.MemberID, base time.Duration) time.Duration {
	ps := w.peers.Load()
	if ps == nil {
		return base
	}
	p := (*ps)[m]
	if p == nil {
		return base
	}
	return min(max(base, ackSlack*p.slowness(w.now())), ackStretchMax*base)
}

// tableHas returns whether a member is in t (a replica or pending somewhere).
func tableHas(t *partition.Table) func(partition.MemberID) bool {
	in := map[partition.MemberID]bool{}
	for _, m := range t.Members() {
		in[m] = true
	}
	return func(m partition.MemberID) bool { return in[m] }
}
