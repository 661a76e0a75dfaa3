package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/msgpackcheck"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// Message types of the control plane on the member transport (40..59).
const (
	msgReportSynced transport.MsgType = 40 // owner -> leader: a pending member is in sync
	msgLeave        transport.MsgType = 41 // member -> leader: I am leaving
	msgRemove       transport.MsgType = 42 // drained member -> leader: remove me from raft
	msgReadIndex    transport.MsgType = 43 // follower -> leader: confirm my lease (see lease.go)
	msgResetLost    transport.MsgType = 44 // member -> leader: clear the Lost mark of partitions
	msgUnreachable  transport.MsgType = 45 // member -> leader: these members do not answer (suspect.go)
)

// Request operations (the coordinator's request kinds).
const (
	reqSync      uint8 = 1
	reqLeave     uint8 = 2
	reqRemove    uint8 = 3
	reqRead      uint8 = 4 // read index: answered by the handler, not the coordinator
	reqResetLost uint8 = 5
	reqSuspect   uint8 = 6
)

// rpcReq is the header of a control request.
type rpcReq struct {
	Op    uint8              `msgpack:"o"`
	From  partition.MemberID `msgpack:"f"`
	P     int32              `msgpack:"p,omitempty"`
	M     partition.MemberID `msgpack:"m,omitempty"`
	Epoch uint64             `msgpack:"e,omitempty"`
	// Index is, in a read-index request, the sender's applied index.
	Index uint64 `msgpack:"x,omitempty"`
	// Parts are, in a reset request, the partitions to reset (empty: every
	// lost partition).
	Parts []int32 `msgpack:"ps,omitempty"`
	// Members are, in an unreachable report, the members that do not answer.
	Members []partition.MemberID `msgpack:"ms,omitempty"`
}

// Response statuses. Outcomes travel in the response header rather than as
// transport error codes, so they do not depend on the server's ErrorCode
// mapping.
const (
	statusOK         uint8 = 0
	statusNotLeader  uint8 = 1
	statusStale      uint8 = 2
	statusNotDrained uint8 = 3
	statusError      uint8 = 4
	statusNotMember  uint8 = 5
)

type rpcResp struct {
	Status uint8  `msgpack:"s"`
	Msg    string `msgpack:"m,omitempty"`
	// Index is, in a read-index response, the leader's applied index.
	Index uint64 `msgpack:"x,omitempty"`
}

// respond encodes the response header for err.
func respond(t transport.MsgType, err error, index uint64) (transport.Message, error) {
	resp := rpcResp{Status: statusOK, Index: index}
	switch {
	case err == nil:
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrClosed):
		resp.Status = statusNotLeader
	case errors.Is(err, ErrStale):
		resp.Status = statusStale
	case errors.Is(err, ErrNotDrained):
		resp.Status = statusNotDrained
	case errors.Is(err, ErrNotMember):
		resp.Status = statusNotMember
	default:
		resp.Status, resp.Msg = statusError, err.Error()
	}
	h, err := msgpack.Marshal(&resp)
	if err != nil {
		return transport.Message{}, err
	}
	return transport.Message{Type: t, Header: h}, nil
}

var opTypes = map[uint8]transport.MsgType{
	reqSync: msgReportSynced, reqLeave: msgLeave, reqRemove: msgRemove,
	reqResetLost: msgResetLost, reqSuspect: msgUnreachable,
}

// request is a control request queued to the coordinator goroutine.
type request struct {
	rpcReq
	reply chan error // buffered: the coordinator never blocks on it
}

func (n *Node) register() {
	n.registerProbe()
	n.registerKeyring()
	for op, t := range opTypes {
		n.deps.Server.Handle(t, transport.HandlerFunc(func(ctx context.Context, m transport.Message) (transport.Message, error) {
			var r rpcReq
			if err := msgpackcheck.Unmarshal(m.Header, &r); err != nil || r.Op != op {
				return transport.Message{}, &transport.RemoteError{Code: transport.CodeMalformed, Message: "control: malformed request"}
			}
			return respond(t, n.submit(ctx, r), 0)
		}))
	}
	n.deps.Server.Handle(msgReadIndex, transport.HandlerFunc(func(ctx context.Context, m transport.Message) (transport.Message, error) {
		var r rpcReq
		if err := msgpackcheck.Unmarshal(m.Header, &r); err != nil || r.Op != reqRead {
			return transport.Message{}, &transport.RemoteError{Code: transport.CodeMalformed, Message: "control: malformed request"}
		}
		idx, err := n.serveReadIndex(r.From, r.Index)
		return respond(msgReadIndex, err, idx)
	}))
}

// submit queues r to the coordinator and waits for its answer.
func (n *Node) submit(ctx context.Context, r rpcReq) error {
	if n.closed.Load() {
		return ErrClosed
	}
	req := &request{rpcReq: r, reply: make(chan error, 1)}
	select {
	case n.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stop:
		return ErrClosed
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stop:
		return ErrClosed
	}
}

// toLeader delivers r to the raft leader (this member's own coordinator
// when it leads) and returns its answer, retrying with backoff while there
// is no leader, the leader changes or cannot be reached, until ctx ends.
func (n *Node) toLeader(ctx context.Context, r rpcReq) error {
	hdr, err := msgpack.Marshal(&r)
	if err != nil {
		return fmt.Errorf("control: encode request: %w", err)
	}
	backoff := n.cfg.Timings.RetryInterval
	for {
		if n.closed.Load() {
			return ErrClosed
		}
		var err error
		if n.raft.State() == raft.Leader {
			err = n.submit(ctx, r)
		} else if addr, _ := n.raft.LeaderWithID(); addr != "" {
			err = n.call(ctx, string(addr), opTypes[r.Op], hdr)
		} else {
			err = ErrNotLeader
		}
		if err == nil || errors.Is(err, ErrStale) || errors.Is(err, ErrNotDrained) || errors.Is(err, ErrNotMember) ||
			errors.Is(err, ErrRemote) || errors.Is(err, ErrClosed) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.log.Debug("control: request to leader will be retried", "op", r.Op, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-n.stop:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
		backoff = min(2*backoff, 10*n.cfg.Timings.RetryInterval)
	}
}

func (n *Node) call(ctx context.Context, addr string, t transport.MsgType, hdr []byte) error {
	_, err := n.callIndex(ctx, addr, t, hdr)
	return err
}

// callIndex sends a control request and returns the response's Index.
func (n *Node) callIndex(ctx context.Context, addr string, t transport.MsgType, hdr []byte) (uint64, error) {
	resp, err := n.deps.Client.Call(ctx, addr, transport.Message{Type: t, Header: hdr})
	if err != nil {
		return 0, err
	}
	var r rpcResp
	if err := msgpackcheck.Unmarshal(resp.Header, &r); err != nil {
		return 0, fmt.Errorf("control: malformed response from %s: %w", addr, err)
	}
	switch r.Status {
	case statusOK:
		return r.Index, nil
	case statusNotLeader:
		return 0, ErrNotLeader
	case statusStale:
		return 0, ErrStale
	case statusNotDrained:
		return 0, ErrNotDrained
	case statusNotMember:
		return 0, ErrNotMember
	}
	return 0, fmt.Errorf("%w: %s", ErrRemote, r.Msg)
}
