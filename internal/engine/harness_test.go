package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// The harness runs several map services in one process over an in-memory network, with a fake
// coordinator that plays the control plane: tests decide membership, the coordinator plans
// tables with the real planner and applies copy reports with partition.Complete.

type fakeNet struct {
	mu       sync.Mutex
	handlers map[string]map[transport.MsgType]transport.Handler
	down     map[string]bool
	// drop, when set, fails the calls it returns true for (as an unreachable peer would):
	// a targeted loss between two members, for one message type.
	drop func(from, to string, t transport.MsgType) bool
	// hang, when set, swallows the calls it returns true for: they are never answered (a
	// peer that stopped, or a network that drops packets), and end only with their timeout
	// or context.
	hang func(from, to string, t transport.MsgType) bool
	// serving counts the requests whose handler is running.
	serving atomic.Int64
	// answered, when set, runs once the receiver has served a call, before the answer goes
	// back; it may block (an acknowledgement held back) or return true to lose the answer (the
	// caller sees a lost connection, the receiver has done the work).
	answered func(from, to string, t transport.MsgType) (lose bool)
}

// setHang installs (or, with nil, removes) the rule of calls never answered.
func (n *fakeNet) setHang(f func(from, to string, t transport.MsgType) bool) {
	n.mu.Lock()
	n.hang = f
	n.mu.Unlock()
}

// setAnswered installs (or, with nil, removes) the answered hook.
func (n *fakeNet) setAnswered(f func(from, to string, t transport.MsgType) bool) {
	n.mu.Lock()
	n.answered = f
	n.mu.Unlock()
}

// loseAnswer reports, calling the answered hook if any, whether the answer of a served call
// from->to of type t is lost.
func (n *fakeNet) loseAnswer(from, to string, t transport.MsgType) bool {
	n.mu.Lock()
	f := n.answered
	n.mu.Unlock()
	return f != nil && f(from, to, t)
}

// setDrop installs (or, with nil, removes) the targeted drop rule.
func (n *fakeNet) setDrop(f func(from, to string, t transport.MsgType) bool) {
	n.mu.Lock()
	n.drop = f
	n.mu.Unlock()
}

func newFakeNet() *fakeNet {
	return &fakeNet{handlers: map[string]map[transport.MsgType]transport.Handler{}, down: map[string]bool{}}
}

type fakeReg struct {
	net  *fakeNet
	addr string
}

func (r fakeReg) Handle(t transport.MsgType, h transport.Handler) {
	r.net.mu.Lock()
	defer r.net.mu.Unlock()
	if r.net.handlers[r.addr] == nil {
		r.net.handlers[r.addr] = map[transport.MsgType]transport.Handler{}
	}
	if r.net.handlers[r.addr][t] != nil {
		panic(fmt.Sprintf("fake: message type %d registered twice on %s", t, r.addr)) // as transport.Server does
	}
	r.net.handlers[r.addr][t] = h
}

type fakeCaller struct {
	net  *fakeNet
	from string
}

