package control

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/gridmap/gridmap/discovery"
	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// raftTimeout bounds the enqueueing of a raft operation.
const raftTimeout = 5 * time.Second

// coordinator is the state of the run goroutine (only it touches it).
type coordinator struct {
	leading bool // leader, and the barrier after election is done

	// Times are this member's monotonic clock, valid while it leads.
	notPresent map[partition.MemberID]time.Time // first seen not alive or not in raft
	removedAt  map[partition.MemberID]time.Time // removed from raft by this leader
	// addedAt holds when this leader added each member to raft: a heartbeat
	// failure whose last contact is older belongs to the member's earlier
	// stint in raft (see raftEligible).
	addedAt map[partition.MemberID]time.Time
	// quarantine holds members this leader removed from raft because its
	// heartbeats to them failed for RaftContactTimeout while memberlist
	// still reported them alive; they are re-admitted, on probation, after
	// the penalty (the backoff doubles at each new failure), or once they
	// answer probes again (see quarantine.go).
	quarantine quarantines
	// suspects holds members reported unreachable (see ReportUnreachable):
	// while the penalty runs the planner keeps them out of backups and
	// copies (partition.Members.Suspect). demoted are those the last plan
	// listed as suspect, to log their re-admission once.
	suspects penalties
	demoted  map[partition.MemberID]bool
	// awaited holds the absent members that may come back with their data,
	// with when they were first seen absent: the planner keeps the
	// partitions whose every replica is among them waiting
	// (partition.Members.Unreachable) for LostGrace instead of losing them
	// (see noteAwaited).
	awaited map[partition.MemberID]time.Time

	bootView  string // bootstrap candidate view and since when it holds
	bootSince time.Time

	// refused holds the members whose transport failed the admission probe
	// (see admitTransport), until when they are not probed again.
	refused map[partition.MemberID]time.Time
}

func (c *coordinator) init() {
	c.refused = map[partition.MemberID]time.Time{}
	c.notPresent = map[partition.MemberID]time.Time{}
	c.removedAt = map[partition.MemberID]time.Time{}
	c.addedAt = map[partition.MemberID]time.Time{}
	c.quarantine = quarantines{}
	c.suspects = penalties{}
	c.demoted = map[partition.MemberID]bool{}
	c.awaited = map[partition.MemberID]time.Time{}
}

// penalty is a member's exclusion, until a time, under a backoff that
// doubles at each new penalty.
type penalty struct {
	until   time.Time
	backoff time.Duration
}

// penalties are the penalties of members, keyed by member (the leader's
// suspects). An entry outlives its penalty, so that the next
// one lasts twice as long, until it is deleted.
type penalties map[partition.MemberID]penalty

// impose starts a penalty of id at now, twice as long as the last one, at
// least base and at most limit, and returns its length.
func (ps penalties) impose(id partition.MemberID, now time.Time, base, limit time.Duration) time.Duration {
	q := ps[id]
	q.backoff = min(max(2*q.backoff, base), limit)
	q.until = now.Add(q.backoff)
	ps[id] = q
	return q.backoff
}

// holds reports whether id's penalty runs at now.
func (ps penalties) holds(id partition.MemberID, now time.Time) bool {
	q, ok := ps[id]
	return ok && now.Before(q.until)
}

// maxQuarantine bounds the quarantine backoff, in DeadWaits.
const maxQuarantine = 16

// setLeading records whether the coordinator leads (barrier done).
func (n *Node) setLeading(on bool) {
	n.co.leading = on
	n.leaderReady.Store(on)
}

