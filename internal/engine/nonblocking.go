package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// Serving operations without blocking.
//
// An operation from another member normally runs on a worker goroutine of the transport, which
// blocks while the backups acknowledge a write. That costs two goroutine hand-offs per remote
// write (reader to worker, and the backup's answer back to the worker) on top of the network
// round trips. The common operations need no blocking at all: a read that finds its entry, and
// a single-key write whose partition nobody else is writing at that moment, of a map that is not
// stored write-through (a write-behind map below its dirty limit only queues bookkeeping). Those
// run on the connection's reader; a write sends its backups with Client.CallAsync and is
// answered by the completion of the last backup acknowledgement (with asynchronous backups, as
// soon as they are queued). The member's own callers use the same path (tryServeLocal), which
// spares them a context timer per operation. Anything else (waiting for a newer table, for the
// partition's write lock, for a store, a read-through, a processor, a transaction, a failed
// backup) takes the ordinary path, with the same semantics.

// localAnswers recycles the channels on which a local caller waits for its write's answer; a
// channel goes back only once its one answer has been received.
var localAnswers = sync.Pool{New: func() any { return make(chan opResponse, 1) }}

// inlineWrites recycles inlineWrite, the largest allocation of a write (about a quarter of the
// bytes a replicated put allocates, and so of the GC cycles a write load causes). A write goes
// back once its answer is out (finishIn), or at once when start declines it; nothing keeps a
// pointer into it after that: the transport calls a backup callback exactly once, the
// observers copy the mutations they keep, and the asynchronous backup queue copies them too.
var inlineWrites = sync.Pool{New: func() any { return new(inlineWrite) }}

// newInlineWrite takes a recycled inlineWrite for req; the caller sets where the answer goes.
func newInlineWrite(s *Service, ctx context.Context, p *part, req *opRequest) *inlineWrite {
	iw := inlineWrites.Get().(*inlineWrite)
	iw.s, iw.ctx, iw.p, iw.req = s, ctx, p, *req
	return iw
}

// recycle returns iw to inlineWrites; iw must not be used again.
func (iw *inlineWrite) recycle() {
	*iw = inlineWrite{}
	inlineWrites.Put(iw)
}

// errNotSent is the completion of a backup that could not be started asynchronously.
var errNotSent = errors.New("dmap: backup not sent asynchronously")

// opHandler serves msgOp: on the connection's reader when possible (TryServe), otherwise on a
// worker goroutine (ServeMsg).
type opHandler struct{ s *Service }

func (h opHandler) ServeMsg(ctx context.Context, msg transport.Message) (transport.Message, error) {
	return h.s.handleOp(ctx, msg)
}

func (h opHandler) TryServe(ctx context.Context, msg transport.Message, reply transport.Reply) bool {
	return h.s.tryServeOp(ctx, msg, reply)
}

// tryServeOp serves an operation at once if it can do so without blocking, and reports whether
// it took it; reply then receives the answer exactly once, maybe from another goroutine.
func (s *Service) tryServeOp(ctx context.Context, msg transport.Message, reply transport.Reply) bool {
	var req opRequest
	if err := decodeOpRequest(msg.Header, &req); err != nil {
		return false // the ordinary path reports it
	}
	req.Value = msg.Body
	if req.Part < 0 || int(req.Part) >= len(s.parts) || len(req.Key)+len(req.Value) > s.cfg.MaxValueSize {
		return false
	}
	p := s.parts[req.Part]
	if p.disk != nil && !p.isRestored() {
		return false // serveOp restores it first (restore.go)
	}
	switch req.Kind {
	case opGet, opContains:
		resp, ok := s.tryRead(p, &req)
		if ok {
			// The answer holds the stored value and a new header: nothing of the request.
			reply.Send(encodeResponse(resp))
			msg.Recycle()
		}
		return ok
	case opPut, opPutIfAbsent, opReplace, opReplaceIfSame, opDelete:
		if !s.writesWithoutWaiting(req.Map) {
			return false
		}
		req.setDeadline(time.Now())
		iw := newInlineWrite(s, ctx, p, &req)
		iw.deadline, iw.reply = req.deadline, reply
		// A value of adoptMin bytes or more is stored as it is, in the request's buffer;
		// anything smaller is copied, and the write's mutation is then pointed at the copy
		// (detach), so that nothing refers to the request once start returns.
		detached := len(req.Value) < adoptMin
		iw.detach = detached
		if !iw.start() {
			iw.recycle()
			return false
		}
		// iw may be answered and recycled already: only the request is touched from here.
		if detached {
			msg.Recycle()
		}
		return true
	}
	return false
}