func (c fakeCaller) Call(ctx context.Context, addr string, req transport.Message) (transport.Message, error) {
	c.net.mu.Lock()
	h := c.net.handlers[addr][req.Type]
	down := c.net.down[addr] || c.net.down[c.from]
	if c.net.drop != nil && c.net.drop(c.from, addr, req.Type) {
		down = true
	}
	hang := c.net.hang != nil && c.net.hang(c.from, addr, req.Type)
	c.net.mu.Unlock()
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
	c.net.serving.Add(1)
	go func() {
		defer c.net.serving.Add(-1)
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
func (c fakeCaller) serve(ctx context.Context, addr string, h transport.Handler, req transport.Message) (transport.Message, error) {
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
	if c.net.loseAnswer(c.from, addr, req.Type) {
		return transport.Message{}, fmt.Errorf("fake: answer from %s lost: %w", addr, transport.ErrConnClosed)
	}
	if err != nil {
		return transport.Message{}, &transport.RemoteError{Code: transport.CodeInternal, Message: err.Error()}
	}
	resp.Header = slices.Clone(resp.Header)
	resp.Body = slices.Clone(resp.Body)
	return resp, nil
}

func (c fakeCaller) CallTimeout(ctx context.Context, addr string, req transport.Message, timeout time.Duration) (transport.Message, error) {
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
func (c fakeCaller) CallAsync(_ context.Context, addr string, req transport.Message, timeout time.Duration, done transport.Callback) bool {
	c.net.mu.Lock()
	down := c.net.down[addr] || c.net.down[c.from] || c.net.handlers[addr][req.Type] == nil ||
		(c.net.drop != nil && c.net.drop(c.from, addr, req.Type))
	c.net.mu.Unlock()
	if down {
		return false
	}
	go func() {
		done.CallDone(c.CallTimeout(context.Background(), addr, req, timeout))
	}()
	return true
}

// fakeCoord holds the committed table shared by every fake member.
type fakeCoord struct {
	mu      sync.Mutex
	table   *partition.Table
	changed chan struct{}
	members partition.Members
	cfg     partition.PlanConfig
	noLease map[partition.MemberID]bool
	gone    map[partition.MemberID]bool // removed from the directory
	// reports counts ReportUnreachable calls per reported member; with demote set, a report
	// takes the member out of every partition's backups and pending copies at once (a table
	// commit), as the coordinator does.
	reports map[partition.MemberID]int
	demote  bool
}

// reportsOf returns how many times m was reported unreachable.
func (c *fakeCoord) reportsOf(m partition.MemberID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reports[m]
}

// commit commits a table derived from the current one by edit (which gets a copy), at the next
// epoch.
func (c *fakeCoord) commit(edit func(t *partition.Table)) *partition.Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.table.Clone()
	next.Epoch++
	edit(next)
	c.commitLocked(next)
	return next
}

func (c *fakeCoord) watch() (*partition.Table, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.table, c.changed
}

func (c *fakeCoord) commitLocked(t *partition.Table) {
	if err := t.Validate(); err != nil {
		panic(err)
	}
	c.table = t
	close(c.changed)
	c.changed = make(chan struct{})
}

// plan re-plans with the current membership.
func (c *fakeCoord) plan(members partition.Members) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = members
	if next, lost, changed := partition.Plan(c.table, members, c.cfg); changed {
		// As the coordinator's planner does: a partition that lost every replica is assigned
		// afresh with its loss recorded, and is not served until reset unless RecreateLost.
		for _, p := range lost {
			a := &next.Partitions[p]
			a.LostAt = next.Epoch
			a.Lost = !c.cfg.RecreateLost
		}
		c.commitLocked(next)
	}
}

type fakeNode struct {
	id    partition.MemberID
	coord *fakeCoord
}

func (n *fakeNode) LocalID() partition.MemberID { return n.id }
func (n *fakeNode) Table() *partition.Table     { t, _ := n.coord.watch(); return t }
func (n *fakeNode) Watch() (*partition.Table, <-chan struct{}) {
	return n.coord.watch()
}
func (n *fakeNode) MemberAddr(id partition.MemberID) (string, bool) {
	n.coord.mu.Lock()
	defer n.coord.mu.Unlock()
	return string(id), !n.coord.gone[id]
}
func (n *fakeNode) LeaseValid() bool {
	n.coord.mu.Lock()
	defer n.coord.mu.Unlock()
	return !n.coord.noLease[n.id]
}
func (n *fakeNode) ReportUnreachable(m partition.MemberID) {
	c := n.coord
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reports == nil {
		c.reports = make(map[partition.MemberID]int)
	}
	c.reports[m]++
	if !c.demote {
		return
	}
	next := c.table.Clone()
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
		c.commitLocked(next)
	}
}

