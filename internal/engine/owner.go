package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// catchUpWait bounds how long an owner waits for its own table to reach the epoch a caller
// routed with, before asking the caller to retry.
const catchUpWait = 2 * time.Second

// checkOwner decides whether this member may serve an operation on partition p routed with
// epoch. A member answers for a partition only while it owns it in its latest table, that table
// is at least as new as the caller's, its lease is valid and the partition is not lost. It waits
// for its table to catch up with the caller's for up to catchUpWait, ctx and dl (zero: none).
func (s *Service) checkOwner(ctx context.Context, p partition.ID, epoch uint64, dl time.Time) (status, uint64) {
	if s.closed() {
		return statusClosed, 0
	}
	t, changed := s.cluster.Watch()
	if t.Epoch < epoch {
		wait := catchUpWait
		if !dl.IsZero() {
			wait = min(wait, time.Until(dl))
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for t.Epoch < epoch {
			select {
			case <-changed:
				t, changed = s.cluster.Watch()
			case <-timer.C:
				return statusWrongOwner, t.Epoch
			case <-ctx.Done():
				return statusWrongOwner, t.Epoch
			}
		}
	}
	return s.ownerStatus(t, p)
}

// checkOwnerNow is checkOwner for a caller that must not wait: ok is false when this member's
// table is older than epoch (checkOwner would wait for it to catch up).
func (s *Service) checkOwnerNow(p partition.ID, epoch uint64) (st status, tableEpoch uint64, ok bool) {
	if s.closed() {
		return statusClosed, 0, true
	}
	t := s.cluster.Table()
	if t.Epoch < epoch {
		return 0, 0, false
	}
	st, tableEpoch = s.ownerStatus(t, p)
	return st, tableEpoch, true
}

// ownerStatus says whether this member may serve partition p according to table t. Before it
// serves a partition assigned afresh after a loss, it forgets whatever it holds of an earlier
// incarnation (see part.enterIncarnation).
func (s *Service) ownerStatus(t *partition.Table, p partition.ID) (status, uint64) {
	if t.Owner(p) != s.self {
		return statusWrongOwner, t.Epoch
	}
	if !s.cluster.LeaseValid() {
		return statusNoLease, t.Epoch
	}
	a := &t.Partitions[p]
	if a.Lost {
		return statusPartitionLost, t.Epoch
	}
	if pt := s.parts[p]; a.LostAt > pt.lostAt.Load() {
		pt.enterIncarnation(s, a.LostAt)
	}
	return statusOK, t.Epoch
}

// enterIncarnation makes the partition's data on this member that of the incarnation that began
// when it was lost and assigned afresh at epoch lostAt: data received from an owner at that
// epoch or later (seenEpoch) is of it; anything else (a copy left unfinished by the loss, or
// entries kept from before it) is stale and dropped, so that the partition is served empty.
func (p *part) enterIncarnation(s *Service, lostAt uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lostAt.Load() >= lostAt {
		return
	}
	if p.seenEpoch < lostAt {
		p.forget(s)
	}
	p.lostAt.Store(lostAt)
}

// forget empties the partition on this member: its entries, write-behind queues and any copy
// being received. The caller holds p.mu.
func (p *part) forget(s *Service) {
	mem := p.rs.mem
	p.rs.release()
	if s.leaving.Load() {
		// The member leaves: the copies in its folder stay, so that a cluster stopped member by
		// member can start again on any folders holding, together, the newest copies (their
		// marks tell them from older ones).
		p.diskLife = 0
	} else {
		p.clearDiskCopy(s)
	}
	p.restored.Store(false) // the restore records went with the entries
	p.rs = newRecordStore()
	p.rs.mem = mem
	p.dropQueues()
	p.dropShadow()
	p.unsure = false
}

// dropShadow drops the copy being received, if any, and takes its records out of the memory
// account. The caller holds p.mu.
func (p *part) dropShadow() {
	if p.shadow != nil {
		p.shadow.rs.release()
		p.shadow.dropQueues()
		p.shadow = nil
	}
}

// notRestored refuses an operation on a partition this member owns but has not restored from
// the data folders: ensureRestored found it was not the owner, and the table made it the owner
// before the ownership check. Serving it now would let the restore, done by the next
// operation, write the folders' older entries over it. The router routes it again, and that
// attempt restores the partition first.
func notRestored(p *part) opResponse {
	return opResponse{Status: statusWrongOwner, Msg: fmt.Sprintf("partition %d is not restored from the data folders on this member yet", p.id)}
}

// serveOp executes an operation on this member as the partition's owner, within req.deadline.
func (s *Service) serveOp(ctx context.Context, req *opRequest) opResponse {
	if req.Part < 0 || int(req.Part) >= len(s.parts) {
		return opResponse{Status: statusBadRequest, Msg: fmt.Sprintf("partition %d out of range", req.Part)}
	}
	if len(req.Key)+len(req.Value) > s.cfg.MaxValueSize {
		return opResponse{Status: statusTooLarge, Msg: fmt.Sprintf("%d bytes, limit %d", len(req.Key)+len(req.Value), s.cfg.MaxValueSize)}
	}
	p := s.parts[req.Part]
	dl := req.deadline
	if !dl.IsZero() && s.waitsOnContext(req) {
		// Stores, loaders, processors and flushes take a context: give them the deadline. The
		// in-memory path bounds its own waits with dl and spares the context's timer.
		if cur, ok := ctx.Deadline(); !ok || dl.Before(cur) {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl)
			defer cancel()
		}
	}
	if p.disk != nil {
		if err := s.ensureRestored(ctx, p); err != nil {
			return opResponse{Status: statusOf(err), Msg: err.Error()}
		}
		if s.testRestoreChecked != nil {
			defer s.testRestoreChecked(p.id)()
		}
	}
	if req.Kind == opFlush {
		return s.flushPartition(ctx, p, req)
	}
	if req.Kind.writes() {
		if err := s.admitAll(ctx, req); err != nil {
			return opResponse{Status: statusOf(err), Msg: err.Error()}
		}
	}
	if !req.Kind.writes() {
		if st, ep := s.checkOwner(ctx, p.id, req.Epoch, dl); st != statusOK {
			return opResponse{Status: st, Epoch: ep}
		}
		if p.disk != nil && !p.isRestored() {
			return notRestored(p)
		}
		if req.Kind.perPartition() {
			return s.readPartitionSettled(p, req)
		}
		resp := s.read(p, req)
		missed := resp.Status == statusNotFound || (req.Kind == opContains && !resp.Done)
		if missed && s.persistenceOf(req.Map) != nil {
			return s.readThrough(ctx, p, req, resp)
		}
		return resp
	}

	return s.ownerWrite(ctx, p, req.Epoch, dl, req, func(w *writeBatch) opResponse {
		switch req.Kind {
		case opLock, opTryLock, opUnlock:
			return executeLock(w, req)
		case opExecute:
			return s.executeProcessor(ctx, w, req)
		case opExecuteAll:
			return s.executeProcessorAll(ctx, w, req)
		case opExecutePartition:
			return s.executePartitionProcessor(ctx, w, req)
		case opTxCommit:
			return executeTx(w, req)
		}
		if req.Kind == opClear {
			if w.rs.count(req.Map) > 0 {
				w.emit(mutation{Map: req.Map, Kind: mutClear})
			}
			return opResponse{}
		}
		return s.decideKeyWrite(w, req)
	})
}

