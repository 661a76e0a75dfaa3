package control

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/partition"
)

// Suspects.
//
// A backup that does not acknowledge a write within the map service's
// timeout holds up every write of its partitions until memberlist declares
// it dead (seconds). So the owner reports it (ReportUnreachable), and the
// leader demotes it at once: for Timings.SuspectBackoff (doubling at each
// new demotion, up to maxSuspect times that) the planner keeps it out of
// every partition's backups and pending copies (partition.Members.Suspect),
// and the writes count the remaining replicas. It keeps owning what it owns:
// its lease may still be valid (see LeaseValid), so only a death, after
// DeadWait, or a hand-off takes a partition from it. When its penalty ends
// and it is still alive it is listed as active again and gets copies as
// usual; when memberlist declares it dead the dead path applies. Suspicion
// is the leader's memory, not replicated: a new leader starts with none, and
// members that still time out are reported again.

// DemotedLogMsg is the message of the leader's warning that it demoted a member reported
// unreachable (attributes "member" and "reported_by"): the fault suite counts them.
const DemotedLogMsg = "control: member reported unreachable; demoted from backups and copies"

// maxSuspect bounds the suspicion backoff, in SuspectBackoffs. A member
// not demoted for that long starts again at SuspectBackoff.
const maxSuspect = 16

// reporter queues ReportUnreachable's reports for reportLoop: one request
// to the leader at a time, carrying every member reported since the last,
// and at most one report per member per reportInterval.
type reporter struct {
	mu     sync.Mutex
	queued []partition.MemberID
	sent   map[partition.MemberID]time.Time // when a report about the member was last sent
	wake   chan struct{}                    // capacity 1: a report is queued
}

func (r *reporter) init() {
	r.sent = map[partition.MemberID]time.Time{}
	r.wake = make(chan struct{}, 1)
}

// reportInterval is the least time between two reports about one member.
func (n *Node) reportInterval() time.Duration { return n.cfg.Timings.ReconcileInterval / 2 }

// ReportUnreachable tells the coordinator that this member's calls to m
// fail or time out (see dmap.Cluster): the coordinator then keeps m out of
// every partition's backups and pending copies for a while (see the
// Suspects section in suspect.go), so that writes stop waiting for it. It
// never blocks: the report is queued and sent to the leader by a goroutine
// of the Node, coalesced with other reports about m (at most one per half
// ReconcileInterval). Reports about this member itself, and after Close,
// are ignored.
func (n *Node) ReportUnreachable(m partition.MemberID) {
	if m == "" || m == n.cfg.ID || n.closed.Load() {
		return
	}
	r := &n.rep
	r.mu.Lock()
	if slices.Contains(r.queued, m) || time.Since(r.sent[m]) < n.reportInterval() {
		r.mu.Unlock()
		return
	}
	r.queued = append(r.queued, m)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// reportLoop sends the queued reports to the leader until the node stops.
// A report that cannot be delivered within DeadWait is dropped: by then
// the member is either dead or reported again.
func (n *Node) reportLoop() {
	defer n.wg.Done()
	ctx, cancel := n.stopContext()
	defer cancel()
	r := &n.rep
	for {
		select {
		case <-n.stop:
			return
		case <-r.wake:
		}
		now := time.Now()
		r.mu.Lock()
		ms := r.queued
		r.queued = nil
		for m, t := range r.sent {
			if now.Sub(t) >= n.reportInterval() {
				delete(r.sent, m)
			}
		}
		for _, m := range ms {
			r.sent[m] = now
		}
		r.mu.Unlock()
		if len(ms) == 0 {
			continue
		}
		rctx, rcancel := context.WithTimeout(ctx, n.cfg.DeadWait())
		err := n.toLeader(rctx, rpcReq{Op: reqSuspect, From: n.cfg.ID, Members: ms})
		rcancel()
		if err != nil {
			n.log.Debug("control: unreachable report", "members", ms, "err", err)
		}
	}
}

// suspect is the leader's handling of a report from member from that the
// members ms do not answer. It is accepted only from a member that is alive
// and in raft (not on probation) and not itself suspect, about members the
// table names; a member already suspect stays so without a longer penalty.
// It returns ErrNotMember when from may not report, ErrStale when some of
// ms are not in the table (the others are still acted upon).
func (n *Node) suspect(from partition.MemberID, ms []partition.MemberID, table *partition.Table,
	alive map[partition.MemberID]membership.Member, inRaft map[partition.MemberID]bool, now time.Time) error {
	if _, ok := alive[from]; !ok || !inRaft[from] || n.co.suspects.holds(from, now) {
		n.log.Debug("control: unreachable report from a member that may not report; ignored", "from", from, "members", ms)
		return ErrNotMember
	}
	known := table.Members()
	limit := suspectLimit(len(alive))
	held := 0
	for id := range alive {
		if n.co.suspects.holds(id, now) {
			held++
		}
	}
	var err error
	var ignored []partition.MemberID
	for _, m := range ms {
		switch {
		case m == from || !slices.Contains(known, m):
			err = ErrStale
		case n.co.suspects.holds(m, now):
		case held >= limit:
			ignored = append(ignored, m)
		default:
			base := n.cfg.Timings.SuspectBackoff
			backoff := n.co.suspects.impose(m, now, base, maxSuspect*base)
			held++
			n.log.Warn(DemotedLogMsg, "member", m,
				"reported_by", from, "readmit_after", backoff)
		}
	}
	if len(ignored) > 0 {
		n.log.Warn("control: unreachable report ignored: a minority of the live members at most may be suspect at once",
			"members", ignored, "reported_by", from, "suspects", held, "limit", limit)
	}
	return err
}

// suspectLimit is how many of alive live members may be suspect at once: a minority (at least
// one). A suspicion is one member's slow or failed calls to another; when most of the cluster
// looks slow, the slow one is more likely the reporter, or every member (a starved machine, a
// network just healed), than most members at once. Demoting a majority would also leave the
// planner nobody to put backups on, and each demotion and re-admission restarts every copy to
// the member: under load after a heal, members that reported each other in turn kept 183 of 271
// partitions migrating for a minute (issue 21's Jepsen runs, where at one moment the raft leader
// reported four of its five members at once). Reports beyond the limit are ignored (logged);
// writes to those members keep waiting for their acknowledgement, as without suspicion.
func suspectLimit(alive int) int { return max(1, (alive-1)/2) }

// suspected returns the members whose suspicion runs at now (a member
// memberlist declared dead stays suspect until its penalty ends, so that it
// gets no copies while DeadWait runs). It forgets members that are not
// alive once their penalty ended, and those whose penalty ended maxSuspect
// SuspectBackoffs ago (their next one starts at SuspectBackoff again), and
// logs the re-admission of live members demoted in the previous round.
func (n *Node) suspected(alive map[partition.MemberID]membership.Member, now time.Time) map[partition.MemberID]bool {
	out := map[partition.MemberID]bool{}
	for id, q := range n.co.suspects {
		_, isAlive := alive[id]
		switch {
		case now.Before(q.until):
			out[id] = true
		case !isAlive || now.Sub(q.until) >= maxSuspect*n.cfg.Timings.SuspectBackoff:
			delete(n.co.suspects, id)
		}
	}
	for id := range n.co.demoted {
		if !out[id] {
			delete(n.co.demoted, id)
			if _, ok := alive[id]; ok {
				n.log.Info("control: suspect member re-admitted to backups and copies", "member", id)
			}
		}
	}
	for id := range out {
		n.co.demoted[id] = true
	}
	return out
}