// joinLoop joins the seeds until this member is in a raft cluster: while it
// sees fewer than ExpectMembers members or nobody else, it asks discovery
// and joins every JoinRetryInterval. Afterwards it heals partitions (as
// Serf's reconnect does): while some member it knows of is not alive (dead
// in memberlist, or in the directory but not alive), it joins one of their
// last gossip addresses or of the seeds, chosen in turn, with a pause that
// starts at JoinRetryInterval and doubles up to maxReconnectScale times
// that, reset once everyone is alive. A member that answers merges the two
// memberlist views; the coordinator then re-adds the returning member to
// raft (same ID: its raft log and stores are intact, raft truncates what the
// leader does not have) and it catches up with the current table before its
// lease is confirmed again (see LeaseValid).
func (n *Node) joinLoop() {
	defer n.wg.Done()
	ctx, cancel := n.stopContext()
	defer cancel()
	pause := n.cfg.Timings.JoinRetryInterval
	turn := 0
	for {
		if !n.inRaft.Load() {
			alive := n.ml.NumAlive()
			if alive < n.cfg.ExpectMembers || alive == 1 {
				_, err := n.ml.TryJoin(ctx, n.cfg.Discovery)
				if err != nil {
					n.log.Debug("control: join", "err", err)
				}
				switch {
				case errors.Is(err, membership.ErrRefused):
					n.noteRefusal(err)
				case err != nil && !errors.Is(err, membership.ErrNoSeeds):
					n.lastJoin.Store(&err)
				}
				n.seedless.Store(errors.Is(err, membership.ErrNoSeeds))
			}
			// The initial join phase is over once we tried, or others
			// joined us first (then there was nothing to try).
			n.joinAttempted.Store(true)
			pause = n.cfg.Timings.JoinRetryInterval
		} else if addrs := n.reconnectCandidates(ctx); len(addrs) > 0 {
			addr := addrs[turn%len(addrs)]
			turn++
			if _, err := n.ml.TryJoin(ctx, discovery.Static{addr}); err != nil {
				n.log.Debug("control: reconnect", "addr", addr, "err", err)
			} else {
				n.log.Debug("control: reconnect", "addr", addr)
			}
			pause = min(2*pause, maxReconnectScale*n.cfg.Timings.JoinRetryInterval)
		} else {
			pause = n.cfg.Timings.JoinRetryInterval
		}
		t := time.NewTimer(pause)
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// maxReconnectScale bounds the reconnect pause, in JoinRetryIntervals.
const maxReconnectScale = 16

// reconnectCandidates returns, sorted, the gossip addresses worth joining
// to heal a partition: those of members memberlist declared dead (not those
// that left) and of directory members that are not alive, plus the seeds
// when there is any such member. Empty when everyone known is alive.
func (n *Node) reconnectCandidates(ctx context.Context) []string {
	self := n.ml.GossipAddr()
	set := map[string]bool{}
	alive := map[string]bool{}
	for _, m := range n.ml.Members() {
		switch {
		case m.State == membership.Alive:
			alive[m.ID] = true
		case m.State == membership.Dead && m.GossipAddr != "":
			set[m.GossipAddr] = true
		}
	}
	_, dir := n.fsm.snapshot()
	for id, e := range dir {
		if !alive[string(id)] && !e.Removed && !e.Leaving && e.GossipAddr != "" {
			set[e.GossipAddr] = true
		}
	}
	delete(set, self)
	if len(set) == 0 {
		return nil
	}
	if n.cfg.Discovery != nil {
		if seeds, err := n.cfg.Discovery.Seeds(ctx); err == nil {
			for _, s := range seeds {
				set[s] = true
			}
		}
	}
	delete(set, self)
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// run is the coordinator goroutine: every member runs it; it acts when its
// member is the raft leader (or, before any cluster exists, to bootstrap).
func (n *Node) run() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.Timings.ReconcileInterval)
	defer tick.Stop()
	leaderCh := n.raft.LeaderCh()
	var reqs []*request
	for {
		select {
		case <-n.stop:
			reply(reqs, ErrClosed)
			return
		case <-n.ml.Changed():
		case <-leaderCh:
			n.setLeading(false) // (re)acquired or lost: barrier again before leading
		case <-tick.C:
		case r := <-n.reqs:
			reqs = append(reqs, r)
		}
		reqs = n.gather(reqs, time.After)
		n.step(reqs)
		reqs = reqs[:0]
	}
}

// maxBatch bounds the requests one coordinator round answers.
const maxBatch = 512

// syncBatchWindow is how long the coordinator waits, once it holds a copy completion report
// (ReportSynced), for more before its round. Each round that completes a copy is a raft
// commit of the table, which every member then applies and acts on; after a heal the owners
// complete some 300 copies, a few at a time each, so that reports arriving within a few
// milliseconds of each other are worth one commit. What a report promises does not change:
// it is answered once the table that completes the copy is committed. The wait delays each
// completion by at most this much, a fraction of a commit's round trips.
const syncBatchWindow = 5 * time.Millisecond

// gather returns reqs with the requests already queued added (up to maxBatch) and, when reqs
// holds a copy completion report, those that arrive before the channel window(syncBatchWindow)
// returns delivers or the node stops.
func (n *Node) gather(reqs []*request, window func(time.Duration) <-chan time.Time) []*request {
drain:
	for len(reqs) < maxBatch {
		select {
		case r := <-n.reqs:
			reqs = append(reqs, r)
		default:
			break drain
		}
	}
	if len(reqs) >= maxBatch || !slices.ContainsFunc(reqs, func(r *request) bool { return r.Op == reqSync }) {
		return reqs
	}
	end := window(syncBatchWindow)
	for len(reqs) < maxBatch {
		select {
		case r := <-n.reqs:
			reqs = append(reqs, r)
		case <-end:
			return reqs
		case <-n.stop:
			return reqs
		}
	}
	return reqs
}

func reply(reqs []*request, err error) {
	for _, r := range reqs {
		r.reply <- err
	}
}

// step is one round of the coordinator. It answers every request in reqs.
func (n *Node) step(reqs []*request) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		reply(reqs, ErrNotLeader)
		return
	}
	servers := slices.Clone(cf.Configuration().Servers) // the future's slice is shared
	if len(servers) == 0 {
		n.maybeBootstrap()
		reply(reqs, ErrNotLeader)
		return
	}
	n.markInRaft()
	if n.raft.State() != raft.Leader {
		n.setLeading(false)
		reply(reqs, ErrNotLeader)
		return
	}
	if !n.co.leading {
		// Apply everything earlier leaders committed before deciding.
		if err := n.awaitRaft(n.raft.Barrier(raftTimeout)); err != nil {
			reply(reqs, ErrNotLeader)
			return
		}
		clear(n.co.notPresent)
		clear(n.co.removedAt)
		clear(n.co.addedAt)
		clear(n.co.quarantine)
		clear(n.co.suspects)
		clear(n.co.demoted)
		clear(n.co.awaited)
		n.health.reset()
		n.adm.reset()
		n.setLeading(true)
		n.log.Info("control: coordinating", "id", n.cfg.ID, "epoch", n.fsm.table().Epoch)
	}
	if err := n.lead(servers, reqs); err != nil {
		n.log.Debug("control: coordinator round", "err", err)
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			n.setLeading(false)
		}
	}
}