func (n *fakeNode) ReportSynced(ctx context.Context, p partition.ID, m partition.MemberID, epoch uint64) error {
	c := n.coord
	c.mu.Lock()
	defer c.mu.Unlock()
	next, changed := partition.Complete(c.table, p, m, c.members, c.cfg)
	if !changed {
		return nil
	}
	if again, _, ch := partition.Plan(next, c.members, c.cfg); ch {
		next = again
	}
	c.commitLocked(next)
	return nil
}

type cluster struct {
	t      testing.TB
	net    *fakeNet
	coord  *fakeCoord
	svcs   map[partition.MemberID]*Service
	active []partition.MemberID
	cfg    Config
}

func newCluster(t testing.TB, n, backups int, mod func(*Config)) *cluster {
	t.Helper()
	cfg := Config{PartitionCount: 31, ExpiryInterval: 20 * time.Millisecond, OperationTimeout: 20 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c := &cluster{
		t:     t,
		net:   newFakeNet(),
		coord: &fakeCoord{table: partition.NewTable(cfg.PartitionCount), changed: make(chan struct{}), cfg: partition.PlanConfig{Backups: backups, RecreateLost: true}, noLease: map[partition.MemberID]bool{}, gone: map[partition.MemberID]bool{}},
		svcs:  map[partition.MemberID]*Service{},
		cfg:   cfg,
	}
	for range n {
		c.start()
	}
	c.replan(nil)
	c.waitStable()
	t.Cleanup(func() {
		for _, s := range c.svcs {
			s.Close()
		}
	})
	return c
}

// start adds a member (not yet in the plan: call replan).
func (c *cluster) start() *Service {
	c.t.Helper()
	id := partition.MemberID(fmt.Sprintf("m%02d", len(c.svcs)))
	node := &fakeNode{id: id, coord: c.coord}
	s, err := NewService(c.cfg, node, fakeCaller{net: c.net, from: string(id)}, fakeReg{net: c.net, addr: string(id)})
	if err != nil {
		c.t.Fatal(err)
	}
	c.svcs[id] = s
	c.active = append(c.active, id)
	return s
}

func (c *cluster) replan(leaving []partition.MemberID) {
	var active []partition.MemberID
	for _, id := range c.active {
		if !slices.Contains(leaving, id) {
			active = append(active, id)
		}
	}
	c.coord.plan(partition.Members{Active: active, Leaving: leaving})
}

// kill cuts members off the network and declares them dead.
func (c *cluster) kill(ids ...partition.MemberID) {
	// All of them go down before the coordinator hears of any: they die at once.
	for _, id := range ids {
		c.net.mu.Lock()
		c.net.down[string(id)] = true
		c.net.mu.Unlock()
		c.svcs[id].Close()
		c.active = slices.DeleteFunc(c.active, func(m partition.MemberID) bool { return m == id })
	}
	c.replan(nil)
}

// dropMember removes a dead member from the directory, as the control plane eventually does.
func (c *cluster) dropMember(id partition.MemberID) {
	c.coord.mu.Lock()
	c.coord.gone[id] = true
	c.coord.mu.Unlock()
}

// waitStable waits until the table has no pending copies.
func (c *cluster) waitStable() *partition.Table {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		t, ch := c.coord.watch()
		stable := true
		for _, a := range t.Partitions {
			if len(a.Pending) > 0 || len(a.Replicas) == 0 {
				stable = false
			}
		}
		if stable {
			return t
		}
		select {
		case <-ch:
		case <-time.After(time.Until(deadline)):
			c.t.Fatalf("table not stable after 30s: epoch %d", t.Epoch)
		}
	}
}

func (c *cluster) svc(i int) *Service { return c.svcs[c.active[i]] }

func mustMap[K comparable, V any](t *testing.T, s *Service, name string) *Map[K, V] {
	t.Helper()
	m, err := New[K, V](s, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
