package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// maxAsyncBacklog bounds the mutations of one partition waiting to be sent to asynchronous
// backups; at the bound, writers of that partition wait for the backlog to drain.
const maxAsyncBacklog = 4096

// replicationBackoff bounds the wait between attempts to reach a backup that failed; a table
// change (the backup declared dead and dropped) ends the wait earlier.
const replicationBackoff = 100 * time.Millisecond

// replicaTargets lists the members that must receive partition p's writes besides the owner:
// its backups and the members receiving a copy.
func replicaTargets(t *partition.Table, p partition.ID, self partition.MemberID) []partition.MemberID {
	a := t.Partitions[p]
	return appendReplicaTargets(make([]partition.MemberID, 0, len(a.Replicas)+len(a.Pending)), t, p, self)
}

// appendReplicaTargets appends replicaTargets(t, p, self) to dst.
func appendReplicaTargets(dst []partition.MemberID, t *partition.Table, p partition.ID, self partition.MemberID) []partition.MemberID {
	a := t.Partitions[p]
	for _, m := range a.Replicas {
		if m != self {
			dst = append(dst, m)
		}
	}
	for _, pm := range a.Pending {
		if pm.Member != self {
			dst = append(dst, pm.Member)
		}
	}
	return dst
}

// replicate sends mutations the owner has applied to the partition's other replicas. With
// synchronous backups it returns once every backup acknowledged them, or with ErrTimeout when
// dl (zero: none) or ctx ends first. The caller holds p.writeMu, which keeps the partition's
// replication in order.
func (s *Service) replicate(ctx context.Context, p *part, muts []mutation, dl time.Time) error {
	if s.cfg.AsyncBackups {
		return s.enqueueAsync(ctx, p, muts)
	}
	return s.sendToReplicas(ctx, p.id, muts, dl)
}

// sendToReplicas delivers mutations to every current backup and pending member, retrying a
// member that fails until it acknowledges or the coordinator drops it from the table, or until
// dl (zero: none) or ctx ends.
//
// Each attempt to reach a member is bounded by Config.BackupAckTimeout (and the deadline): a
// member that does not answer in time, or whose connection fails, is reported to the
// coordinator (Cluster.ReportUnreachable), which can take it out of the partition's replicas;
// the table change ends the wait, and the write then counts the remaining replicas. So a dead
// member holds the partition's writers for about BackupAckTimeout plus one table commit. When
// the deadline passes first, the members that did not acknowledge may lack the write: they are
// brought back in line (missedWrite).
func (s *Service) sendToReplicas(ctx context.Context, p partition.ID, muts []mutation, dl time.Time) error {
	if d, ok := ctx.Deadline(); ok && (dl.IsZero() || d.Before(dl)) {
		dl = d
	}
	var targetBuf, ackedBuf [4]partition.MemberID
	acked := ackedBuf[:0]
	var header, body []byte
	wait := 5 * time.Millisecond
	for {
		t, changed := s.cluster.Watch()
		todo := appendReplicaTargets(targetBuf[:0], t, p, s.self)
		if len(acked) > 0 {
			todo = slices.DeleteFunc(todo, func(m partition.MemberID) bool { return slices.Contains(acked, m) })
		}
		if len(todo) == 0 {
			return nil
		}
		if header == nil {
			var err error
			if header, body, err = encodeBatch(int32(p), t.Epoch, string(s.self), muts); err != nil {
				return err
			}
		}
		if !dl.IsZero() && !time.Now().Before(dl) {
			return s.gaveUp(p, todo, fmt.Errorf("waiting for backups of partition %d: %w: %w", p, ErrTimeout, context.DeadlineExceeded))
		}
		size := len(header) + len(body)
		failed, reported := false, false
		if len(todo) == 1 {
			// The common case, without goroutines or allocations.
			timeout, full := s.ackTimeout(todo[0], dl, size)
			gone, err := s.sendBackup(ctx, todo[0], header, body, timeout, full)
			if err == nil {
				acked = append(acked, todo[0])
			} else {
				failed = true
				reported = s.backupFailed(p, todo[0], gone, err)
			}
		} else {
			type result struct {
				gone bool
				err  error
			}
			res := make([]result, len(todo))
			h, b := header, body // copies: the closures do not pin the loop's variables to the heap
			var wg sync.WaitGroup
			for i, m := range todo {
				timeout, full := s.ackTimeout(m, dl, size)
				wg.Go(func() { res[i].gone, res[i].err = s.sendBackup(ctx, m, h, b, timeout, full) })
			}
			wg.Wait()
			for i, r := range res {
				if r.err == nil {
					acked = append(acked, todo[i])
				} else {
					failed = true
					reported = s.backupFailed(p, todo[i], r.gone, r.err) || reported
				}
			}
		}
		if !failed {
			return nil
		}
		pause := wait
		wait = min(wait*2, replicationBackoff)
		if reported {
			// Give the coordinator time to drop the member: its table change ends the pause.
			pause = max(pause, s.cfg.BackupAckTimeout)
		}
		if err := s.waitToRetry(ctx, changed, pause, dl); err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			todo = appendReplicaTargets(targetBuf[:0], s.cluster.Table(), p, s.self)
			todo = slices.DeleteFunc(todo, func(m partition.MemberID) bool { return slices.Contains(acked, m) })
			return s.gaveUp(p, todo, fmt.Errorf("waiting for backups of partition %d: %w", p, err))
		}
	}
}

