package control

import (
	"context"
	"fmt"
	"slices"
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
// is in its raft configuration. The
// follower waits until its own FSM reaches that index; the confirmation then
// counts from the moment the request was sent, for LeaseDuration. Every
// table committed before the leader answered is then applied here.

// leaseLoop runs the follower's lease confirmations until the node stops.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	steady := n.cfg.LeaseDuration / 5
	fast := min(steady, 2*n.cfg.Timings.RetryInterval)
	for {
		wait := fast
		if n.confirmedFor() < n.cfg.LeaseDuration-2*steady {
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
		rctx, rcancel := context.WithTimeout(ctx, n.cfg.LeaseDuration)
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
func (n *Node) serveReadIndex(from partition.MemberID, _ uint64) (uint64, error) {
	if n.closed.Load() {
		return 0, ErrClosed
	}
	if n.raft.State() != raft.Leader || !n.leaderReady.Load() {
		return 0, ErrNotLeader
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