// tryServeLocal is tryServeOp for an operation of this member's own caller (see do), which
// waits for the answer; deadline bounds the operation. Compared with serveOp, it saves the
// context with a deadline (and its timer) the ordinary path needs.
func (s *Service) tryServeLocal(ctx context.Context, req *opRequest, deadline time.Time) (opResponse, bool) {
	p := s.parts[req.Part]
	if p.disk != nil && !p.isRestored() {
		return opResponse{}, false // serveOp restores it first (restore.go)
	}
	switch req.Kind {
	case opGet, opContains:
		return s.tryRead(p, req)
	case opPut, opPutIfAbsent, opReplace, opReplaceIfSame, opDelete:
		if !s.writesWithoutWaiting(req.Map) {
			return opResponse{}, false
		}
		ch := localAnswers.Get().(chan opResponse)
		iw := newInlineWrite(s, ctx, p, req)
		iw.deadline, iw.answer = deadline, ch
		if !iw.start() {
			iw.recycle()
			localAnswers.Put(ch)
			return opResponse{}, false
		}
		select {
		case resp := <-ch:
			localAnswers.Put(ch)
			return resp, true
		case <-ctx.Done():
			// The write goes on (its backups are bounded by deadline); the caller learns that it
			// gave up, as from the ordinary path.
			// do turns it into ErrTimeout wrapping ctx's error.
			return opResponse{Status: statusTimeout, Msg: fmt.Sprintf("waiting for backups of partition %d: %v", p.id, ctx.Err())}, true
		}
	}
	return opResponse{}, false
}

// tryRead serves a single-key read that needs no waiting and reports whether it did: it
// declines when this member's table is older than the caller's, the entry must be read through
// from the map's store, or its value is paged out to the data folder (paging.go).
func (s *Service) tryRead(p *part, req *opRequest) (opResponse, bool) {
	st, ep, ok := s.checkOwnerNow(p.id, req.Epoch)
	if !ok {
		return opResponse{}, false
	}
	if st != statusOK {
		return opResponse{Status: st, Epoch: ep}, true
	}
	resp, wait := s.readOnce(p, req, false)
	if wait || s.mayReadThrough(req, resp) {
		return opResponse{}, false
	}
	return resp, true
}

// mayReadThrough reports whether a read that found resp must go to the map's store (serveOp's
// read-through), which waits.
func (s *Service) mayReadThrough(req *opRequest, resp opResponse) bool {
	missed := resp.Status == statusNotFound || (req.Kind == opContains && !resp.Done)
	return missed && s.persistenceOf(req.Map) != nil
}

// writesWithoutWaiting reports whether a single-key write to mapName can be decided, applied
// and queued without waiting: always, except for a map stored write-through (a store call) and
// a write-behind map at its dirty limit (admit waits for room).
func (s *Service) writesWithoutWaiting(mapName string) bool {
	ps := s.persistenceOf(mapName)
	switch {
	case ps == nil || ps.store == nil:
		return true
	case ps.writeBehind():
		return !ps.budget.Full()
	}
	return false
}

// inlineWrite is one single-key write served without blocking, from its decision to the last
// backup acknowledgement: ownerWrite for a write that does not wait. All its state lives in
// this one object, which is also the callback of its backup calls, and which is recycled
// (inlineWrites) once the write answered.
type inlineWrite struct {
	s   *Service
	ctx context.Context
	p   *part
	req opRequest
	// deadline bounds the backups (the operation's deadline; zero: none, from a peer that sends
	// none).
	deadline time.Time
	// changed is closed when the table the backups were sent with is replaced.
	changed <-chan struct{}
	// The answer goes to answer (a local caller waiting) or else to reply (a remote caller).
	answer chan opResponse
	reply  transport.Reply
	resp   opResponse

	// detach: the request's buffer is given back once start returns (see tryServeOp).
	detach  bool
	w       writeBatch
	mutBuf  [1]mutation
	prevBuf [1]record
	left    atomic.Int32 // backup calls not answered yet
	sent    int64        // when the backup calls went out (ackWatch.now)
	failed  atomic.Bool  // a backup call failed
	// reported: a target did not answer and was reported to the coordinator.
	reported atomic.Bool
	// calls are the callbacks of the first backup calls, which know their target (see
	// backupCall); targets beyond them answer to the write itself, unreported.
	calls [4]backupCall
}

// backupCall is the callback of one backup call of an inline write: it reports its target to
// the coordinator when it did not answer, then hands the answer to the write.
type backupCall struct {
	iw   *inlineWrite
	m    partition.MemberID
	addr string        // m's transport address
	wait time.Duration // the call's timeout
	full bool          // the call was bounded by the whole BackupAckTimeout
}