// backupBytesAllowance is the slowest transfer rate an owner assumes of a healthy backup link:
// a batch's attempt gets len(body) at this rate on top of BackupAckTimeout. Without it, a
// backup that is alive but still receiving a batch of multi-MB values (queued behind other
// large frames on a loaded host) was reported unreachable after the fixed timeout, demoted
// and re-copied: more bulk traffic, and writes failing with an unknown outcome.
const backupBytesAllowance = 8 << 20 // bytes per second

// ackTimeout is the bound of one attempt to reach replica target m with a message of size
// bytes: BackupAckTimeout, longer for a target whose recent acknowledgements were slow
// (ackWatch.wait), plus size at backupBytesAllowance; or what is left until dl (zero: none)
// when that is less. full reports the former.
func (s *Service) ackTimeout(m partition.MemberID, dl time.Time, size int) (timeout time.Duration, full bool) {
	timeout = s.acks.wait(m, s.cfg.BackupAckTimeout) + time.Duration(int64(size)*int64(time.Second)/backupBytesAllowance)
	if dl.IsZero() {
		return timeout, true
	}
	if left := time.Until(dl); left < timeout {
		return left, false
	}
	return timeout, true
}

// backupFailed logs a failed attempt to reach member m and reports m to the coordinator when it
// did not answer (gone); it returns whether it did.
func (s *Service) backupFailed(p partition.ID, m partition.MemberID, gone bool, err error) bool {
	s.log.Debug("backup failed, retrying", "partition", p, "member", m, "unreachable", gone, "err", err)
	if gone {
		s.cluster.ReportUnreachable(m)
	}
	return gone
}

// gaveUp ends a replication that did not complete: err (an ErrTimeout or ErrClosed) is returned,
// and the members of missing, which may lack the write, are brought back in line (missedWrite).
func (s *Service) gaveUp(p partition.ID, missing []partition.MemberID, err error) error {
	if len(missing) > 0 {
		s.missedWrite(s.parts[p], missing)
	}
	return err
}

// missedWrite handles replica targets of partition p that may lack a write the owner stopped
// waiting for: nothing would send it to them again, and a replica with a gap would serve it
// once promoted. A backup gets a full copy (a resync, see resync.go); a copy to a pending
// member is started again, since its end would not include the write (copyPartition), and so is
// a resync that began before. The caller holds p.writeMu.
func (s *Service) missedWrite(p *part, members []partition.MemberID) {
	t := s.cluster.Table()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range members {
		if !t.IsReplica(p.id, m) && !t.IsPending(p.id, m) {
			continue
		}
		if p.missed == nil {
			p.missed = make(map[partition.MemberID]bool)
		}
		p.missed[m] = true
		if t.IsReplica(p.id, m) {
			if p.resync == nil {
				p.resync = make(map[partition.MemberID]bool)
			}
			p.resync[m] = true
		}
	}
	s.startResyncs(p)
}

