package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/internal/writebehind"
	"github.com/gridmap/gridmap/partition"
)

// migrationRetry is how often the driver re-examines the table when nothing changed, so that a
// copy that failed is tried again.
const migrationRetry = 500 * time.Millisecond

// handOffWait bounds how long an owner keeps a partition paused waiting for the coordinator to
// commit the hand-off it asked for; after it, the owner resumes and the copy is retried.
const handOffWait = 10 * time.Second

// copyTask names one partition copy: partition p to member m.
type copyTask struct {
	p partition.ID
	m partition.MemberID
}

// runMigrations is the migration driver. On every table change it starts the copies this
// member must send as owner (one per pending member, at most MaxConcurrentMigrations at once) and
// drops the partitions it no longer holds. A copy that fails is tried again after a pause that
// grows with its failures (copyBackoff); none starts while this member has no lease, since
// each would fail before it begins (mayPush).
func (s *Service) runMigrations() {
	defer s.wg.Done()
	running := make(map[copyTask]uint64) // task -> the target's Pending.Since when it started
	done := make(chan copyResult)
	slots := make(chan struct{}, s.cfg.MaxConcurrentMigrations)
	retry := time.NewTicker(migrationRetry)
	defer retry.Stop()
	var backoff copyBackoff
	var prev *partition.Table
	for {
		t, changed := s.cluster.Watch()
		if prev == nil || t.Epoch != prev.Epoch {
			s.extendOwnership(prev, t)
			s.dropStale(prev, t)
			backoff.prune(t, s.self)
			s.acks.forget(tableHas(t))
			prev = t
		}
		s.startTakeOvers(t)
		leased := s.cluster.LeaseValid()
		now := time.Now()
		for i, a := range t.Partitions {
			if !leased {
				break
			}
			if len(a.Replicas) == 0 || a.Replicas[0] != s.self {
				continue
			}
			for _, pm := range a.Pending {
				task := copyTask{p: partition.ID(i), m: pm.Member}
				if _, ok := running[task]; ok || len(running) >= cap(slots) || !backoff.ready(task, pm.Since, now) {
					continue
				}
				running[task] = pm.Since
				slots <- struct{}{}
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					err := s.copyPartition(s.ctx, task.p, task.m)
					if err == nil {
						s.copiesDone.Add(1)
					}
					<-slots
					select {
					case done <- copyResult{task: task, err: err}:
					case <-s.ctx.Done():
					}
				}()
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case r := <-done:
			since := running[r.task]
			delete(running, r.task)
			if r.err == nil {
				backoff.succeeded(r.task)
				break
			}
			if s.closed() {
				return
			}
			s.copiesFailed.Add(1)
			pause := backoff.failed(r.task, since, time.Now())
			s.log.Info("partition copy failed, will retry", "partition", r.task.p, "to", r.task.m, "err", r.err,
				"retry_in", pause.Round(time.Millisecond))
		case <-changed:
		case <-retry.C:
		}
	}
}

// copyResult is how a copy the driver started ended.
type copyResult struct {
	task copyTask
	err  error
}

// dropStale frees the data of partitions this member neither replicates nor receives, and
// empties a partition that this member now replicates without having received it (a lost
// partition assigned afresh): whatever it still held from an earlier assignment is stale. A
// partition lost since prev (its LostAt grew) keeps only what an owner of its new incarnation
// sent (enterIncarnation): a copy this member was receiving when it was lost is stale too.
// prev is the table the driver saw before t (nil at first).
func (s *Service) dropStale(prev, t *partition.Table) {
	if t.Epoch == 0 {
		return
	}
	for i, a := range t.Partitions {
		id := partition.ID(i)
		p := s.parts[i]
		holds := t.IsReplica(id, s.self) || t.IsPending(id, s.self)
		if holds && prev != nil && len(prev.Partitions) == len(t.Partitions) && a.LostAt > prev.Partitions[i].LostAt {
			p.enterIncarnation(s, a.LostAt)
			continue
		}
		fresh := prev != nil && prev.Epoch > 0 && t.IsReplica(id, s.self) &&
			!prev.IsReplica(id, s.self) && !prev.IsPending(id, s.self)
		if (holds && !fresh) || len(a.Replicas) == 0 {
			continue
		}
		p.mu.Lock()
		// A copy or backup stamped with a newer epoch than the table that decides means the
		// sender already knows a table in which this member holds the partition: keep it.
		decided := t.Epoch
		if fresh {
			decided = prev.Epoch
		}
		if (len(p.rs.maps) > 0 || len(p.queues) > 0 || p.shadow != nil || p.diskLife != 0) && p.seenEpoch <= decided {
			p.forget(s)
		}
		p.mu.Unlock()
	}
}

