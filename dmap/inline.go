package dmap

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

// Serving operations on the connection's reader goroutine.
//
// An operation from another member normally runs on a worker goroutine of the transport, which
// blocks while the backups acknowledge a write. That costs two goroutine hand-offs per remote
// write (reader to worker, and the backup's answer back to the worker) on top of the network
// round trips. The common operations need no blocking at all: a read of a map without a
// loader, and a single-key write of a map without a store whose partition nobody else is writing
// at that moment. Those run on the reader; a write sends its backups with Client.CallAsync and
// is answered by the completion of the last backup acknowledgement. Anything else (waiting for
// a newer table, for the partition's write lock, for a store, a processor, a transaction, a
// failed backup) takes the ordinary path, with the same semantics.

// localAnswers recycles the channels on which a local caller waits for its write's answer; a
// channel goes back only once its one answer has been received.
var localAnswers = sync.Pool{New: func() any { return make(chan opResponse, 1) }}

// errNotSent is the completion of a backup that could not be started asynchronously.
var errNotSent = errors.New("dmap: backup not sent asynchronously")

// opHandler serves msgOp: on the connection's reader when possible (TryServe), otherwise on a
// worker goroutine (ServeMsg).
type opHandler struct{ s *Service }

func (h opHandler) ServeMsg(ctx context.Context, msg transport.Message) (transport.Message, error) {
	return h.s.handleOp(ctx, msg)
}

func (h opHandler) TryServe(ctx context.Context, msg transport.Message, reply transport.Reply) bool {
	return h.s.tryServeOp(ctx, msg, reply.Send)
}

// tryServeOp serves an operation at once if it can do so without blocking, and reports whether
// it took it; reply then receives the answer exactly once, maybe from another goroutine.
func (s *Service) tryServeOp(ctx context.Context, msg transport.Message, reply func(transport.Message, error)) bool {
	var req opRequest
	if err := unmarshalHeader(msg.Header, &req); err != nil {
		return false // the ordinary path reports it
	}
	req.Value = msg.Body
	if req.Part < 0 || int(req.Part) >= len(s.parts) || len(req.Key)+len(req.Value) > s.cfg.MaxValueSize ||
		s.persistenceOf(req.Map) != nil {
		return false
	}
	p := s.parts[req.Part]
	switch req.Kind {
	case opGet, opContains:
		st, ep, ok := s.checkOwnerNow(p.id, req.Epoch)
		if !ok {
			return false
		}
		resp := opResponse{Status: st, Epoch: ep}
		if st == statusOK {
			resp = s.read(p, &req)
		}
		reply(encodeResponse(resp))
		return true
	case opPut, opPutIfAbsent, opReplace, opReplaceIfSame, opDelete:
		if s.cfg.AsyncBackups {
			return false
		}
		return s.tryOwnerWrite(ctx, p, &req, time.Time{}, func(resp opResponse) { reply(encodeResponse(resp)) })
	}
	return false
}

// tryServeLocal is tryServeOp for an operation of this member's own caller (see do), which
// waits for the answer; deadline bounds the operation. Compared with serveOp, it saves the
// context with a deadline (and its timer) the ordinary path needs.
func (s *Service) tryServeLocal(ctx context.Context, req *opRequest, deadline time.Time) (opResponse, bool) {
	if s.persistenceOf(req.Map) != nil {
		return opResponse{}, false
	}
	p := s.parts[req.Part]
	switch req.Kind {
	case opGet, opContains:
		st, ep, ok := s.checkOwnerNow(p.id, req.Epoch)
		if !ok {
			return opResponse{}, false
		}
		if st != statusOK {
			return opResponse{Status: st, Epoch: ep}, true
		}
		return s.read(p, req), true
	case opPut, opPutIfAbsent, opReplace, opReplaceIfSame, opDelete:
		if s.cfg.AsyncBackups {
			return opResponse{}, false
		}
		ch := localAnswers.Get().(chan opResponse)
		if !s.tryOwnerWrite(ctx, p, req, deadline, func(resp opResponse) { ch <- resp }) {
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
			err := fmt.Errorf("%w: waiting for backups of partition %d: %v", ErrTimeout, p.id, ctx.Err())
			return opResponse{Status: statusOf(err), Msg: err.Error()}, true
		}
	}
	return opResponse{}, false
}

