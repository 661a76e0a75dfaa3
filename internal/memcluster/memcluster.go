// Package memcluster is an in-memory cluster for tests of the map engine and its façades: a
// network (Net) that carries transport messages between handlers registered by address, with
// rules to lose, hang or delay them, and a coordinator (Coord) that plays the control plane:
// tests decide membership, and it plans tables with the real planner and applies copy reports
// with partition.Complete. Node is one member's view of it (the engine's Cluster), Caller and
// Registrar its transport.
package memcluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// Net is the in-memory network.
type Net struct {
	Mu       sync.Mutex
	Handlers map[string]map[transport.MsgType]transport.Handler
	Down     map[string]bool
	// Drop, when set, fails the calls it returns true for (as an unreachable peer would):
	// a targeted loss between two members, for one message type.
	Drop func(from, to string, t transport.MsgType) bool
	// Hang, when set, swallows the calls it returns true for: they are never answered (a
	// peer that stopped, or a network that drops packets), and end only with their timeout
	// or context.
	Hang func(from, to string, t transport.MsgType) bool
	// Serving counts the requests whose handler is running.
	Serving atomic.Int64
	// Answered, when set, runs once the receiver has served a call, before the answer goes
	// back; it may block (an acknowledgement held back) or return true to lose the answer (the
	// caller sees a lost connection, the receiver has done the work).
	Answered func(from, to string, t transport.MsgType) (lose bool)
}

// SetHang installs (or, with nil, removes) the rule of calls never answered.
func (n *Net) SetHang(f func(from, to string, t transport.MsgType) bool) {
	n.Mu.Lock()
	n.Hang = f
	n.Mu.Unlock()
}

// SetAnswered installs (or, with nil, removes) the answered hook.
func (n *Net) SetAnswered(f func(from, to string, t transport.MsgType) bool) {
	n.Mu.Lock()
	n.Answered = f
	n.Mu.Unlock()
}

// LoseAnswer reports, calling the answered hook if any, whether the answer of a served call
// from->to of type t is lost.
func (n *Net) LoseAnswer(from, to string, t transport.MsgType) bool {
	n.Mu.Lock()
	f := n.Answered
	n.Mu.Unlock()
	return f != nil && f(from, to, t)
}

// SetDrop installs (or, with nil, removes) the targeted drop rule.
func (n *Net) SetDrop(f func(from, to string, t transport.MsgType) bool) {
	n.Mu.Lock()
	n.Drop = f
	n.Mu.Unlock()
}

// NewNet returns an empty network.
func NewNet() *Net {
	return &Net{Handlers: map[string]map[transport.MsgType]transport.Handler{}, Down: map[string]bool{}}
}

// Registrar installs a member's handlers on the network under its address.
type Registrar struct {
	Net  *Net
	Addr string
}

// Handle implements the engine's Registrar.
func (r Registrar) Handle(t transport.MsgType, h transport.Handler) {
	r.Net.Mu.Lock()
	defer r.Net.Mu.Unlock()
	if r.Net.Handlers[r.Addr] == nil {
		r.Net.Handlers[r.Addr] = map[transport.MsgType]transport.Handler{}
	}
	if r.Net.Handlers[r.Addr][t] != nil {
		panic(fmt.Sprintf("fake: message type %d registered twice on %s", t, r.Addr)) // as transport.Server does
	}
	r.Net.Handlers[r.Addr][t] = h
}

// Caller sends a member's calls over the network.
type Caller struct {
	Net  *Net
	From string
}

// Call delivers req to the handler registered at addr and returns its answer.
func (c Caller) Call(ctx context.Context, addr string, req transport.Message) (transport.Message, error) {
	c.Net.Mu.Lock()
	h := c.Net.Handlers[addr][req.Type]
	down := c.Net.Down[addr] || c.Net.Down[c.From]
	if c.Net.Drop != nil && c.Net.Drop(c.From, addr, req.Type) {
		down = true
	}
	hang := c.Net.Hang != nil && c.Net.Hang(c.From, addr, req.Type)
	c.Net.Mu.Unlock()
	if down || h == nil {
		return transport.Message{}, fmt.Errorf("fake: %s unreachable: %w", addr, transport.ErrConnClosed)
	}
	if err := ctx.Err(); err != nil {
		return transport.Message{}, err
	}
	if hang {
		<-ctx.Done()
		return transport.Message{}, fmt.Errorf("fake: call %s: %w", addr, ctx.Err())
	}
	// Copy as the wire would: the receiver owns its buffers.
	req.Header = slices.Clone(req.Header)
	req.Body = slices.Clone(req.Body)
	// The receiver serves the request under a context of its own, as the transport's server
	// does: the caller's deadline reaches it only through the request. The caller stops
	// waiting when its context ends.
	type answer struct {
		msg transport.Message
		err error
	}
	done := make(chan answer, 1)
	c.Net.Serving.Add(1)
	go func() {
		defer c.Net.Serving.Add(-1)
		msg, err := c.serve(context.WithoutCancel(ctx), addr, h, req)
		done <- answer{msg, err}
	}()
	select {
	case a := <-done:
		return a.msg, a.err
	case <-ctx.Done():
		return transport.Message{}, fmt.Errorf("fake: call %s: %w", addr, ctx.Err())
	}
}