// copyPartition sends a full copy of partition p to pending member m, then reports it to the
// coordinator. When m is to become the owner, the partition's writers are paused from the end of
// the copy until the coordinator commits the hand-off: that final step is the only pause.
func (s *Service) copyPartition(ctx context.Context, p partition.ID, m partition.MemberID) error {
	pt := s.parts[p]
	pt.writeMu.Lock()
	t := s.cluster.Table()
	asOwner, pending := pendingRole(t, p, m)
	if t.Owner(p) != s.self || !pending {
		pt.writeMu.Unlock()
		return nil
	}
	epoch := t.Epoch
	if t.IsReplica(p, m) && pt.needsResync(m) {
		// m is a backup that may differ from this owner: it becomes the owner only once its
		// resync (a full copy, see resync.go) is complete.
		pt.writeMu.Unlock()
		return fmt.Errorf("backup %s of partition %d is being resynced", m, p)
	} else if t.IsReplica(p, m) {
		// m is already an in-sync backup (a hand-off without a copy). Copying again would empty
		// it first, and a backup must never be partial: it may be promoted at any moment.
		pt.writeMu.Unlock()
	} else {
		pt.mu.Lock()
		delete(pt.missed, m) // the copy begins under writeMu: it will hold every earlier write
		pt.mu.Unlock()
		if err := s.sendCopy(ctx, pt, m, epoch); err != nil {
			return err
		}
	}
	if !asOwner {
		if pt.missedBy(m) {
			return fmt.Errorf("%s missed a write of partition %d during the copy; copying again", m, p)
		}
		if err := s.cluster.ReportSynced(ctx, p, m, epoch); err != nil {
			return err
		}
		if pt.missedBy(m) {
			// A write gave up on m while the report was being committed: m, a backup now,
			// gets a full copy again.
			pt.mu.Lock()
			if pt.resync == nil {
				pt.resync = make(map[partition.MemberID]bool)
			}
			pt.resync[m] = true
			delete(pt.missed, m)
			s.startResyncs(pt)
			pt.mu.Unlock()
		}
		return nil
	}

	// Hand-off: pause writers, tell the coordinator, and keep them paused until the table names
	// the new owner; the writers then find they are no longer at the owner and re-route.
	pt.writeMu.Lock()
	defer pt.writeMu.Unlock()
	t, changed := s.cluster.Watch()
	if _, still := pendingRole(t, p, m); t.Owner(p) != s.self || !still {
		return nil
	}
	if pt.missedBy(m) {
		return fmt.Errorf("%s missed a write of partition %d during the copy; copying again", m, p)
	}
	wait, cancel := context.WithTimeout(ctx, handOffWait)
	defer cancel()
	// The copy's epoch, not the current table's: the coordinator refuses a copy begun before m's
	// current stint as pending (partition.CompleteCopy).
	if err := s.cluster.ReportSynced(wait, p, m, epoch); err != nil {
		return fmt.Errorf("hand-off report: %w", err)
	}
	for t.Owner(p) == s.self {
		select {
		case <-changed:
			t, changed = s.cluster.Watch()
		case <-wait.Done():
			return fmt.Errorf("hand-off of partition %d to %s not committed in %v", p, m, handOffWait)
		}
	}
	return nil
}