// tryOwnerWrite is ownerWrite for a single-key write that does not wait: it declines when the
// partition is being written (or handed off) or this member's table is older than the caller's.
// The partition's write lock is held until the backups acknowledged, as in ownerWrite, and
// released by the completion, which then calls reply. A non-zero deadline bounds the backups.
func (s *Service) tryOwnerWrite(ctx context.Context, p *part, req *opRequest, deadline time.Time, reply func(opResponse)) bool {
	if !p.writeMu.TryLock() {
		return false
	}
	st, ep, ok := s.checkOwnerNow(p.id, req.Epoch)
	if !ok {
		p.writeMu.Unlock()
		return false
	}
	if st != statusOK {
		p.writeMu.Unlock()
		reply(opResponse{Status: st, Epoch: ep})
		return true
	}
	muts, resp := s.applyWrite(ctx, p, func(w *writeBatch) opResponse { return s.decideKeyWrite(w, req) })
	if len(muts) == 0 {
		p.writeMu.Unlock()
		reply(resp)
		return true
	}
	s.replicateAsync(ctx, p.id, muts, deadline, func(err error) {
		p.writeMu.Unlock()
		if err != nil {
			resp = opResponse{Status: statusOf(err), Msg: err.Error()}
		}
		reply(resp)
	})
	return true
}

// replicateAsync is sendToReplicas without blocking: done(err) runs once every replica target
// acknowledged muts, on the goroutine delivering the last acknowledgement. When a target fails,
// sendToReplicas takes over on a goroutine of its own and done gets its result. A non-zero
// deadline bounds it all; otherwise ctx does, and each call OperationTimeout.
func (s *Service) replicateAsync(ctx context.Context, p partition.ID, muts []mutation, deadline time.Time, done func(error)) {
	var buf [4]partition.MemberID
	t := s.cluster.Table()
	targets := appendReplicaTargets(buf[:0], t, p, s.self)
	if len(targets) == 0 {
		done(nil)
		return
	}
	header, body, err := encodeBatch(int32(p), t.Epoch, string(s.self), muts)
	if err != nil {
		done(err)
		return
	}
	r := &asyncReplication{s: s, ctx: ctx, deadline: deadline, p: p, muts: muts, done: done}
	r.left.Store(int32(len(targets)))
	msg := transport.Message{Type: msgBackup, Header: header, Body: body}
	timeout := s.cfg.OperationTimeout
	if !deadline.IsZero() {
		timeout = max(time.Until(deadline), time.Millisecond)
	}
	for _, m := range targets {
		addr, ok := s.cluster.MemberAddr(m)
		if !ok || !s.caller.CallAsync(addr, msg, timeout, r.acked) {
			r.acked(transport.Message{}, errNotSent)
		}
	}
}

// asyncReplication counts the acknowledgements of one replicateAsync.
type asyncReplication struct {
	s        *Service
	ctx      context.Context
	deadline time.Time
	p        partition.ID
	muts     []mutation
	done     func(error)
	left     atomic.Int32
	failed   atomic.Bool
}

// acked is the completion of one target's backup call.
func (r *asyncReplication) acked(msg transport.Message, err error) {
	if err == nil {
		var resp opResponse
		if resp, err = decodeResponse(msg); err == nil {
			err = resp.Status.err(resp.Msg)
		}
	}
	if err != nil {
		r.failed.Store(true)
	}
	if r.left.Add(-1) != 0 {
		return
	}
	if !r.failed.Load() {
		r.done(nil)
		return
	}
	// A target did not acknowledge: the retrying path takes over, off this goroutine (it may be
	// a connection's reader). It sends to every current target again; replicas apply a
	// mutation once.
	if !r.s.spawn(r.retry) {
		r.done(ErrClosed)
	}
}

// retry is the ordinary replication path, after an asynchronous attempt failed.
func (r *asyncReplication) retry() {
	ctx := r.ctx
	if !r.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, r.deadline)
		defer cancel()
	}
	r.done(r.s.sendToReplicas(ctx, r.p, r.muts))
}