// lead is the leader's round: directory and raft membership, requests,
// plan, commit. It answers every request.
func (n *Node) lead(servers []raft.Server, reqs []*request) (err error) {
	answered := false
	defer func() {
		if !answered {
			e := err
			if e == nil || errors.Is(e, raft.ErrNotLeader) || errors.Is(e, raft.ErrLeadershipLost) || errors.Is(e, raft.ErrRaftShutdown) {
				e = ErrNotLeader
			}
			reply(reqs, e)
		}
	}()
	now := time.Now()
	alive := map[partition.MemberID]membership.Member{}
	for _, m := range n.ml.Alive() {
		alive[partition.MemberID(m.ID)] = m
	}
	if servers, err = n.syncRaft(servers, n.raftEligible(servers, alive, now)); err != nil {
		return err
	}
	if servers, err = n.replaceFailingVoters(servers, alive, now); err != nil {
		return err
	}
	// A member on probation is in raft but not yet trusted to receive the
	// tables: it counts as out of raft for the plan.
	probation := n.adm.onProbation()
	inRaft := map[partition.MemberID]bool{}
	for _, s := range servers {
		if id := partition.MemberID(s.ID); !probation[id] {
			inRaft[id] = true
		}
	}
	for id := range n.co.notPresent {
		if _, ok := alive[id]; ok && inRaft[id] {
			delete(n.co.notPresent, id)
			delete(n.co.removedAt, id)
		}
	}
	table, dir := n.fsm.snapshot()
	for id := range dir {
		if _, ok := alive[id]; (!ok || !inRaft[id]) && n.co.notPresent[id].IsZero() {
			n.co.notPresent[id] = now
		}
	}

	// Requests that change the directory or the suspects first, then the
	// table.
	var syncs, resets []*request
	for _, r := range reqs {
		switch r.Op {
		case reqSync:
			syncs = append(syncs, r)
		case reqResetLost:
			resets = append(resets, r)
		case reqLeave:
			r.reply <- n.markLeaving(r.From, dir, alive)
		case reqRemove:
			r.reply <- n.removeDrained(r.From, table, inRaft)
		case reqSuspect:
			r.reply <- n.suspect(r.From, r.Members, table, alive, inRaft, now)
		default:
			r.reply <- ErrRemote
		}
	}
	answered = true
	table, dir = n.fsm.snapshot()
	members := n.planMembers(table, dir, alive, inRaft, n.suspected(alive, now), now)

	next := table
	var applied []*request
	for _, r := range resets {
		parts := make([]partition.ID, len(r.Parts))
		for i, p := range r.Parts {
			parts[i] = partition.ID(p)
		}
		if t, changed := partition.ResetLost(next, parts); changed {
			next = t
			n.log.Warn("control: lost partitions reset; they are served again, empty", "by", r.From, "partitions", parts)
		}
		applied = append(applied, r)
	}
	stale := staleReasons{}
	for _, r := range syncs {
		p := partition.ID(r.P)
		if r.P < 0 || int(r.P) >= next.Count() || next.Owner(p) != r.From || !next.IsPending(p, r.M) {
			stale[staleReason(next, p, r.From, r.M, r.Epoch, members)]++
			r.reply <- ErrStale
			continue
		}
		t, changed := partition.CompleteCopy(next, p, r.M, r.Epoch, members, n.cfg.Plan)
		if !changed {
			stale[staleReason(next, p, r.From, r.M, r.Epoch, members)]++
			r.reply <- ErrStale
			continue
		}
		next = t
		applied = append(applied, r)
	}
	if len(stale) > 0 {
		n.log.Info("control: stale sync reports refused", "epoch", table.Epoch, "reasons", stale.String())
	}
	if next != table {
		// Each step above made a table one epoch after the one it started
		// from; the commit is one epoch after table, and the LostAt marks
		// Plan sets must name that epoch.
		next.Epoch = table.Epoch
	}
	if len(members.Active)+len(members.Suspect) > 0 {
		if t, lost, changed := partition.Plan(next, members, n.cfg.Plan); changed {
			if len(lost) > 0 {
				n.log.Error("control: partitions lost every replica; assigned afresh", "count", len(lost), "partitions", lost,
					"epoch", t.Epoch, "served_empty", n.cfg.Plan.RecreateLost)
			}
			next = t
		}
	}
	err = n.commitTable(table, next)
	reply(applied, err)
	if err == nil {
		err = n.gcDirectory(dir, alive, inRaft, now)
	}
	return err
}