// serve runs a request through the receiver's handler, as the transport's server would.
func (c Caller) serve(ctx context.Context, addr string, h transport.Handler, req transport.Message) (transport.Message, error) {
	var resp transport.Message
	var err error
	if ah, ok := h.(transport.AsyncHandler); ok {
		// As the transport does: the reader-goroutine path first.
		type answer struct {
			msg transport.Message
			err error
		}
		ch := make(chan answer, 1)
		if ah.TryServe(ctx, req, transport.ReplyFunc(func(m transport.Message, err error) { ch <- answer{m, err} })) {
			select {
			case a := <-ch:
				resp, err = a.msg, a.err
			case <-ctx.Done():
				return transport.Message{}, ctx.Err()
			}
		} else {
			resp, err = h.ServeMsg(ctx, req)
		}
	} else {
		resp, err = h.ServeMsg(ctx, req)
	}
	if c.Net.LoseAnswer(c.From, addr, req.Type) {
		return transport.Message{}, fmt.Errorf("fake: answer from %s lost: %w", addr, transport.ErrConnClosed)
	}
	if err != nil {
		return transport.Message{}, &transport.RemoteError{Code: transport.CodeInternal, Message: err.Error()}
	}
	resp.Header = slices.Clone(resp.Header)
	resp.Body = slices.Clone(resp.Body)
	return resp, nil
}

// CallTimeout is Call bounded by timeout, failing as the transport does.
func (c Caller) CallTimeout(ctx context.Context, addr string, req transport.Message, timeout time.Duration) (transport.Message, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := c.Call(tctx, addr, req)
	if err != nil && ctx.Err() == nil && tctx.Err() != nil {
		return resp, fmt.Errorf("fake: call %s: %w", addr, transport.ErrCallTimeout) // as the transport's timeout
	}
	return resp, err
}

// CallAsync runs the call on a goroutine of its own; like the transport it declines (sends
// nothing) when the peer is unreachable.
func (c Caller) CallAsync(_ context.Context, addr string, req transport.Message, timeout time.Duration, done transport.Callback) bool {
	c.Net.Mu.Lock()
	down := c.Net.Down[addr] || c.Net.Down[c.From] || c.Net.Handlers[addr][req.Type] == nil ||
		(c.Net.Drop != nil && c.Net.Drop(c.From, addr, req.Type))
	c.Net.Mu.Unlock()
	if down {
		return false
	}
	go func() {
		done.CallDone(c.CallTimeout(context.Background(), addr, req, timeout))
	}()
	return true
}

// Coord holds the committed table shared by every fake member.
type Coord struct {
	Mu      sync.Mutex
	Table   *partition.Table
	Changed chan struct{}
	Members partition.Members
	Cfg     partition.PlanConfig
	NoLease map[partition.MemberID]bool
	Gone    map[partition.MemberID]bool // removed from the directory
	// Reports counts ReportUnreachable calls per reported member; with Demote set, a report
	// takes the member out of every partition's backups and pending copies at once (a table
	// commit), as the coordinator does.
	Reports map[partition.MemberID]int
	Demote  bool
}

// ReportsOf returns how many times m was reported unreachable.
func (c *Coord) ReportsOf(m partition.MemberID) int {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.Reports[m]
}

// Commit commits a table derived from the current one by edit (which gets a copy), at the next
// epoch.
func (c *Coord) Commit(edit func(t *partition.Table)) *partition.Table {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	next := c.Table.Clone()
	next.Epoch++
	edit(next)
	c.CommitLocked(next)
	return next
}

// Watch returns the committed table and a channel closed at the next commit.
func (c *Coord) Watch() (*partition.Table, <-chan struct{}) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.Table, c.Changed
}

// CommitLocked installs t as the committed table; the caller holds Mu.
func (c *Coord) CommitLocked(t *partition.Table) {
	if err := t.Validate(); err != nil {
		panic(err)
	}
	c.Table = t
	close(c.Changed)
	c.Changed = make(chan struct{})
}

