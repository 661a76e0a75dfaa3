package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// msgProbe is the admission probe (see Config.VerifyTransport): an empty request answered with
// an empty response. Its worth is the connection it needs: with TLS, a handshake in which both
// members verified each other's certificate.
const msgProbe transport.MsgType = 46

// refusedBackoff is how long the leader waits before probing a refused member again.
const refusedBackoff = 30 * time.Second

func (n *Node) registerProbe() {
	n.deps.Server.Handle(msgProbe, transport.HandlerFunc(func(ctx context.Context, m transport.Message) (transport.Message, error) {
		// The answer names this member: a probe of an absent member (see probeAbsent) tells a
		// new process at its address from the member itself. The transport belongs to the
		// caller and may outlive a closed node: the probe then fails, so that the leader does
		// not end the quarantine of a node that stopped (see quarantine.go); it is not a
		// refused connection, so probeAbsent still waits for such a member.
		if n.closed.Load() {
			return transport.Message{}, ErrClosed
		}
		return transport.Message{Type: msgProbe, Header: []byte(n.cfg.ID)}, nil
	}))
}

// probeTimeout bounds an admission probe: a refused TLS handshake fails at once, an unreachable
// member costs the coordinator this long.
func (n *Node) probeTimeout() time.Duration { return 2 * n.cfg.Timings.RaftHeartbeatTimeout }

// admitTransport reports whether the leader may admit member m (not in the directory yet) to
// raft: always without VerifyTransport, else once a probe over the transport succeeded. A
// refused member is logged with its addresses and not probed again for refusedBackoff.
func (n *Node) admitTransport(m membership.Member) bool {
	if !n.cfg.VerifyTransport {
		return true
	}
	id := partition.MemberID(m.ID)
	now := time.Now()
	if until, ok := n.co.refused[id]; ok && now.Before(until) {
		return false
	}
	ctx, cancel := n.stopContext()
	defer cancel()
	_, err := n.deps.Client.CallTimeout(ctx, m.TransportAddr, transport.Message{Type: msgProbe}, n.probeTimeout())
	if err == nil {
		delete(n.co.refused, id)
		return true
	}
	n.co.refused[id] = now.Add(refusedBackoff)
	for k, until := range n.co.refused {
		if now.After(until) {
			delete(n.co.refused, k)
		}
	}
	n.log.Warn("control: refused member: its transport failed the admission probe", "member", id,
		"addr", m.TransportAddr, "gossip_addr", m.GossipAddr, "err", err, "retry_after", refusedBackoff)
	return false
}

// noteRefusal records that the cluster refused this member (see WaitReady).
func (n *Node) noteRefusal(err error) {
	n.refusal.Store(&err)
}

// refused returns an error wrapping ErrJoinRefused when this member, not yet in raft, was
// refused by the cluster it reached: by the admission check of its gossip, or (with
// VerifyTransport, when probe is set) because a TLS handshake with a member of the cluster
// failed.
func (n *Node) refused(ctx context.Context, probe bool) error {
	if n.inRaft.Load() {
		return nil
	}
	if p := n.refusal.Load(); p != nil && n.ml.NumAlive() == 1 {
		return fmt.Errorf("%w: %w", ErrJoinRefused, *p)
	}
	if !n.cfg.VerifyTransport || !probe {
		return nil
	}
	for _, m := range n.ml.Alive() {
		if !m.InRaft || m.ID == string(n.cfg.ID) {
			continue
		}
		_, err := n.deps.Client.CallTimeout(ctx, m.TransportAddr, transport.Message{Type: msgProbe}, n.probeTimeout())
		if errors.Is(err, transport.ErrTLSHandshake) {
			return fmt.Errorf("%w: member %s at %s: %w", ErrJoinRefused, m.ID, m.TransportAddr, err)
		}
		break // one member of the cluster answers for it
	}
	return nil
}