// raftEligible returns the alive members that may hold a raft seat: alive
// minus the members whose raft heartbeats have failed for
// RaftContactTimeout (they are put in quarantine) and those still in
// quarantine. It also ends the probation of re-admitted members that proved
// raft contact.
func (n *Node) raftEligible(servers []raft.Server, alive map[partition.MemberID]membership.Member, now time.Time) map[partition.MemberID]membership.Member {
	for _, id := range n.adm.passed() {
		delete(n.co.quarantine, id)
		n.log.Info("control: re-admitted member proved raft contact", "member", id)
	}
	for id := range n.co.quarantine {
		if _, ok := alive[id]; !ok {
			delete(n.co.quarantine, id) // gone: memberlist's failure handling applies
			n.adm.drop(id)
		}
	}
	inConf := map[partition.MemberID]bool{}
	for _, s := range servers {
		inConf[partition.MemberID(s.ID)] = true
	}
	fresh := n.cfg.Timings.RaftHeartbeatTimeout + n.netTimeout
	for id, last := range n.health.unreachable(now, n.cfg.Timings.RaftContactTimeout, fresh) {
		if id == n.cfg.ID || !inConf[id] {
			continue
		}
		// Raft reports a failed heartbeat with the last contact of the
		// follower's replication, and a heartbeat of a member's earlier stint
		// may fail after its removal: re-added, the member would be condemned
		// at once (seen 50 ms after re-admissions, and after a heal). Its
		// contact counts from its addition at the earliest.
		if added := n.co.addedAt[id]; added.After(last) {
			if now.Sub(added) < n.cfg.Timings.RaftContactTimeout {
				continue
			}
			last = added
		}
		backoff := n.co.quarantine.impose(id, now, n.cfg.DeadWait(), maxQuarantine*n.cfg.DeadWait())
		n.adm.drop(id)
		n.log.Warn("control: raft cannot reach member; treating it as failed", "member", id,
			"last_contact", now.Sub(last).Round(time.Millisecond), "readmit_after", backoff)
	}
	n.endQuarantines(alive, now)
	out := make(map[partition.MemberID]membership.Member, len(alive))
	for id, m := range alive {
		if n.co.quarantine.holds(id, now) {
			continue
		}
		out[id] = m
	}
	return out
}

