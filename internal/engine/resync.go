package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// Failover resync.
//
// An owner replicates each write batch to every backup before it starts the next one, so each
// backup holds a prefix of the owner's numbered writes: two replicas with the same sequence
// number hold the same entries. An owner that dies in the middle of a write breaks that for the
// survivors: with two or more backups, one may hold the unacknowledged write numbered N and
// another not. The write may be lost, but the replicas must not stay different: the new owner
// would number its own next write N too, and a replica that holds the orphan would ignore it
// (it applies only newer writes), losing an acknowledged write at the next failover.
//
// So before a member writes as a partition's owner, unless it knows it has owned the partition
// without interruption since it last did so, it takes over (takeOver):
//  1. it probes every other replica with its own sequence number. A replica whose number
//     differs, or that is already unsure, marks itself unsure: it may differ from its owner,
//     and only a full copy from an owner clears the mark. The mark lives on the replica, so a
//     later owner learns of it even if this one dies.
//  2. it raises its sequence number to the highest any replica holds, so that each write it
//     numbers is newer than anything on any replica: every replica applies it, orphan or not.
//  3. it sends a full copy (the migration's) to each unsure backup, in the background. The
//     backup keeps serving from its own store, applying the new writes to it as well, and
//     builds the copy beside it (a shadow), swapping only when the copy is complete: a backup
//     can be promoted at any moment and must never be partial. Its own store holds every
//     acknowledged write (those of the dead owner it acknowledged, the new owner's because they
//     are newer), so any single further crash during the resync loses none.
//
// A hand-off needs none of it (the old owner paused its writes, every replica is in sync, and a
// copy carries the owner's sequence number), so the probe finds nothing to resync.

// msgResyncProbe (wire.go) asks a replica for its sequence number (the owner's is in the
// header's seq mark) and whether it may differ from the owner; see takeOver.

// seqMark is the mutation a control message (a copy's begin, a resync probe) carries to pass
// the owner's sequence number; flags is seqMarkUnsure (probe) or seqMarkKeep (begin).
func seqMark(seq uint64, flags int) mutation {
	return mutation{Kind: mutStored, Seq: seq, Count: flags}
}

const (
	// seqMarkUnsure, in a probe: the owner itself may differ from the replicas.
	seqMarkUnsure = 1
	// seqMarkKeep, in a copy's begin: the receiver is a replica and must keep serving from its
	// store until the copy is complete.
	seqMarkKeep = 2
)

// readSeqMark returns the seq mark of a control message, if any.
func readSeqMark(muts []mutation) (seq uint64, flags int, ok bool) {
	for _, m := range muts {
		if m.Kind == mutStored && m.Map == "" {
			return m.Seq, m.Count, true
		}
	}
	return 0, 0, false
}

