package control

import (
	"sync"
	"time"

	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// quarantineProbes carries the probes of quarantined members (see the
// Quarantine section in quarantine.go): the coordinator starts them, one at
// a time per member, each in a goroutine of the Node, and collects their
// outcomes at its next round.
type quarantineProbes struct {
	mu      sync.Mutex
	running map[partition.MemberID]bool
	last    map[partition.MemberID]time.Time // when the member's latest probe started
	done    []probeOutcome
}

// probeOutcome is the outcome of one probe of a quarantined member.
type probeOutcome struct {
	id   partition.MemberID
	sent time.Time
	ok   bool // the member answered, naming itself
}

func (p *quarantineProbes) init() {
	p.running = map[partition.MemberID]bool{}
	p.last = map[partition.MemberID]time.Time{}
}

// take returns the outcomes collected since the last call.
func (p *quarantineProbes) take() []probeOutcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.done
	p.done = nil
	return out
}

// quarantineProbeInterval is the least time between the starts of two
// probes of one quarantined member.
func (n *Node) quarantineProbeInterval() time.Duration { return n.cfg.Timings.RaftHeartbeatTimeout / 2 }

// quarantineSettle is how long a quarantined member that never flapped must
// answer probes before its quarantine ends early: a raft heartbeat timeout,
// two probes at least.
func (n *Node) quarantineSettle() time.Duration { return n.cfg.Timings.RaftHeartbeatTimeout }

// endQuarantines is the coordinator's handling of the quarantine probes at
// now: it records the outcomes of finished probes, ends the quarantines of
// the members that answered for long enough (logged), and starts a probe of
// every live member still quarantined that has none running.
func (n *Node) endQuarantines(alive map[partition.MemberID]membership.Member, now time.Time) {
	for _, o := range n.qprobes.take() {
		n.co.quarantine.probed(o.id, o.sent, o.ok)
	}
	for _, e := range n.co.quarantine.release(now, n.quarantineSettle()) {
		n.log.Info("control: quarantined member answers again; quarantine ended early", "member", e.id,
			"backoff_left", e.saved.Round(time.Millisecond), "flaps", e.flaps)
	}
	p := &n.qprobes
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.last {
		if !n.co.quarantine.holds(id, now) && !p.running[id] {
			delete(p.last, id)
		}
	}
	for id := range n.co.quarantine {
		m, ok := alive[id]
		if !ok || !n.co.quarantine.holds(id, now) || p.running[id] || m.TransportAddr == "" ||
			now.Sub(p.last[id]) < n.quarantineProbeInterval() || n.closed.Load() {
			continue
		}
		p.running[id], p.last[id] = true, now
		n.wg.Add(1)
		go n.probeQuarantined(id, m.TransportAddr, now)
	}
}

// probeQuarantined probes quarantined member id at addr (the probe started
// at sent) and records the outcome for the coordinator.
func (n *Node) probeQuarantined(id partition.MemberID, addr string, sent time.Time) {
	defer n.wg.Done()
	ctx, cancel := n.stopContext()
	defer cancel()
	answer, err := n.deps.Client.CallTimeout(ctx, addr, transport.Message{Type: msgProbe}, n.probeTimeout())
	ok := err == nil && string(answer.Header) == string(id)
	p := &n.qprobes
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, id)
	p.done = append(p.done, probeOutcome{id: id, sent: sent, ok: ok})
}