// syncRaft brings raft's configuration in line with memberlist: alive
// members get a directory entry and a raft seat (voter while there are
// fewer than MaxVoters), members that are gone lose theirs, and live
// non-voters replace missing voters. A member leaving quarantine is added as
// a non-voter on probation. It returns the new server list.
func (n *Node) syncRaft(servers []raft.Server, alive map[partition.MemberID]membership.Member) ([]raft.Server, error) {
	_, dir := n.fsm.snapshot()
	find := func(id partition.MemberID) int {
		return slices.IndexFunc(servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) })
	}
	voters := func() int {
		v := 0
		for _, s := range servers {
			if s.Suffrage == raft.Voter {
				v++
			}
		}
		return v
	}

	// Departures first, so that their voter seats can be refilled.
	for _, s := range slices.Clone(servers) {
		id := partition.MemberID(s.ID)
		if id == n.cfg.ID {
			continue
		}
		if _, ok := alive[id]; ok {
			continue
		}
		if err := n.awaitRaft(n.raft.RemoveServer(s.ID, 0, raftTimeout)); err != nil {
			return servers, err
		}
		n.co.removedAt[id] = time.Now()
		delete(n.co.addedAt, id)
		n.health.forget(s.ID)
		n.adm.drop(id)
		servers = slices.DeleteFunc(servers, func(o raft.Server) bool { return o.ID == s.ID })
		n.log.Info("control: removed gone member from raft", "member", id)
	}

	ids := make([]partition.MemberID, 0, len(alive))
	for id := range alive {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		m := alive[id]
		e, ok := dir[id]
		if ok && e.Removed {
			continue
		}
		if !ok {
			if m.Leaving || !n.admitTransport(m) {
				continue
			}
			e = dirEntry{TransportAddr: m.TransportAddr, GossipAddr: m.GossipAddr}
			if err := n.apply(command{Op: opPutMember, ID: id, Entry: e}); err != nil {
				return servers, err
			}
			dir[id] = e
		}
		if e.Leaving || find(id) >= 0 {
			continue
		}
		var f raft.IndexFuture
		suffrage := raft.Nonvoter
		_, onProbation := n.co.quarantine[id]
		if onProbation {
			n.compactLog()
		}
		if voters() < n.cfg.MaxVoters && !onProbation {
			suffrage = raft.Voter
			f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(e.TransportAddr), 0, raftTimeout)
		} else {
			f = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(e.TransportAddr), 0, raftTimeout)
		}
		if err := n.awaitRaft(f); err != nil {
			return servers, err
		}
		servers = append(servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(id), Address: raft.ServerAddress(e.TransportAddr)})
		n.co.addedAt[id] = time.Now()
		if onProbation {
			// The member must apply a command committed after its
			// re-admission to prove that raft reaches it again.
			idx, err := n.applyIndex(command{Op: opPutMember, ID: id, Entry: e})
			if err != nil {
				return servers, err
			}
			n.adm.start(id, idx)
			n.log.Info("control: re-admitted member to raft on probation", "member", id)
			continue
		}
		n.log.Info("control: added member to raft", "member", id, "voter", suffrage == raft.Voter)
	}
	probation := n.adm.onProbation()

	// Refill voter seats from live, non-leaving non-voters.
	for i := range servers {
		if voters() >= n.cfg.MaxVoters {
			break
		}
		s := servers[i]
		if s.Suffrage == raft.Voter || dir[partition.MemberID(s.ID)].Leaving || probation[partition.MemberID(s.ID)] {
			continue
		}
		if err := n.awaitRaft(n.raft.AddVoter(s.ID, s.Address, 0, raftTimeout)); err != nil {
			return servers, err
		}
		servers[i].Suffrage = raft.Voter
		n.log.Info("control: promoted member to voter", "member", s.ID)
	}
	return servers, nil
}