// missedBy reports whether pending member m may lack a write (see missedWrite).
func (p *part) missedBy(m partition.MemberID) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.missed[m]
}

// sendCopy sends a full copy of the partition to m. The caller holds pt.writeMu; sendCopy
// releases it once the copy has begun.
func (s *Service) sendCopy(ctx context.Context, pt *part, m partition.MemberID, epoch uint64) error {
	// Begin while writers wait: every write after this point is also replicated to m (it is
	// pending in the table), and m keeps tombstones so the copy cannot resurrect what they delete.
	// The begin carries the owner's sequence number, which the copy reaches (its last write may
	// have been a delete, which leaves no entry), and tells a backup to keep serving meanwhile.
	if err := s.mayPush(pt.id); err != nil {
		pt.writeMu.Unlock()
		return err
	}
	pt.mu.RLock()
	mark := seqMark(pt.rs.seq, 0)
	pt.mu.RUnlock()
	if s.cluster.Table().IsReplica(pt.id, m) {
		mark.Count = seqMarkKeep
	}
	header, _, err := encodeBatch(int32(pt.id), epoch, string(s.self), []mutation{mark})
	if err == nil {
		// Writers wait for the begin: a target that does not answer in time (longer for a slow
		// one, see ackwatch.go) is reported, as in sendToReplicas, and the copy is retried later.
		var gone bool
		wait, _ := s.ackTimeout(m, time.Time{}, len(header))
		gone, _, err = s.callReplica(ctx, m, transport.Message{Type: msgSyncBegin, Header: header}, wait, true)
		if gone {
			s.cluster.ReportUnreachable(m)
		}
	}
	if err != nil {
		pt.writeMu.Unlock()
		return fmt.Errorf("begin: %w", err)
	}
	pt.mu.RLock()
	snap := pt.rs.snapshot()
	queues := make(map[string]writebehind.Snapshot, len(pt.queues))
	now := s.cfg.Now()
	for name, q := range pt.queues {
		queues[name] = q.Snapshot(now)
	}
	pt.mu.RUnlock()
	pt.writeMu.Unlock()

	var chunk []mutation
	for len(snap) > 0 {
		chunk = chunk[:0]
		n, size := 0, 0
		for n < len(snap) {
			if snap[n].paged {
				// Read a paged-out value as the chunk takes it: the copy holds at most a chunk
				// of them in memory.
				still, err := s.copyValue(pt, &snap[n])
				if err != nil {
					return fmt.Errorf("chunk: %w", err)
				}
				if !still {
					n++
					continue
				}
			}
			if len(chunk) > 0 && size+len(snap[n].Value)+len(snap[n].Key) > s.cfg.MigrationChunkSize {
				break
			}
			size += len(snap[n].Value) + len(snap[n].Key)
			chunk = append(chunk, snap[n])
			n++
		}
		snap = snap[n:]
		if len(chunk) == 0 {
			continue
		}
		header, body, err := encodeBatch(int32(pt.id), epoch, string(s.self), chunk)
		if err != nil {
			return err
		}
		if err := s.sendBatch(ctx, m, msgSyncChunk, header, body); err != nil {
			return fmt.Errorf("chunk: %w", err)
		}
	}
	if err := s.sendQueues(ctx, pt.id, m, epoch, queues); err != nil {
		return fmt.Errorf("write-behind queues: %w", err)
	}
	if err := s.sendRegistrations(ctx, m); err != nil {
		return fmt.Errorf("listener registrations: %w", err)
	}
	// The end swaps the copy in on a replica: check again that this member still owns the
	// partition with a current table (it may have been stopped during the copy).
	if err := s.mayPush(pt.id); err != nil {
		return err
	}
	if err := s.sendBatch(ctx, m, msgSyncEnd, controlHeader(pt.id, epoch, s.self), nil); err != nil {
		return fmt.Errorf("end: %w", err)
	}
	return nil
}