// waitsOnContext reports whether serving req may call something that takes a context (a store,
// a loader, an entry processor) or wait for write-behind: those get a context with the
// request's deadline.
func (s *Service) waitsOnContext(req *opRequest) bool {
	switch req.Kind {
	case opFlush, opExecute, opExecuteAll, opExecutePartition, opTxCommit:
		return true
	}
	return s.persistenceOf(req.Map) != nil
}

// decideKeyWrite decides a single-key data write (put, put-if-absent, replace, delete...).
func (s *Service) decideKeyWrite(w *writeBatch, req *opRequest) opResponse {
	if st := w.rs.lockedAgainst(req.Map, req.Key, req.Holder, w.now); st != statusOK {
		return opResponse{Status: st}
	}
	resp, mut, changes := execute(w.rs, req, w.now)
	if !changes && req.Kind == opDelete && s.persistenceOf(req.Map) != nil {
		// The key may exist in the store only (not loaded, or evicted): delete it there too.
		mut, changes = mutation{Map: req.Map, Kind: mutDelete, Key: req.Key}, true
	}
	if changes {
		w.emit(mut)
	}
	return resp
}

// writeBatch collects the mutations one owner-side write produces. emit applies each at once
// (the partition's lock is held), so later decisions of the same write see earlier ones, and
// numbers it with the partition's next sequence number.
type writeBatch struct {
	rs   *recordStore
	now  int64
	muts []mutation
	// prevs[i] is the live record muts[i] replaced or removed (nil if none, and for clears and
	// lock changes), for events.
	prevs []record
	// cleared[i] lists the keys a clear muts[i] removes (write-through and write-behind store
	// them as deletes).
	cleared map[int][]string
	// detach: the mutations' keys and values alias a request buffer that will be reused once
	// they are applied; applyWrite points them at the stored copies (recordStore.detach).
	detach bool
	// op is the write's ID (zero: none); applyWrite answers a retry of a write the partition
	// remembers, and marks the batch's last mutation with the ID and the answer (answers.go).
	// retry: the write is a retry (opRequest.Retry), sent age after its first attempt
	// (opRequest.Age).
	op    opID
	retry bool
	age   time.Duration
	// refused: applyWrite did not admit the write, which would grow memory past the budget
	// (noRoom says how; memory.go). Nothing was applied.
	refused bool
	noRoom  noRoom
	// events tells emit which maps are listened to (nil: none), whose paged-out old values it
	// reads (paging.go).
	events *eventHub
	// declined: the decider left the write to the ordinary path (a write served on the
	// connection's reader that would read the data folder, see inlineWrite.decide). Nothing
	// was decided.
	declined bool
}