// compactLog snapshots the leader's state and compacts its raft log (to
// trailingLogs entries), so that a member re-admitted after a quarantine,
// whose log ends where it was removed, is caught up with one snapshot rather
// than by replaying every table committed since (see raftConfig). Raft takes
// no snapshot before the latest configuration entry is applied (the member's
// removal, often just before: the Jepsen runs showed "cannot take snapshot
// now"), hence the barrier first, and a retry or two should a configuration
// change slip in between. A failure only costs the member a longer catch-up
// (the periodic snapshots still bound it).
func (n *Node) compactLog() {
	var err error
	for range 3 {
		err = n.awaitRaft(n.raft.Barrier(raftTimeout))
		if err == nil {
			err = n.awaitRaft(n.raft.Snapshot())
		}
		if err == nil || errors.Is(err, raft.ErrNothingNewToSnapshot) || errors.Is(err, ErrClosed) ||
			errors.Is(err, raft.ErrRaftShutdown) || errors.Is(err, raft.ErrNotLeader) {
			break
		}
	}
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		n.log.Debug("control: snapshot before a re-admission", "err", err)
	}
}

// planMembers builds the planner's view. A member is present when it is
// alive and in raft (so it receives the tables). A member in the table that
// is not present stays in the plan (as if alive) until DeadWait has passed
// since it was first seen absent and it is out of raft: see LeaseValid.
//
// Suspects (see suspected) are listed in Suspect instead of Active, and
// also in Leaving when they leave.
func (n *Node) planMembers(table *partition.Table, dir map[partition.MemberID]dirEntry,
	alive map[partition.MemberID]membership.Member, inRaft map[partition.MemberID]bool,
	suspects map[partition.MemberID]bool, now time.Time) partition.Members {
	inTable := map[partition.MemberID]bool{}
	for _, id := range table.Members() {
		inTable[id] = true
	}
	n.noteAwaited(table, dir, alive, inRaft, now)
	var ms partition.Members
	for id, e := range dir {
		if e.Removed {
			continue
		}
		_, isAlive := alive[id]
		if !isAlive || !inRaft[id] {
			if !inTable[id] {
				continue
			}
			if n.deadConfirmed(id, inRaft, now) {
				if _, ok := n.co.awaited[id]; ok {
					ms.Unreachable = append(ms.Unreachable, id)
				}
				continue
			}
		}
		switch {
		case suspects[id]:
			ms.Suspect = append(ms.Suspect, id)
			if e.Leaving {
				ms.Leaving = append(ms.Leaving, id)
			}
		case e.Leaving:
			ms.Leaving = append(ms.Leaving, id)
		default:
			ms.Active = append(ms.Active, id)
		}
	}
	slices.Sort(ms.Active)
	slices.Sort(ms.Leaving)
	slices.Sort(ms.Suspect)
	slices.Sort(ms.Unreachable)
	return ms
}

// noteAwaited keeps co.awaited, the absent members whose partitions wait
// for them instead of being lost (partition.Members.Unreachable): every
// member the table names that is absent (not alive or not in raft) and not
// known to be gone, for LostGrace from when it was first seen absent. A
// member is gone when its transport address refuses connections (its
// process ended: a crash, a kill) or answers with another member's ID (a
// restart); a member that does not answer at all may be stopped (SIGSTOP)
// or cut off by the network, and hold its data: losing its partitions at
// once would lose data that comes back with it. probeAbsent finds out.
func (n *Node) noteAwaited(table *partition.Table, dir map[partition.MemberID]dirEntry,
	alive map[partition.MemberID]membership.Member, inRaft map[partition.MemberID]bool, now time.Time) {
	absent := map[partition.MemberID]bool{}
	for _, id := range table.Members() {
		if _, ok := alive[id]; !ok || !inRaft[id] {
			absent[id] = true
		}
	}
	for id := range n.co.awaited {
		if !absent[id] {
			delete(n.co.awaited, id)
		}
	}
	n.forgetProbes(absent)
	for id := range absent {
		since := n.co.notPresent[id]
		if since.IsZero() {
			since = now
		}
		if now.Sub(since) >= n.cfg.LostGrace || n.givenUpOn(id) || n.probeAbsent(id, dir[id].TransportAddr) {
			if _, ok := n.co.awaited[id]; ok {
				n.log.Warn("control: stopped waiting for an absent member; the partitions only it held are lost", "member", id)
			}
			delete(n.co.awaited, id)
			continue
		}
		if _, ok := n.co.awaited[id]; !ok {
			n.co.awaited[id] = since
		}
	}
}