// Plan re-plans with the current membership.
func (c *Coord) Plan(members partition.Members) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	c.Members = members
	if next, lost, changed := partition.Plan(c.Table, members, c.Cfg); changed {
		// As the coordinator's planner does: a partition that lost every replica is assigned
		// afresh with its loss recorded, and is not served until reset unless RecreateLost.
		for _, p := range lost {
			a := &next.Partitions[p]
			a.LostAt = next.Epoch
			a.Lost = !c.Cfg.RecreateLost
		}
		c.CommitLocked(next)
	}
}

// Node is one member's view of the control plane (the engine's Cluster).
type Node struct {
	ID    partition.MemberID
	Coord *Coord

	mu     sync.Mutex
	frozen *partition.Table // set: the table this member sees instead of the committed one
	thawed chan struct{}    // closed when the frozen view changes or ends
}

// Freeze makes the member see t as its latest table until Thaw (or the next Freeze), whatever
// the coordinator commits meanwhile: a member that was stopped (SIGSTOP) or cut off, or one
// whose raft log is catching up through older tables. Watchers of the member's table are woken.
func (n *Node) Freeze(t *partition.Table) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.frozen = t
	if n.thawed != nil {
		close(n.thawed)
	}
	n.thawed = make(chan struct{})
}

// Thaw ends Freeze: the member sees the committed table again.
func (n *Node) Thaw() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.frozen = nil
	if n.thawed != nil {
		close(n.thawed)
		n.thawed = nil
	}
}

// LocalID implements Cluster.
func (n *Node) LocalID() partition.MemberID { return n.ID }

// Table implements Cluster.
func (n *Node) Table() *partition.Table { t, _ := n.Watch(); return t }

// Watch implements Cluster.
func (n *Node) Watch() (*partition.Table, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.frozen != nil {
		return n.frozen, n.thawed
	}
	return n.Coord.Watch()
}

// MemberAddr implements Cluster: a member's address is its ID, until Coord.Gone lists it.
func (n *Node) MemberAddr(id partition.MemberID) (string, bool) {
	n.Coord.Mu.Lock()
	defer n.Coord.Mu.Unlock()
	return string(id), !n.Coord.Gone[id]
}

// LeaseValid implements Cluster: valid unless Coord.NoLease lists the member.
func (n *Node) LeaseValid() bool {
	n.Coord.Mu.Lock()
	defer n.Coord.Mu.Unlock()
	return !n.Coord.NoLease[n.ID]
}

// ReportUnreachable implements Cluster: it counts the report and, with Coord.Demote, acts on it.
func (n *Node) ReportUnreachable(m partition.MemberID) {
	c := n.Coord
	c.Mu.Lock()
	defer c.Mu.Unlock()
	if c.Reports == nil {
		c.Reports = make(map[partition.MemberID]int)
	}
	c.Reports[m]++
	if !c.Demote {
		return
	}
	next := c.Table.Clone()
	changed := false
	for i := range next.Partitions {
		a := &next.Partitions[i]
		if len(a.Replicas) > 1 && slices.Contains(a.Replicas[1:], m) {
			a.Replicas = append(a.Replicas[:1:1], slices.DeleteFunc(slices.Clone(a.Replicas[1:]), func(r partition.MemberID) bool { return r == m })...)
			changed = true
		}
		if slices.ContainsFunc(a.Pending, func(pe partition.Pending) bool { return pe.Member == m }) {
			a.Pending = slices.DeleteFunc(a.Pending, func(pe partition.Pending) bool { return pe.Member == m })
			if len(a.Pending) == 0 {
				a.Pending = nil
			}
			changed = true
		}
	}
	if changed {
		next.Epoch++
		c.CommitLocked(next)
	}
}

// ReportSynced implements Cluster: it completes the copy and re-plans, as the coordinator does.
func (n *Node) ReportSynced(ctx context.Context, p partition.ID, m partition.MemberID, epoch uint64) error {
	c := n.Coord
	c.Mu.Lock()
	defer c.Mu.Unlock()
	if c.Table.Owner(p) != n.ID {
		return nil // a stale report (the coordinator refuses it): nothing changes
	}
	next, changed := partition.CompleteCopy(c.Table, p, m, epoch, c.Members, c.Cfg)
	if !changed {
		return nil
	}
	if again, _, ch := partition.Plan(next, c.Members, c.Cfg); ch {
		next = again
	}
	c.CommitLocked(next)
	return nil
}

// NewCoord returns a coordinator with an empty table of partitions partitions, planning with
// cfg.
func NewCoord(partitions int, cfg partition.PlanConfig) *Coord {
	return &Coord{Table: partition.NewTable(partitions), Changed: make(chan struct{}), Cfg: cfg,
		NoLease: map[partition.MemberID]bool{}, Gone: map[partition.MemberID]bool{}}
}