// before returns, for a read of key in mapName, the record the key had before the batch (the
// zero record if none), and whether the batch writes the key at all. Lock changes are not
// considered.
func (w *writeBatch) before(mapName string, key []byte) (record, bool) {
	for i := range w.muts {
		m := &w.muts[i]
		if m.Map != mapName {
			continue
		}
		switch m.Kind {
		case mutSet, mutDelete:
			if string(m.Key) == string(key) {
				return w.prevs[i], true
			}
		case mutClear:
			for _, r := range m.cleared {
				if r.key == string(key) {
					return r, true
				}
			}
			return record{}, true
		}
	}
	return record{}, false
}

// emit adds a mutation to the batch, numbered with the partition's next sequence number. It is
// applied only once the whole batch is decided (and, for write-through maps, stored); decisions
// within one batch never touch the same key twice.
func (w *writeBatch) emit(m mutation) {
	m.Seq = w.rs.seq + uint64(len(w.muts)) + 1
	var prev record
	// A paged-out value (paging.go) leaves the data folder with the write: it is read now, while
	// it is there, when a listener will be told it as the old value. (Otherwise a read of the
	// key while the write is pending waits for it to settle, see read.) A value that cannot be
	// read is told as none.
	oldValues := w.events != nil && w.rs.paged > 0 && w.events.listening(m.Map)
	switch m.Kind {
	case mutSet, mutDelete:
		prev = w.rs.get(m.Map, string(m.Key), w.now)
		if oldValues {
			prev, _ = w.rs.fill(m.Map, prev)
		}
	case mutClear:
		if w.cleared == nil {
			w.cleared = make(map[int][]string)
		}
		w.cleared[len(w.muts)] = w.rs.keysBefore(m.Map, m.Seq)
		// The records it removes (all are older than the clear, on the owner), for events.
		m.cleared = slices.Collect(w.rs.all(m.Map))
		if oldValues {
			_ = w.rs.fillAll(m.Map, m.cleared)
		}
	}
	w.muts = append(w.muts, m)
	w.prevs = append(w.prevs, prev)
}

// ownerWrite runs a write on this member as the owner of partition p: it checks ownership and
// lease at epoch and lets decide compute the mutations from the partition's records. Then, for
// maps stored write-through, it stores them (a store error fails the write and nothing is
// applied), applies them all under the partition's lock (readers see all of them or none),
// queues them for write-behind, and replicates them to the backups as one batch, which they
// also apply atomically. Writes of one partition are serialised from decision to replication.
//
// dl (zero: none) bounds the write besides ctx: a write whose deadline passed while it waited for
// the partition's lock fails with ErrTimeout without being applied, and the wait for the backups
// ends with ErrTimeout when it passes (see sendToReplicas). req is the user's operation (nil for a
// write of the member's own), whose ID makes the write exactly-once across retries (answers.go).
func (s *Service) ownerWrite(ctx context.Context, p *part, epoch uint64, dl time.Time, req *opRequest, decide func(w *writeBatch) opResponse) opResponse {
	waited := false
	for {
		resp, why, refused := s.ownerWriteOnce(ctx, p, epoch, dl, req, decide)
		if !refused {
			if waited && resp.Status == statusTimeout {
				// The deadline passed while the write waited for memory (and tried again):
				// what held it was the budget.
				resp = opResponse{Status: statusMemoryLimit, Msg: "waited for memory until the write's deadline: " + resp.Msg}
			}
			return resp
		}
		waited = true
		// No memory for it (memory.go): wait for room without holding the partition, so that
		// its deletes can free some, then decide the write again.
		if err := s.waitForRoom(ctx, p, epoch, dl, why); err != nil {
			// The status carries the sentinel; the message says the rest.
			return opResponse{Status: statusOf(err), Msg: strings.TrimPrefix(err.Error(), ErrMemoryLimit.Error()+": ")}
		}
	}
}