// waitToRetry waits pause, or until the table changes (changed), before a call to members is
// retried. It returns ErrTimeout (wrapping ctx's error, or context.DeadlineExceeded when dl
// passed; dl zero: none) or ErrClosed when the caller must give up.
func (s *Service) waitToRetry(ctx context.Context, changed <-chan struct{}, pause time.Duration, dl time.Time) error {
	if !dl.IsZero() {
		left := time.Until(dl)
		if left <= 0 {
			return fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)
		}
		pause = min(pause, left)
	}
	timer := time.NewTimer(pause)
	defer timer.Stop()
	select {
	case <-changed:
	case <-timer.C:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	case <-s.ctx.Done():
		return ErrClosed
	}
	return nil
}

// sendBackup sends one replication batch to member m and checks its answer; see callReplica.
func (s *Service) sendBackup(ctx context.Context, m partition.MemberID, header, body []byte, timeout time.Duration, full bool) (gone bool, err error) {
	var resp opResponse
	gone, resp, err = s.callReplica(ctx, m, transport.Message{Type: msgBackup, Header: header, Body: body}, timeout, full)
	if err == nil {
		s.noteBackupAnswer(m, resp)
	}
	return gone, err
}

// callReplica sends msg to member m, a replica target of a partition this member owns, bounded
// by timeout (a transport call timeout, which also bounds dialing a new connection and costs no
// timer), and returns its answer, an error if the answer's status is one. gone reports that m
// did not answer: the call timed out after the full BackupAckTimeout (full) while m answered
// no other call either (see ackwatch.go), or the connection failed.
func (s *Service) callReplica(ctx context.Context, m partition.MemberID, msg transport.Message, timeout time.Duration, full bool) (gone bool, resp opResponse, err error) {
	addr, ok := s.cluster.MemberAddr(m)
	if !ok {
		return false, opResponse{}, fmt.Errorf("dmap: no address for member %s", m)
	}
	start := s.acks.now()
	answer, err := s.caller.CallTimeout(ctx, addr, msg, timeout)
	if err != nil {
		return s.replicaFailed(ctx, m, addr, start, timeout, err, full), opResponse{}, err
	}
	s.acks.answered(m, start, true)
	if resp, err = decodeResponse(answer); err != nil {
		return false, opResponse{}, err
	}
	return false, resp, resp.Status.err(resp.Msg)
}

// replicaFailed records a failed call to replica target m (at addr) sent at start
// (ackWatch.now) and bounded by timeout, and reports whether m is to be reported unreachable: its
// connection failed, or it stayed silent through two whole waits (see ackwatch.go). A timeout
// while answers from m keep arriving is a slow member's, not a dead one's.
func (s *Service) replicaFailed(ctx context.Context, m partition.MemberID, addr string, start int64, timeout time.Duration, err error, full bool) (gone bool) {
	var re *transport.RemoteError
	if errors.As(err, &re) {
		s.acks.answered(m, start, false)
	}
	if !unanswered(ctx, err, full) {
		return false
	}
	if !errors.Is(err, transport.ErrCallTimeout) {
		return true // the connection failed
	}
	if s.acks.timedOut(m, start, s.lastHeard(addr), timeout, s.cfg.BackupAckTimeout) {
		return true
	}
	s.log.Debug("replica did not acknowledge in time; not reported (slow, or a first silence)", "member", m, "waited", timeout,
		"next_wait", s.acks.wait(m, s.cfg.BackupAckTimeout))
	return false
}

// lastHeard returns when the transport last read a frame from addr, on the ackWatch's clock
// (0: never, or a caller that does not tell).
func (s *Service) lastHeard(addr string) int64 {
	if s.heard == nil {
		return 0
	}
	t, ok := s.heard.LastHeard(addr)
	if !ok {
		return 0
	}
	return max(int64(t.Sub(s.acks.base)), 1)
}

// unanswered reports whether a failed call's error says that the member did not answer: its
// connection failed, or the call timed out after a full BackupAckTimeout (full). An error
// answer, this member closing, or the caller's own context ending are not the member's fault.
func unanswered(ctx context.Context, err error, full bool) bool {
	var re *transport.RemoteError
	switch {
	case errors.As(err, &re), errors.Is(err, transport.ErrClosed), errors.Is(err, transport.ErrFrameTooLarge), ctx.Err() != nil:
		return false
	case errors.Is(err, transport.ErrCallTimeout):
		return full
	}
	return true
}