// copyValue reads the value of m, an entry of a copy's snapshot whose value is paged out, from
// the data folder, and reports whether the entry is still as the snapshot saw it. When it is not,
// a write since the copy began changed or removed it, and that write reaches the receiver by
// itself (it is pending in the table, and a write that misses it makes the copy start again):
// the copy leaves the entry out.
func (s *Service) copyValue(p *part, m *mutation) (bool, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	r := p.rs.lookup(m.Map, string(m.Key))
	if !r.ok || r.seq != m.Seq {
		return false, nil
	}
	r, err := p.rs.fill(m.Map, r)
	if err != nil {
		return false, err
	}
	m.Value, m.paged = r.value, false
	return true, nil
}

// mayPush reports (nil) whether this member may push partition p's data to another member (a
// copy, a resync, a takeover's probes): its lease is valid, so its table is current (see
// control's LeaseValid), and that table names it the owner. A member that resumes after a stop
// (SIGSTOP) longer than failure detection sees its old table, and then each table committed
// meanwhile while raft catches it up, with no lease until it has: in those tables it may own
// partitions reassigned long ago and owe copies of them (issue 21). Receivers refuse what such
// a member sends too (deposed), when their own table is newer.
func (s *Service) mayPush(p partition.ID) error {
	if !s.cluster.LeaseValid() {
		return fmt.Errorf("partition %d: %w", p, ErrNoLease)
	}
	if t := s.cluster.Table(); t.Owner(p) != s.self {
		return fmt.Errorf("partition %d: %w at %s", p, ErrWrongOwner, epochString(t.Epoch))
	}
	return nil
}

// sendQueues sends the partition's write-behind queues (their pending entries, with ages) to m,
// in chunks of about MigrationChunkSize.
func (s *Service) sendQueues(ctx context.Context, p partition.ID, m partition.MemberID, epoch uint64, queues map[string]writebehind.Snapshot) error {
	for name, snap := range queues {
		entries := snap.Entries
		for first := true; first || len(entries) > 0; first = false {
			n, size := 0, 0
			for n < len(entries) && (n == 0 || size+len(entries[n].Value)+len(entries[n].Key) <= s.cfg.MigrationChunkSize) {
				size += len(entries[n].Value) + len(entries[n].Key)
				n++
			}
			chunk := queueChunk{Part: int32(p), Epoch: epoch, From: string(s.self), Map: name, Snap: writebehind.Snapshot{LastSeq: snap.LastSeq, Entries: entries[:n]}}
			body, err := encodeQueueChunk(&chunk)
			if err != nil {
				return err
			}
			addr, ok := s.cluster.MemberAddr(m)
			if !ok {
				return fmt.Errorf("dmap: no address for member %s", m)
			}
			out, err := s.caller.Call(ctx, addr, transport.Message{Type: msgSyncQueue, Body: body})
			if err != nil {
				return err
			}
			resp, err := decodeResponse(out)
			if err != nil {
				return err
			}
			if err := resp.Status.err(resp.Msg); err != nil {
				return err
			}
			entries = entries[n:]
		}
	}
	return nil
}

// sendRegistrations sends m every cluster-wide listener registration list this member knows,
// so that m forwards the events of a partition it takes over (see clusterListeners).
func (s *Service) sendRegistrations(ctx context.Context, m partition.MemberID) error {
	for _, list := range s.events.cw.knownLists(s.self) {
		if list.Version == 0 || partition.MemberID(list.From) == m {
			continue
		}
		header, err := encodeRegs(&list)
		if err != nil {
			return err
		}
		if err := s.sendBatch(ctx, m, msgSyncRegs, header, nil); err != nil {
			return err
		}
	}
	return nil
}