// ownerWriteOnce is one attempt of ownerWrite: refused reports that the write would grow memory
// past the budget (why says how), and nothing was applied.
func (s *Service) ownerWriteOnce(ctx context.Context, p *part, epoch uint64, dl time.Time, req *opRequest, decide func(w *writeBatch) opResponse) (resp opResponse, why noRoom, refused bool) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	if !dl.IsZero() && !time.Now().Before(dl) {
		return opResponse{Status: statusTimeout, Msg: fmt.Sprintf("partition %d: deadline passed before the write started", p.id)}, noRoom{}, false
	}
	st, ep := s.checkOwner(ctx, p.id, epoch, dl)
	if st != statusOK {
		return opResponse{Status: st, Epoch: ep}, noRoom{}, false
	}
	if p.ownEpoch.Load() != ep {
		tctx := ctx
		if !dl.IsZero() {
			var cancel context.CancelFunc
			tctx, cancel = context.WithDeadline(ctx, dl)
			defer cancel()
		}
		if resp, ok := s.takeOver(tctx, p); !ok {
			return resp, noRoom{}, false
		}
	}
	if req != nil && p.disk != nil && !p.isRestored() {
		return notRestored(p), noRoom{}, false
	}
	w := &writeBatch{}
	if req != nil {
		w.op, w.retry, w.age = req.ID, req.Retry, req.Age
	}
	muts, resp := s.applyWrite(ctx, p, w, decideFunc(decide))
	if len(muts) == 0 {
		return resp, w.noRoom, w.refused
	}
	err := s.replicate(ctx, p, muts, dl)
	s.settle(p, w, err)
	if err != nil {
		failed := opResponse{Status: statusOf(err), Msg: err.Error()}
		if req != nil && req.Kind == opExecutePartition {
			// The owner keeps the write: a partition processor's result goes with the error,
			// for a caller that must not lose what the processor removed (ExecutePartition).
			failed.Value = resp.Value
		}
		return failed, noRoom{}, false
	}
	return resp, noRoom{}, false
}

// settle ends the wait of w, applied by applyWrite, for its synchronous backups: from now on
// reads see it (it is p.pending until then), also when replication failed (err), since the
// owner keeps the write; a retry of a failed write is then told that its outcome is unknown
// rather than that it succeeded. The caller holds p.writeMu and calls it before answering.
//
// Then it tells the observers (the listeners): an event announces a write that Get returns, so
// a listener reading the entry it is told of, or a co-keyed entry of the same transaction,
// finds it, and a write that dies with this member before its backups acknowledged it is never
// announced. A write whose replication failed is announced only while this member still owns
// the partition and is not closing: it is then readable here, and kept (missedWrite brings the
// backups in line).
func (s *Service) settle(p *part, w *writeBatch, err error) {
	if !s.cfg.AsyncBackups { // else applyWrite did not make it pending
		p.mu.Lock()
		if p.pending == w {
			p.pending = nil
		}
		if err != nil {
			p.rs.answers.fail(w.op)
		}
		p.mu.Unlock()
	}
	if err != nil && (s.closed() || s.cluster.Table().Owner(p.id) != s.self) {
		return
	}
	// Still under writeMu: observers see the partition's writes in order.
	for _, o := range s.observers {
		o.ownerApplied(p.id, w.muts, w.prevs)
	}
}

// noteRetried adds the ID of a retry this owner served afresh to p.retried (answers.go). The
// caller holds p.mu.
func (p *part) noteRetried(id opID) {
	if slices.Contains(p.retried, id) {
		return
	}
	if len(p.retried) == maxRetried {
		p.retried = append(p.retried[:0], p.retried[1:]...)
	}
	p.retried = append(p.retried, id)
}

// decider decides the mutations of one write (see ownerWrite).
type decider interface {
	decide(w *writeBatch) opResponse
}