// sendBatch sends one replication or copy message to member m and checks its answer.
func (s *Service) sendBatch(ctx context.Context, m partition.MemberID, t transport.MsgType, header, body []byte) error {
	if t == msgSyncChunk {
		s.copyBytes.Add(uint64(len(header) + len(body)))
	}
	_, err := s.callMember(ctx, m, transport.Message{Type: t, Header: header, Body: body})
	return err
}

// callMember sends msg to member m and returns its answer, an error if the answer's status is
// one.
func (s *Service) callMember(ctx context.Context, m partition.MemberID, msg transport.Message) (opResponse, error) {
	addr, ok := s.cluster.MemberAddr(m)
	if !ok {
		return opResponse{}, fmt.Errorf("dmap: no address for member %s", m)
	}
	answer, err := s.caller.Call(ctx, addr, msg)
	if err != nil {
		return opResponse{}, err
	}
	resp, err := decodeResponse(answer)
	if err != nil {
		return opResponse{}, err
	}
	return resp, resp.Status.err(resp.Msg)
}

// handleBackup applies mutations sent by a partition's owner. It is applyBatch written out:
// the batch header stays on this goroutine's stack, and so does a one-write batch's mutation.
func (s *Service) handleBackup(ctx context.Context, msg transport.Message) (transport.Message, error) {
	var one [1]mutation
	h := batchHeader{Muts: one[:0]}
	p, resp := s.acceptBatch(msg, &h)
	if p == nil {
		return encodeResponse(resp)
	}
	if resp := s.takeStashed(h.Muts); resp.Status != statusOK {
		p.mu.Unlock()
		return encodeResponse(resp)
	}
	now := s.now()
	keeps := false           // whether anything applying the batch keeps slices of msg
	var persisted []mutation // what changed, for the data folder (only with one)
	for _, m := range h.Muts {
		if s.applyReplicated(p, m, now, true) && p.disk != nil {
			persisted = append(persisted, m)
		}
		if p.shadow != nil {
			// A full copy is being built beside the store: it must see the writes too.
			s.applyReplicated(p.shadow, m, now, true)
		}
		keeps = keeps || keepsMessageBytes(m)
	}
	if len(persisted) > 0 {
		s.persist(p, persisted, h.Epoch, false) // before msg is recycled: it copies the bytes
	}
	p.mu.Unlock()
	if !keeps {
		msg.Recycle() // the next backup is read into the same buffer
	}
	// Done tells the owner that this member is at its memory budget: it holds growing writes
	// of the partition back until this member has room again (memory.go).
	return encodeResponse(opResponse{Done: s.mem.full()})
}

// takeStashed gives the writes of a backup batch that name a copy of their value this member
// holds (see callercopy.go) that copy. It refuses the batch when a copy is not held (any more), so
// that the owner sends the value again, or when a write names a copy and carries a value too.
func (s *Service) takeStashed(muts []mutation) opResponse {
	for i := range muts {
		m := &muts[i]
		if m.Stash == 0 {
			continue
		}
		if len(m.Value) != 0 || m.Kind != mutSet {
			return opResponse{Status: statusBadRequest, Msg: "a backup write names a held value and carries one too"}
		}
		v, ok := s.stash.take(m.Stash, m.Key)
		if !ok {
			return opResponse{Status: statusFailed, Msg: "the value this backup write names is not held here; send it"}
		}
		m.Value = v
	}
	return opResponse{}
}

// keepsMessageBytes reports whether applying m on a replica (applyReplicated with detach) may
// keep slices of the message it came in: an entry table copies a set's key and a value under
// adoptMin (a larger value becomes a chunk of its own), a delete copies what it keeps, and a
// write-behind queue gets the stored copies, a remembered answer copies its result; anything
// else (a lock keeps its holder) may keep them.
func keepsMessageBytes(m mutation) bool {
	return (m.Kind != mutSet && m.Kind != mutDelete && m.Kind != mutAnswer) || len(m.Value) >= adoptMin
}