// handleSyncQueue merges part of a copied write-behind queue.
func (s *Service) handleSyncQueue(ctx context.Context, msg transport.Message) (transport.Message, error) {
	c, err := decodeQueueChunk(msg.Body)
	if err != nil {
		return encodeResponse(opResponse{Status: statusBadRequest, Msg: "undecodable queue chunk"})
	}
	ps := s.persistenceOf(c.Map)
	if c.Part < 0 || int(c.Part) >= len(s.parts) || !ps.writeBehind() {
		return encodeResponse(opResponse{Status: statusBadRequest, Msg: fmt.Sprintf("queue chunk for map %q, partition %d: not a write-behind map here", c.Map, c.Part)})
	}
	if t := s.cluster.Table(); deposed(t, partition.ID(c.Part), c.From, c.Epoch) {
		return encodeResponse(opResponse{Status: statusWrongOwner, Epoch: t.Epoch, Msg: "the sender does not own the partition at the receiver's newer " + epochString(t.Epoch)})
	}
	p := s.parts[c.Part]
	p.mu.Lock()
	p.seenEpoch = max(p.seenEpoch, c.Epoch)
	target := p
	if p.shadow != nil {
		target = p.shadow
	}
	s.queue(target, ps).Restore(c.Snap, s.cfg.Now())
	p.mu.Unlock()
	return encodeResponse(opResponse{})
}

// pendingRole reports whether m is pending for p in t and whether it is to become the owner.
func pendingRole(t *partition.Table, p partition.ID, m partition.MemberID) (asOwner, pending bool) {
	for _, pm := range t.Partitions[p].Pending {
		if pm.Member == m {
			return pm.AsOwner, true
		}
	}
	return false, false
}

// controlHeader is the header of the copy's begin and end messages, which carry no mutations.
func controlHeader(p partition.ID, epoch uint64, self partition.MemberID) []byte {
	h, _, _ := encodeBatch(int32(p), epoch, string(self), nil) // scalars and empty slices always encode
	return h
}

// handleSyncBegin prepares a partition to receive a full copy: it empties it, or, when this
// member is one of its replicas, starts a shadow to receive the copy while the partition keeps
// serving from its store (a replica must never be partial: it may be promoted at any moment).
func (s *Service) handleSyncBegin(ctx context.Context, msg transport.Message) (transport.Message, error) {
	return encodeResponse(s.applyBatch(msg, func(p *part, h *batchHeader) {
		seq, flags, _ := readSeqMark(h.Muts)
		p.dropShadow()
		if flags&seqMarkKeep != 0 || s.cluster.Table().IsReplica(partition.ID(h.Part), s.self) {
			p.shadow = &part{id: p.id, rs: s.newRecordStore()}
			p.shadow.rs.beginSync()
			p.shadow.rs.seq = seq
			p.unsure = true // until the copy is complete
			return
		}
		p.clearDiskCopy(s)      // a partial copy must never be restored from: it is written at the end
		p.restored.Store(false) // the copy brings the restore records, if the partition has them
		p.rs.beginSync()
		p.rs.seq = seq
		for _, q := range p.queues {
			q.BeginSync()
		}
	}))
}

// handleSyncChunk applies entries of a copy, to the shadow when there is one.
func (s *Service) handleSyncChunk(ctx context.Context, msg transport.Message) (transport.Message, error) {
	return encodeResponse(s.applyBatch(msg, func(p *part, h *batchHeader) {
		target := p
		if p.shadow != nil {
			target = p.shadow
		}
		now := s.now()
		for _, m := range h.Muts {
			s.applyReplicated(target, m, now, false)
		}
	}))
}

// handleSyncEnd marks a copy complete; a shadow replaces the partition's store and queues.
func (s *Service) handleSyncEnd(ctx context.Context, msg transport.Message) (transport.Message, error) {
	return encodeResponse(s.applyBatch(msg, func(p *part, h *batchHeader) {
		p.unsure = false
		if sh := p.shadow; sh != nil {
			sh.rs.endSync()
			for _, q := range sh.queues {
				q.EndSync()
			}
			p.dropQueues()
			p.rs.release() // the shadow's records are counted already
			p.rs, p.queues, p.shadow = sh.rs, sh.queues, nil
			p.restored.Store(false) // isRestored reads the copy's records
		} else {
			p.rs.endSync()
			for _, q := range p.queues {
				q.EndSync()
			}
		}
		s.persistCopy(p, h.Epoch)
	}))
}