// decideFunc adapts a function to decider.
type decideFunc func(w *writeBatch) opResponse

func (f decideFunc) decide(w *writeBatch) opResponse { return f(w) }

// applyWrite is the part of ownerWrite before replication: decide, store write-through, apply
// and queue for write-behind (the observers are told once the write settles, see settle). The
// caller holds p.writeMu and checked ownership; w is empty (its slices may have room for the
// mutations). It returns the mutations to replicate (none when the write changed nothing or
// failed) and the answer for the caller.
//
// A write the partition remembers (a retry of one applied already, see answers.go) is answered
// as it was the first time, without deciding it again. With synchronous backups, the applied
// write becomes p.pending until the caller settles it, once the backups acknowledged.
func (s *Service) applyWrite(ctx context.Context, p *part, w *writeBatch, d decider) ([]mutation, opResponse) {
	p.mu.RLock()
	if w.retry || (len(p.retried) > 0 && !w.op.zero() && slices.Contains(p.retried, w.op)) {
		if e, ok := p.rs.answers.lookup(w.op); ok {
			resp := p.rs.answers.response(e)
			p.mu.RUnlock()
			return nil, resp
		}
		if !w.retry {
			// A first attempt that comes after its retry, which changed nothing: the caller
			// has its answer (or gave up); applying now would contradict it.
			p.mu.RUnlock()
			return nil, opResponse{Status: statusFailed, Msg: "a retry of this write was served first"}
		}
		if p.rs.answers.mayPredate(w.age) {
			// Its first attempt may have been applied here and its answer forgotten since:
			// deciding it again could apply it twice.
			p.mu.RUnlock()
			return nil, opResponse{Status: statusOutcomeUnknown, Msg: fmt.Sprintf(
				"partition %d no longer remembers the answers of writes as old as this retry's first attempt (%v before it)", p.id, w.age)}
		}
	}
	w.rs, w.now, w.events = p.rs, s.now(), s.events
	resp := d.decide(w)
	p.mu.RUnlock()
	if w.declined {
		return nil, resp
	}
	if len(w.muts) == 0 {
		if w.retry && !w.op.zero() {
			p.mu.Lock()
			p.noteRetried(w.op)
			p.mu.Unlock()
		}
		return nil, resp
	}
	var reserved int64
	if s.mem != nil || s.fullBackups.n.Load() != 0 {
		var ok bool
		if reserved, w.noRoom, ok = s.admitMemory(p, w); !ok {
			w.refused = true
			return nil, opResponse{Status: statusMemoryLimit}
		}
	}
	if !w.op.zero() {
		last := &w.muts[len(w.muts)-1]
		last.Op, last.Ans = w.op, answerOf(resp)
	}
	if err := s.writeThrough(ctx, w); err != nil {
		s.mem.unreserve(reserved)
		return nil, opResponse{Status: statusOf(err), Msg: err.Error()}
	}
	p.mu.Lock()
	for i := range w.muts {
		p.rs.applyAt(w.muts[i], w.now)
		if w.detach {
			p.rs.detach(&w.muts[i])
		}
		s.trackDirty(p, w.muts[i], w.cleared[i], w.now)
	}
	s.mem.unreserve(reserved) // applying counted what the write really added
	if p.disk != nil {
		s.persist(p, w.muts, s.cluster.Table().Epoch, true)
	}
	if !s.cfg.AsyncBackups {
		p.pending = w
	}
	if w.retry && !w.op.zero() {
		p.noteRetried(w.op)
	}
	p.mu.Unlock()
	return w.muts, resp
}

// read serves a read operation from the partition's records. A key the pending write (see
// part.pending) changes is read as it was before that write: the write is not acknowledged
// yet, and could die with this member. (Lock state, opIsLocked, is read as it is.)
//
// A paged-out value the pending write replaced or removed (paging.go) is no longer in the data
// folder: such a read waits for the pending write to settle (it holds the partition's writes),
// then reads with the partition's writes held back, as readPartitionSettled does: no write is
// pending then.
func (s *Service) read(p *part, req *opRequest) opResponse {
	resp, wait := s.readOnce(p, req, true)
	if !wait {
		return resp
	}
	return s.readPartitionSettled(p, req)
}