// applyBatch decodes a batch, refuses it when this member owns the partition at a newer epoch
// than the sender (a deposed owner must not overwrite its successor), and runs fn under the
// partition's lock.
func (s *Service) applyBatch(msg transport.Message, fn func(p *part, h *batchHeader)) opResponse {
	var h batchHeader
	p, resp := s.acceptBatch(msg, &h)
	if p == nil {
		return resp
	}
	for _, m := range h.Muts {
		if m.Stash != 0 {
			p.mu.Unlock()
			return opResponse{Status: statusBadRequest, Msg: "only a backup write may name a held value"}
		}
	}
	fn(p, &h)
	p.mu.Unlock()
	return opResponse{}
}

// acceptBatch decodes a batch into h and returns its partition locked (p.mu), or nil and the
// refusal: a malformed batch, a closed member, or a deposed sender (see deposed).
func (s *Service) acceptBatch(msg transport.Message, h *batchHeader) (*part, opResponse) {
	if err := h.decode(msg.Header, msg.Body); err != nil {
		return nil, opResponse{Status: statusBadRequest, Msg: err.Error()}
	}
	if h.Part < 0 || int(h.Part) >= len(s.parts) {
		return nil, opResponse{Status: statusBadRequest, Msg: fmt.Sprintf("partition %d out of range", h.Part)}
	}
	if s.closed() {
		return nil, opResponse{Status: statusClosed}
	}
	if t := s.cluster.Table(); deposed(t, partition.ID(h.Part), h.From, h.Epoch) {
		return nil, opResponse{Status: statusWrongOwner, Epoch: t.Epoch, Msg: "the sender does not own the partition at the receiver's newer " + epochString(t.Epoch)}
	}
	p := s.parts[h.Part]
	p.mu.Lock()
	p.seenEpoch = max(p.seenEpoch, h.Epoch)
	return p, opResponse{}
}

// deposed reports whether a replication or copy message for partition p, sent by member from
// with its table at epoch, comes from a deposed owner: this member's table t is newer and names
// another owner. Such a member may have been stopped (SIGSTOP) or cut off while the others
// reassigned the partition, and resumed with its old table: whatever it sends is stale. A
// backup that applied it would differ from its owner without anyone knowing, and a copy swapped
// in would drop every write made since (issue 21). A sender whose table merely lags this
// member's, while it still owns the partition, is served.
func deposed(t *partition.Table, p partition.ID, from string, epoch uint64) bool {
	return t.Epoch > epoch && string(t.Owner(p)) != from
}

// asyncQueue holds a partition's mutations not yet sent to asynchronous backups.
type asyncQueue struct {
	mu      sync.Mutex
	items   []mutation
	running bool
	drained chan struct{} // closed when the backlog shrinks; replaced after each wake-up
}

// hasRoom reports whether the backlog is below its bound, so that enqueueAsync would not wait.
func (q *asyncQueue) hasRoom() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) < maxAsyncBacklog
}

// enqueueAsync queues mutations for the partition's backups and makes sure a sender runs. It
// waits while the backlog is at its bound.
func (s *Service) enqueueAsync(ctx context.Context, p *part, muts []mutation) error {
	q := &p.async
	for {
		q.mu.Lock()
		if len(q.items) < maxAsyncBacklog {
			break
		}
		if q.drained == nil {
			q.drained = make(chan struct{})
		}
		ch := q.drained
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: asynchronous backup backlog of partition %d is full: %w", ErrTimeout, p.id, ctx.Err())
		case <-s.ctx.Done():
			return ErrClosed
		}
	}
	q.items = append(q.items, muts...)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start && !s.spawn(func() { s.drainAsync(p) }) {
		q.mu.Lock()
		q.running = false
		q.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// drainAsync sends a partition's backlog in order until it is empty.
func (s *Service) drainAsync(p *part) {
	q := &p.async
	for {
		q.mu.Lock()
		items := q.items
		q.items = nil
		if q.drained != nil {
			close(q.drained)
			q.drained = nil
		}
		if len(items) == 0 || s.closed() {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		if err := s.sendToReplicas(s.ctx, p.id, items, time.Time{}); err != nil {
			s.log.Warn("asynchronous backup stopped", "partition", p.id, "err", err)
		}
	}
}