// absentProbe is the state of the probes of one absent member.
type absentProbe struct {
	running bool
	last    time.Time // when the last probe started
	gone    bool      // a probe found the member's process gone
}

// probeAbsent reports whether absent member id is known to be gone, and
// probes its transport address in the background when it is not (at most
// once every DeadWait): a refused connection or an answer naming another
// member means gone.
func (n *Node) probeAbsent(id partition.MemberID, addr string) (gone bool) {
	n.probesMu.Lock()
	defer n.probesMu.Unlock()
	if n.probes == nil {
		n.probes = map[partition.MemberID]*absentProbe{}
	}
	pr := n.probes[id]
	if pr == nil {
		pr = &absentProbe{}
		n.probes[id] = pr
	}
	if pr.gone || pr.running || addr == "" || time.Since(pr.last) < n.cfg.DeadWait() || n.closed.Load() {
		return pr.gone
	}
	pr.running, pr.last = true, time.Now()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := n.stopContext()
		defer cancel()
		answer, err := n.deps.Client.CallTimeout(ctx, addr, transport.Message{Type: msgProbe}, n.probeTimeout())
		gone := transport.Refused(err) || (err == nil && len(answer.Header) > 0 && string(answer.Header) != string(id))
		n.probesMu.Lock()
		pr.running = false
		pr.gone = pr.gone || gone
		n.probesMu.Unlock()
		if gone {
			n.log.Info("control: an absent member's process is gone", "member", id, "addr", addr, "err", err)
		}
	}()
	return false
}

// forgetProbes drops the probe state of members no longer absent.
func (n *Node) forgetProbes(absent map[partition.MemberID]bool) {
	n.probesMu.Lock()
	defer n.probesMu.Unlock()
	for id, pr := range n.probes {
		if !absent[id] && !pr.running {
			delete(n.probes, id)
		}
	}
}

// deadConfirmed reports whether id may be treated as dead: out of raft, and
// DeadWait passed since this leader first saw it absent and since it
// removed it from raft.
func (n *Node) deadConfirmed(id partition.MemberID, inRaft map[partition.MemberID]bool, now time.Time) bool {
	if inRaft[id] {
		return false
	}
	since := n.co.notPresent[id]
	if r := n.co.removedAt[id]; r.After(since) {
		since = r
	}
	return !since.IsZero() && now.Sub(since) >= n.cfg.DeadWait()
}

// markLeaving records that id is leaving.
func (n *Node) markLeaving(id partition.MemberID, dir map[partition.MemberID]dirEntry, alive map[partition.MemberID]membership.Member) error {
	e, ok := dir[id]
	if !ok {
		m, isAlive := alive[id]
		if !isAlive {
			return nil // unknown and gone: nothing to do
		}
		e = dirEntry{TransportAddr: m.TransportAddr, GossipAddr: m.GossipAddr}
	}
	if e.Leaving || e.Removed {
		return nil
	}
	e.Leaving = true
	if err := n.apply(command{Op: opPutMember, ID: id, Entry: e}); err != nil {
		return err
	}
	dir[id] = e
	n.log.Info("control: member is leaving", "member", id)
	return nil
}

// removeDrained removes a leaving member that holds nothing from raft and
// tombstones it in the directory.
func (n *Node) removeDrained(id partition.MemberID, table *partition.Table, inRaft map[partition.MemberID]bool) error {
	if slices.Contains(table.Members(), id) {
		return ErrNotDrained
	}
	if id == n.cfg.ID {
		// The leader cannot remove itself cleanly: hand leadership over
		// and let the caller retry with the new leader.
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("control: leadership transfer failed", "err", err)
		}
		return ErrNotLeader
	}
	if inRaft[id] {
		if err := n.awaitRaft(n.raft.RemoveServer(raft.ServerID(id), 0, raftTimeout)); err != nil {
			return err
		}
	}
	e, _ := n.fsm.member(id)
	e.Leaving, e.Removed = true, true
	if err := n.apply(command{Op: opPutMember, ID: id, Entry: e}); err != nil {
		return err
	}
	n.log.Info("control: removed leaving member", "member", id)
	return nil
}