// CallDone implements transport.Callback.
func (c *backupCall) CallDone(msg transport.Message, err error) { c.CallDoneIn(nil, msg, err) }

// CallDoneIn implements transport.BurstCallback.
func (c *backupCall) CallDoneIn(b *transport.Burst, msg transport.Message, err error) {
	iw := c.iw
	if err == nil {
		iw.s.acks.answered(c.m, iw.sent, true)
		if resp, derr := decodeResponse(msg); derr == nil {
			iw.s.noteBackupAnswer(c.m, resp)
		}
	}
	if err != nil && iw.s.replicaFailed(iw.ctx, c.m, c.addr, iw.sent, c.wait, err, c.full) {
		iw.s.backupFailed(iw.p.id, c.m, true, err)
		iw.reported.Store(true)
	}
	iw.CallDoneIn(b, msg, err) // the write may be recycled from here on, c with it
}

// start runs the write up to sending its backups and reports whether it took it. It declines
// when the partition is being written (or handed off) or this member's table is older than the
// caller's. The partition's write lock is held until the backups acknowledged, as in
// ownerWrite, and released by the completion, which then answers.
func (iw *inlineWrite) start() bool {
	s, p := iw.s, iw.p
	if !p.writeMu.TryLock() {
		return false
	}
	st, ep, ok := s.checkOwnerNow(p.id, iw.req.Epoch)
	if !ok {
		p.writeMu.Unlock()
		return false
	}
	if st != statusOK {
		p.writeMu.Unlock()
		iw.finish(opResponse{Status: st, Epoch: ep})
		return true
	}
	if p.ownEpoch.Load() != ep {
		// The partition must be taken over first (takeOver), which waits for the replicas.
		p.writeMu.Unlock()
		return false
	}
	if s.cfg.AsyncBackups && !p.async.hasRoom() {
		// enqueueAsync would wait for the backlog to drain.
		p.writeMu.Unlock()
		return false
	}
	iw.w = writeBatch{muts: iw.mutBuf[:0], prevs: iw.prevBuf[:0], detach: iw.detach, op: iw.req.ID, retry: iw.req.Retry, age: iw.req.Age}
	muts, resp := s.applyWrite(iw.ctx, p, &iw.w, iw)
	if iw.w.declined {
		// It reads the data folder: the ordinary path may block.
		p.writeMu.Unlock()
		return false
	}
	if iw.w.refused {
		// No memory for it: the ordinary path waits for room (ownerWrite).
		p.writeMu.Unlock()
		return false
	}
	if len(muts) == 0 {
		p.writeMu.Unlock()
		iw.finish(resp)
		return true
	}
	iw.resp = resp
	if s.cfg.AsyncBackups {
		// Room was checked under the partition's write lock, which every writer holds while it
		// queues: the backlog can only have shrunk since, so this does not wait.
		iw.complete(nil, s.enqueueAsync(iw.ctx, p, muts))
		return true
	}
	iw.replicate(muts)
	return true
}

// decide implements decider: the write is a single-key data write. It declines (w.declined)
// a write that would read a paged-out value from the data folder (paging.go): a conditional
// replace comparing it, or a write whose listeners are told it as the old value. The folder
// read may block, which the connection's reader must not.
func (iw *inlineWrite) decide(w *writeBatch) opResponse {
	if w.rs.paged > 0 && (iw.req.Kind == opReplaceIfSame || iw.s.events.listening(iw.req.Map)) {
		if r := w.rs.lookup(iw.req.Map, string(iw.req.Key)); r.paged {
			w.declined = true
			return opResponse{}
		}
	}
	return iw.s.decideKeyWrite(w, &iw.req)
}

// finish answers the caller.
func (iw *inlineWrite) finish(resp opResponse) { iw.finishIn(nil, resp) }

// finishIn answers the caller, within burst b of the reader completing the write (or nil), and
// recycles iw: this is the write's last step.
func (iw *inlineWrite) finishIn(b *transport.Burst, resp opResponse) {
	if iw.answer != nil {
		iw.answer <- resp
	} else {
		msg, err := encodeResponse(resp)
		iw.reply.SendIn(b, msg, err)
	}
	iw.recycle()
}