// readOnce is one attempt of read. It reports true, without an answer, when the read must wait
// for the pending write to settle (see read), or, unless disk, when it would read a paged-out
// value from the data folder (tryRead leaves that to the ordinary path, which may block).
func (s *Service) readOnce(p *part, req *opRequest, disk bool) (opResponse, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	switch {
	case req.Kind == opIsLocked:
		return executeLock(&writeBatch{rs: p.rs, now: s.now()}, req), false
	case req.Kind.perPartition():
		return readPartition(p.rs, req, s.now()), false
	}
	now := s.now()
	if w := p.pending; w != nil {
		if r, ok := w.before(req.Map, req.Key); ok {
			if req.Kind == opGet && r.paged && r.value == nil && !r.expired(now) {
				return opResponse{}, true
			}
			return readRecord(req.Kind, r, now), false
		}
	}
	if !disk && req.Kind == opGet && p.rs.paged > 0 {
		if r := p.rs.lookup(req.Map, string(req.Key)); r.paged {
			return opResponse{}, true
		}
	}
	resp, _, _ := execute(p.rs, req, now)
	return resp, false
}

// readRecord answers a single-key read (opGet, opContains) from r, a record as it was before
// the pending write.
func readRecord(kind opKind, r record, now int64) opResponse {
	live := r.ok && !r.expired(now)
	if kind == opContains {
		return opResponse{Done: live}
	}
	if !live {
		return opResponse{Status: statusNotFound}
	}
	return opResponse{Done: true, Value: r.value, Version: r.seq}
}

// readPartitionSettled serves a per-partition read (size, scans), or a single-key read that must
// not see the pending write (see read), with the partition's writes held back, so that it sees
// no write its backups have not acknowledged: it waits for the write in progress, if any (at
// most one backup round trip, bounded like that write). It refuses with statusWrongOwner when
// the partition changed hands while it waited.
func (s *Service) readPartitionSettled(p *part, req *opRequest) opResponse {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	if st, ep, ok := s.checkOwnerNow(p.id, req.Epoch); !ok || st != statusOK {
		if ok {
			return opResponse{Status: st, Epoch: ep}
		}
		return opResponse{Status: statusWrongOwner, Epoch: ep}
	}
	resp, _ := s.readOnce(p, req, true) // no write is pending while its writes are held back
	return resp
}

// admitAll applies write-behind back-pressure for every map a write touches.
func (s *Service) admitAll(ctx context.Context, req *opRequest) error {
	if len(s.stores) == 0 {
		return nil
	}
	if req.Kind != opTxCommit {
		return s.admit(ctx, req.Map)
	}
	c, err := decodeTxCommit(req.Value)
	if err != nil {
		return nil // executeTx reports it
	}
	seen := map[string]bool{}
	for _, w := range c.Writes {
		if !seen[w.Map] {
			seen[w.Map] = true
			if err := s.admit(ctx, w.Map); err != nil {
				return err
			}
		}
	}
	return nil
}

// readPartition answers the per-partition read operations.
func readPartition(rs *recordStore, req *opRequest, now int64) opResponse {
	switch req.Kind {
	case opSize:
		return opResponse{Count: rs.size(req.Map, now)}
	case opScanKeys, opScanEntries:
		entries, err := scan(rs, req.Map, req.Kind == opScanEntries, now)
		if err != nil {
			return opResponse{Status: statusOf(err), Msg: err.Error()}
		}
		return opResponse{Entries: entries}
	}
	return opResponse{Status: statusBadRequest, Msg: "unknown partition operation"}
}

// scan lists the live entries of a map (keys copied, values shared; paged-out values read from
// the data folder). It is apart from readPartition because the loop body is a closure, which
// would move the request it read to the heap on every read.
func scan(rs *recordStore, mapName string, values bool, now int64) ([]kv, error) {
	out := make([]kv, 0, rs.count(mapName))
	for r := range rs.all(mapName) {
		if r.expired(now) {
			continue
		}
		e := kv{Key: []byte(r.key)}
		if values {
			full, err := rs.fill(mapName, r)
			if err != nil {
				return nil, err
			}
			e.Value = full.value
		}
		out = append(out, e)
	}
	return out, nil
}

// handleOp serves msgOp from another member.
func (s *Service) handleOp(ctx context.Context, msg transport.Message) (transport.Message, error) {
	var req opRequest
	if err := decodeOpRequest(msg.Header, &req); err != nil {
		return encodeResponse(opResponse{Status: statusBadRequest, Msg: "undecodable operation header"})
	}
	req.Value = msg.Body
	req.setDeadline(time.Now())
	return encodeResponse(s.serveOp(ctx, &req))
}
