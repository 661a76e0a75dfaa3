package dmap

import (
	"context"
	"errors"
	"sync/atomic"

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
		return s.tryOwnerWrite(ctx, p, &req, reply)
	}
	return false
}

// tryOwnerWrite is ownerWrite for a single-key write that does not wait: it declines when the
// partition is being written (or handed off) or this member's table is older than the caller's.
// The partition's write lock is held until the backups acknowledged, as in ownerWrite, and
// released by the completion.
func (s *Service) tryOwnerWrite(ctx context.Context, p *part, req *opRequest, reply func(transport.Message, error)) bool {
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
		reply(encodeResponse(opResponse{Status: st, Epoch: ep}))
		return true
	}
	muts, resp := s.applyWrite(ctx, p, func(w *writeBatch) opResponse { return s.decideKeyWrite(w, req) })
	if len(muts) == 0 {
		p.writeMu.Unlock()
		reply(encodeResponse(resp))
		return true
	}
	s.replicateAsync(ctx, p.id, muts, func(err error) {
		p.writeMu.Unlock()
		if err != nil {
			resp = opResponse{Status: statusOf(err), Msg: err.Error()}
		}
		reply(encodeResponse(resp))
	})
	return true
}

// replicateAsync is sendToReplicas without blocking: done(err) runs once every replica target
// acknowledged muts, on the goroutine delivering the last acknowledgement. When a target fails,
// sendToReplicas takes over on a goroutine of its own and done gets its result.
func (s *Service) replicateAsync(ctx context.Context, p partition.ID, muts []mutation, done func(error)) {
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
	r := &asyncReplication{s: s, ctx: ctx, p: p, muts: muts, done: done}
	r.left.Store(int32(len(targets)))
	msg := transport.Message{Type: msgBackup, Header: header, Body: body}
	for _, m := range targets {
		addr, ok := s.cluster.MemberAddr(m)
		if !ok || !s.caller.CallAsync(addr, msg, s.cfg.OperationTimeout, r.acked) {
			r.acked(transport.Message{}, errNotSent)
		}
	}
}

// asyncReplication counts the acknowledgements of one replicateAsync.
type asyncReplication struct {
	s      *Service
	ctx    context.Context
	p      partition.ID
	muts   []mutation
	done   func(error)
	left   atomic.Int32
	failed atomic.Bool
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
	if !r.s.spawn(func() { r.done(r.s.sendToReplicas(r.ctx, r.p, r.muts)) }) {
		r.done(ErrClosed)
	}
}