// complete ends the write once its backups acknowledged (err nil) or failed for good; b is the
// burst of the reader delivering the last acknowledgement, or nil.
func (iw *inlineWrite) complete(b *transport.Burst, err error) {
	iw.s.settle(iw.p, &iw.w, err)
	iw.p.writeMu.Unlock()
	resp := iw.resp
	if err != nil {
		resp = opResponse{Status: statusOf(err), Msg: err.Error()}
	}
	iw.finishIn(b, resp)
}

// replicate is sendToReplicas without blocking: complete runs once every replica target
// acknowledged muts, on the goroutine delivering the last acknowledgement. When a target fails,
// sendToReplicas takes over on a goroutine of its own (retry).
func (iw *inlineWrite) replicate(muts []mutation) {
	s := iw.s
	var buf [4]partition.MemberID
	t, changed := s.cluster.Watch()
	iw.changed = changed
	targets := appendReplicaTargets(buf[:0], t, iw.p.id, s.self)
	if len(targets) == 0 {
		iw.complete(nil, nil)
		return
	}
	header, body, err := encodeBatch(int32(iw.p.id), t.Epoch, string(s.self), muts)
	if err != nil {
		iw.complete(nil, err)
		return
	}
	iw.left.Store(int32(len(targets)))
	msg := transport.Message{Type: msgBackup, Header: header, Body: body}
	size := len(header) + len(body)
	iw.sent = s.acks.now()
	for i, m := range targets {
		timeout, full := s.ackTimeout(m, iw.deadline, size)
		timeout = max(timeout, time.Millisecond)
		addr, ok := s.cluster.MemberAddr(m)
		out := msg
		if m == iw.req.StashAt {
			out = iw.stashedBackup(t.Epoch, muts, msg)
		}
		var done transport.Callback = iw
		if i < len(iw.calls) {
			iw.calls[i] = backupCall{iw: iw, m: m, addr: addr, wait: timeout, full: full}
			done = &iw.calls[i]
		}
		if !ok || !s.caller.CallAsync(iw.ctx, addr, out, timeout, done) {
			iw.CallDone(transport.Message{}, errNotSent)
		}
	}
}

// stashedBackup returns the backup message for the member that holds a copy of the request's
// value (StashAt, see callercopy.go): muts's one write naming that copy, without the value. It
// returns msg, the backup with the value, when muts is anything else.
func (iw *inlineWrite) stashedBackup(epoch uint64, muts []mutation, msg transport.Message) transport.Message {
	v := iw.req.Value
	if iw.req.Stash == 0 || len(muts) != 1 || muts[0].Kind != mutSet || len(v) == 0 ||
		len(muts[0].Value) != len(v) || &muts[0].Value[0] != &v[0] {
		return msg
	}
	ref := [1]mutation{muts[0]}
	ref[0].Value, ref[0].Stash = nil, iw.req.Stash
	header, _, err := encodeBatch(int32(iw.p.id), epoch, string(iw.s.self), ref[:])
	if err != nil {
		return msg
	}
	return transport.Message{Type: msgBackup, Header: header}
}

// CallDone implements transport.Callback: the answer of one target's backup call.
func (iw *inlineWrite) CallDone(msg transport.Message, err error) { iw.CallDoneIn(nil, msg, err) }

// CallDoneIn implements transport.BurstCallback: the answer goes out with the burst of the
// reader that delivered the last acknowledgement.
func (iw *inlineWrite) CallDoneIn(b *transport.Burst, msg transport.Message, err error) {
	if err == nil {
		var resp opResponse
		if resp, err = decodeResponse(msg); err == nil {
			err = resp.Status.err(resp.Msg)
		}
	}
	if err != nil {
		iw.failed.Store(true)
	}
	if iw.left.Add(-1) != 0 {
		return
	}
	if !iw.failed.Load() {
		iw.complete(b, nil)
		return
	}
	// A target did not acknowledge: the retrying path takes over, off this goroutine (it may be
	// a connection's reader). It sends to every current target again; replicas apply a
	// mutation once.
	if !iw.s.spawn(iw.retry) {
		iw.complete(nil, ErrClosed)
	}
}

// retry is the ordinary replication path, after an asynchronous attempt failed. When a target
// was reported unreachable, it first gives the coordinator BackupAckTimeout to drop it (a table
// change ends the pause), as sendToReplicas does between its attempts.
func (iw *inlineWrite) retry() {
	s := iw.s
	if iw.reported.Load() {
		// An error (the deadline passed, the service closing) is sendToReplicas's to report.
		_ = s.waitToRetry(iw.ctx, iw.changed, s.cfg.BackupAckTimeout, iw.deadline)
	}
	iw.complete(nil, s.sendToReplicas(iw.ctx, iw.p.id, iw.w.muts, iw.deadline))
}