// takeOver runs before this member's first write as owner of p at a new epoch (see the top
// of this file). The caller holds p.writeMu. It reports false, with the answer for the
// writer, when it could not complete.
func (s *Service) takeOver(ctx context.Context, p *part) (opResponse, bool) {
	if err := s.mayPush(p.id); err != nil {
		// Its probes would mark the replicas unsure, and its resyncs overwrite them.
		return opResponse{Status: statusOf(err), Msg: err.Error()}, false
	}
	t, changed := s.cluster.Watch()
	p.mu.RLock()
	own := p.rs.seq
	flags := 0
	if p.unsure || p.shadow != nil {
		flags = seqMarkUnsure
	}
	p.mu.RUnlock()
	replies := map[partition.MemberID]opResponse{}
	wait := 5 * time.Millisecond
	for {
		if t.Owner(p.id) != s.self {
			return opResponse{Status: statusWrongOwner, Epoch: t.Epoch}, false
		}
		var todo []partition.MemberID
		for _, m := range replicaTargets(t, p.id, s.self) {
			if _, ok := replies[m]; !ok {
				todo = append(todo, m)
			}
		}
		if len(todo) == 0 {
			break
		}
		header, _, err := encodeBatch(int32(p.id), t.Epoch, string(s.self), []mutation{seqMark(own, flags)})
		if err != nil {
			return opResponse{Status: statusOf(err), Msg: err.Error()}, false
		}
		// Each probe is bounded by BackupAckTimeout, and a replica that does not answer is
		// reported, as in sendToReplicas: the partition's writers wait behind the takeover.
		dl, _ := ctx.Deadline()
		answers := make([]opResponse, len(todo))
		errs := make([]error, len(todo))
		gone := make([]bool, len(todo))
		var wg sync.WaitGroup
		for i, m := range todo {
			timeout, full := s.ackTimeout(m, dl, len(header))
			wg.Go(func() {
				gone[i], answers[i], errs[i] = s.callReplica(ctx, m, transport.Message{Type: msgResyncProbe, Header: header}, timeout, full)
			})
		}
		wg.Wait()
		failed, reported := false, false
		for i, m := range todo {
			if errs[i] != nil {
				failed = true
				s.log.Debug("resync probe failed, retrying", "partition", p.id, "member", m, "unreachable", gone[i], "err", errs[i])
				if gone[i] {
					s.cluster.ReportUnreachable(m)
					reported = true
				}
				continue
			}
			replies[m] = answers[i]
		}
		if !failed {
			continue
		}
		pause := wait
		wait = min(wait*2, replicationBackoff)
		if reported {
			pause = max(pause, s.cfg.BackupAckTimeout)
		}
		if err := s.waitToRetry(ctx, changed, pause, time.Time{}); err != nil {
			err = fmt.Errorf("probing the replicas of partition %d: %w", p.id, err)
			return opResponse{Status: statusOf(err), Msg: err.Error()}, false
		}
		t, changed = s.cluster.Watch()
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for m, r := range replies {
		p.rs.seq = max(p.rs.seq, r.Version)
		if r.Done && t.IsReplica(p.id, m) {
			if p.resync == nil {
				p.resync = make(map[partition.MemberID]bool)
			}
			p.resync[m] = true
		}
	}
	// This member's store is now the partition's truth: whatever copy it was receiving is moot.
	p.dropShadow()
	p.unsure = false
	s.persistTakeover(p, t.Epoch)
	s.startResyncs(p)
	p.ownEpoch.Store(t.Epoch)
	return opResponse{}, true
}

// startResyncs starts a runner for each backup in p.resync that has none. The caller holds
// p.mu.
func (s *Service) startResyncs(p *part) {
	for m := range p.resync {
		if p.resyncing[m] {
			continue
		}
		if p.resyncing == nil {
			p.resyncing = make(map[partition.MemberID]bool)
		}
		p.resyncing[m] = true
		if !s.spawn(func() { s.runResync(p, m) }) {
			delete(p.resyncing, m)
		}
	}
}

// handleResyncProbe answers an owner's probe: this replica's sequence number (Version) and
// whether it may differ from the owner (Done), marking itself unsure when it may.
func (s *Service) handleResyncProbe(ctx context.Context, msg transport.Message) (transport.Message, error) {
	var answer opResponse
	resp := s.applyBatch(msg, func(p *part, h *batchHeader) {
		seq, flags, _ := readSeqMark(h.Muts)
		if p.shadow != nil || p.rs.seq != seq || flags&seqMarkUnsure != 0 {
			p.unsure = true
		}
		answer = opResponse{Version: p.rs.seq, Done: p.unsure}
	})
	if resp.Status != statusOK {
		return encodeResponse(resp)
	}
	return encodeResponse(answer)
}

// runResync sends a full copy of p to backup m, retrying, until one completes, m is no longer a
// backup, or this member no longer owns p.
func (s *Service) runResync(p *part, m partition.MemberID) {
	for {
		p.writeMu.Lock()
		t := s.cluster.Table()
		p.mu.Lock()
		if !p.resync[m] || t.Owner(p.id) != s.self || !t.IsReplica(p.id, m) || s.closed() {
			// Not ours to do any more; an unsure backup keeps its mark for the next owner.
			delete(p.resync, m)
			delete(p.resyncing, m)
			p.mu.Unlock()
			p.writeMu.Unlock()
			return
		}
		delete(p.missed, m) // the copy begins under writeMu: it will hold every earlier write
		p.mu.Unlock()
		err := s.sendCopy(s.ctx, p, m, t.Epoch) // releases writeMu
		if err == nil {
			p.mu.Lock()
			if p.missed[m] {
				// A write gave up on m during the copy, which may lack it: copy again.
				p.mu.Unlock()
				continue
			}
			delete(p.resync, m)
			delete(p.resyncing, m)
			p.mu.Unlock()
			s.resyncsDone.Add(1)
			return
		}
		s.log.Info("partition resync failed, will retry", "partition", p.id, "to", m, "err", err)
		timer := time.NewTimer(migrationRetry)
		select {
		case <-timer.C:
		case <-s.ctx.Done():
			timer.Stop()
		}
	}
}

// needsResync reports whether this owner still has to send m a full copy of p.
func (p *part) needsResync(m partition.MemberID) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.resync[m]
}

// extendOwnership carries each partition's takeover from prev to t when this member owned it in
// both and t immediately follows prev: no other member can have owned it in between.
func (s *Service) extendOwnership(prev, t *partition.Table) {
	if prev == nil || t.Epoch != prev.Epoch+1 {
		return
	}
	for i, p := range s.parts {
		id := partition.ID(i)
		if prev.Owner(id) == s.self && t.Owner(id) == s.self {
			p.ownEpoch.CompareAndSwap(prev.Epoch, t.Epoch)
		}
	}
}

// startTakeOvers takes over, in the background, each partition this member owns in t that it
// has not taken over at t's epoch, so that replicas left different by a failover are resynced
// without waiting for a write. The migration driver calls it at every table change and retry.
func (s *Service) startTakeOvers(t *partition.Table) {
	for i, p := range s.parts {
		if t.Owner(partition.ID(i)) != s.self || p.ownEpoch.Load() == t.Epoch || !p.takingOver.CompareAndSwap(false, true) {
			continue
		}
		if !s.spawn(func() {
			defer p.takingOver.Store(false)
			p.writeMu.Lock()
			defer p.writeMu.Unlock()
			cur := s.cluster.Table()
			if cur.Owner(p.id) != s.self || p.ownEpoch.Load() == cur.Epoch {
				return
			}
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OperationTimeout)
			defer cancel()
			if resp, ok := s.takeOver(ctx, p); !ok && !s.closed() {
				s.log.Debug("partition takeover not done, will retry", "partition", p.id, "status", resp.Status)
			}
		}) {
			p.takingOver.Store(false)
		}
	}
}

// applyReplicated applies a mutation sent by the owner (a write or a copied entry) to p, which
// is a partition or its shadow. The caller holds the partition's mu. With detach, the message
// m came in is reused afterwards: a write-behind queue, the only thing here that keeps a
// write's key and value, gets the stored copies instead (recordStore.detach).
func (s *Service) applyReplicated(p *part, m mutation, now int64, detach bool) (changed bool) {
	wb := s.persistenceOf(m.Map).writeBehind()
	var cleared []string
	if m.Kind == mutClear && wb {
		cleared = p.rs.keysBefore(m.Map, m.Seq)
	}
	changed = p.rs.applyAt(m, now)
	if detach && wb && (m.Kind == mutSet || m.Kind == mutDelete) {
		p.rs.detach(&m)
	}
	s.trackDirty(p, m, cleared, now)
	return changed
}
