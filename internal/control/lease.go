package control

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/partition"
)

// Lease confirmation (read index).
//
// A follower's raft LastContact alone does not make its table current: a
// member that was cut off, removed from raft and later re-added under the
// same ID receives the leader's heartbeats (and so a fresh LastContact) before
// its log has caught up, while its table still names it owner of partitions
// the majority reassigned long ago. So a follower also needs a confirmation:
// every so often it sends the leader its applied index (msgReadIndex); the
// leader answers with its own applied index, only if it leads, has applied
// everything earlier leaders committed (its barrier is done), and the sender
// is in its raft configuration and not on probation (see admission). The
// follower waits until its own FSM reaches that index; the confirmation then
// counts from the moment the request was sent, for LeaseDuration. Every
// table committed before the leader answered is then applied here.

// leaseLoop runs the follower's lease confirmations until the node stops.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	ctx, cancel := n.stopContext()
	defer cancel()
	steady := n.cfg.Timings.LeaseDuration / 5
	fast := min(steady, 2*n.cfg.Timings.RetryInterval)
	for {
		wait := fast
		if n.confirmedFor() < n.cfg.Timings.LeaseDuration-2*steady {
			wait = steady
		}
		t := time.NewTimer(wait)
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if n.raft.State() != raft.Follower {
			continue
		}
		addr, id := n.raft.LeaderWithID()
		if id == "" || id == raft.ServerID(n.cfg.ID) {
			continue
		}
		t0 := n.mono()
		rctx, rcancel := context.WithTimeout(ctx, n.cfg.Timings.LeaseDuration)
		err := n.confirmLease(rctx, string(addr))
		rcancel()
		if err != nil {
			n.log.Debug("control: lease confirmation", "err", err)
			continue
		}
		for {
			old := n.confirmed.Load()
			if old >= t0 || n.confirmed.CompareAndSwap(old, t0) {
				break
			}
		}
	}
}

// confirmLease asks the leader at addr for its applied index and waits
// until this member's FSM has applied as much.
func (n *Node) confirmLease(ctx context.Context, addr string) error {
	hdr, err := msgpack.Marshal(&rpcReq{Op: reqRead, From: n.cfg.ID, Index: n.fsm.appliedIndex()})
	if err != nil {
		return fmt.Errorf("control: encode request: %w", err)
	}
	idx, err := n.callIndex(ctx, addr, msgReadIndex, hdr)
	if err != nil {
		return err
	}
	if n.fsm.appliedIndex() >= idx {
		return nil
	}
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for n.fsm.appliedIndex() < idx {
		select {
		case <-ctx.Done():
			return fmt.Errorf("control: catching up to index %d: %w", idx, ctx.Err())
		case <-poll.C:
		}
	}
	return nil
}

// mono is the time since the node was created, on the monotonic clock, plus
// one (so that zero means never).
func (n *Node) mono() int64 { return int64(time.Since(n.born)) + 1 }

// confirmedFor is how long ago the current confirmation started (a large
// value when there is none).
func (n *Node) confirmedFor() time.Duration {
	c := n.confirmed.Load()
	if c == 0 {
		return time.Duration(1<<62 - 1)
	}
	return time.Duration(n.mono() - c)
}

// serveReadIndex is the leader's side of a lease confirmation.
func (n *Node) serveReadIndex(from partition.MemberID, applied uint64) (uint64, error) {
	if n.closed.Load() {
		return 0, ErrClosed
	}
	if n.raft.State() != raft.Leader || !n.leaderReady.Load() {
		return 0, ErrNotLeader
	}
	if !n.adm.report(from, applied) {
		return 0, ErrNotMember
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return 0, ErrNotLeader
	}
	if !slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(from) }) {
		return 0, ErrNotMember
	}
	return n.fsm.appliedIndex(), nil
}

// admission is the leader's record of members re-admitted to raft on
// probation after the leader removed them for failing heartbeats. A member
// on probation is a raft non-voter but not part of the plan, and gets no
// lease confirmation, until it reports (in a read-index request) that it
// applied the command committed right after its re-admission: proof that
// raft traffic reaches it again. Shared by the coordinator and the
// read-index handler.
type admission struct {
	mu        sync.Mutex
	probation map[partition.MemberID]uint64 // member -> index it must apply
	reports   map[partition.MemberID]uint64 // member -> applied index it last reported
}

func (a *admission) init() {
	a.probation = map[partition.MemberID]uint64{}
	a.reports = map[partition.MemberID]uint64{}
}

// report records m's applied index; it returns false when m is on probation.
func (a *admission) report(m partition.MemberID, applied uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reports[m] = max(a.reports[m], applied)
	_, on := a.probation[m]
	return !on
}

func (a *admission) start(m partition.MemberID, index uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.probation[m] = index
	delete(a.reports, m)
}

func (a *admission) drop(m partition.MemberID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.probation, m)
	delete(a.reports, m)
}

// passed ends the probation of every member that proved raft contact and
// returns them.
func (a *admission) passed() []partition.MemberID {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []partition.MemberID
	for m, idx := range a.probation {
		if a.reports[m] >= idx {
			delete(a.probation, m)
			out = append(out, m)
		}
	}
	return out
}

// onProbation returns the members on probation.
func (a *admission) onProbation() map[partition.MemberID]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[partition.MemberID]bool, len(a.probation))
	for m := range a.probation {
		out[m] = true
	}
	return out
}

func (a *admission) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.probation)
	clear(a.reports)
}

// raftHealth tracks, while this member leads, the followers whose raft
// heartbeats fail (raft's FailedHeartbeatObservation and
// ResumedHeartbeatObservation). Fed by the observer goroutine, read by the
// coordinator.
type raftHealth struct {
	mu      sync.Mutex
	failing map[raft.ServerID]hbFailure
}

type hbFailure struct {
	lastContact time.Time // the leader's last successful contact with the follower
	lastFailure time.Time // when the latest failure was observed
}

func (h *raftHealth) init() { h.failing = map[raft.ServerID]hbFailure{} }

func (h *raftHealth) observe(o raft.Observation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch d := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		h.failing[d.PeerID] = hbFailure{lastContact: d.LastContact, lastFailure: time.Now()}
	case raft.ResumedHeartbeatObservation:
		delete(h.failing, d.PeerID)
	}
}

// unreachable returns the followers whose heartbeats have been failing for
// at least timeout, with a failure observed within fresh (so that a missed
// resumption does not condemn a follower forever).
func (h *raftHealth) unreachable(now time.Time, timeout, fresh time.Duration) map[partition.MemberID]time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[partition.MemberID]time.Time{}
	for id, f := range h.failing {
		if now.Sub(f.lastFailure) > fresh {
			delete(h.failing, id)
			continue
		}
		if now.Sub(f.lastContact) >= timeout {
			out[partition.MemberID(id)] = f.lastContact
		}
	}
	return out
}

func (h *raftHealth) forget(id raft.ServerID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.failing, id)
}

func (h *raftHealth) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.failing)
}

// observeLoop feeds raftHealth from raft's observations until the node
// stops.
func (n *Node) observeLoop(ch <-chan raft.Observation) {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case o := <-ch:
			n.health.observe(o)
		}
	}
}