// gcDirectory deletes directory entries of members that are gone for good:
// tombstones of members memberlist no longer reports alive, and dead
// members that hold nothing.
func (n *Node) gcDirectory(dir map[partition.MemberID]dirEntry, alive map[partition.MemberID]membership.Member,
	inRaft map[partition.MemberID]bool, now time.Time) error {
	held := map[partition.MemberID]bool{}
	for _, id := range n.fsm.table().Members() {
		held[id] = true
	}
	for id, e := range dir {
		if _, ok := alive[id]; ok || inRaft[id] || held[id] {
			continue
		}
		if e.Removed || n.deadConfirmed(id, inRaft, now) {
			if err := n.apply(command{Op: opDeleteMember, ID: id}); err != nil {
				return err
			}
			delete(n.co.notPresent, id)
			delete(n.co.removedAt, id)
		}
	}
	return nil
}

// commitTable commits next if it differs from cur (the committed table it
// was derived from), as the epoch after cur's.
func (n *Node) commitTable(cur, next *partition.Table) error {
	if next == cur || (next.Epoch != cur.Epoch && sameTable(cur, next)) {
		return nil
	}
	next.Epoch = cur.Epoch + 1
	if err := next.Validate(); err != nil {
		n.log.Error("control: planner produced an invalid table; not committed", "err", err)
		return err
	}
	if err := n.apply(command{Op: opSetTable, Prev: cur.Epoch, Table: next}); err != nil {
		return err
	}
	n.log.Debug("control: committed table", "epoch", next.Epoch)
	return nil
}

func sameTable(a, b *partition.Table) bool {
	c := *b
	c.Epoch = a.Epoch
	return a.Equal(&c)
}

// apply commits one command through raft and returns the FSM's answer.
func (n *Node) apply(c command) error {
	_, err := n.applyIndex(c)
	return err
}

// applyIndex is apply, also returning the command's raft index.
func (n *Node) applyIndex(c command) (uint64, error) {
	b, err := encodeCommand(c)
	if err != nil {
		return 0, err
	}
	f := n.raft.Apply(b, raftTimeout)
	if err := n.awaitRaft(f); err != nil {
		return 0, err
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return f.Index(), err
	}
	return f.Index(), nil
}

// maybeBootstrap bootstraps raft when the bootstrap rule (see the package
// doc) elects this member.
func (n *Node) maybeBootstrap() {
	if !n.joinAttempted.Load() {
		return
	}
	alive := n.ml.Alive()
	reset := func() { n.co.bootView = "" }
	for _, m := range alive {
		if m.InRaft {
			reset()
			return
		}
	}
	if len(alive) < n.cfg.ExpectMembers || alive[0].ID != string(n.cfg.ID) || (len(alive) == 1 && !n.mayFoundAlone()) {
		reset()
		return
	}
	ids := make([]string, len(alive))
	for i, m := range alive {
		ids[i] = m.ID
	}
	view := strings.Join(ids, ",")
	now := time.Now()
	if view != n.co.bootView {
		n.co.bootView, n.co.bootSince = view, now
		return
	}
	if now.Sub(n.co.bootSince) < n.cfg.Timings.BootstrapSettle {
		return
	}
	if n.cfg.VerifyTransport {
		// The founders are admitted like any joiner: a member whose transport fails the probe
		// (a foreign certificate) would be a voter nobody can reach.
		for _, m := range alive[1:] {
			if !n.admitTransport(m) {
				reset()
				return
			}
		}
	}
	var conf raft.Configuration
	for _, m := range alive[:min(len(alive), n.cfg.MaxVoters)] {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.TransportAddr)})
	}
	if err := n.raft.BootstrapCluster(conf).Error(); err != nil {
		n.log.Warn("control: bootstrap failed", "err", err)
		return
	}
	n.log.Info("control: bootstrapped raft", "voters", len(conf.Servers), "members", len(alive))
	n.markInRaft()
}

// markInRaft gossips, once, that this member is in a raft cluster.
func (n *Node) markInRaft() {
	if n.inRaft.Load() {
		return
	}
	if err := n.ml.SetMeta(func(m *membership.Meta) { m.InRaft = true }); err != nil {
		n.log.Warn("control: gossip in-raft flag", "err", err)
	}
	n.inRaft.Store(true)
}
