package enginetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// StableTimeout bounds Cluster.WaitStable.
const StableTimeout = 30 * time.Second

// Member is what one member's service runs on: its identity (also its address on the network),
// its view of the control plane, its calls and its server, registered on the network.
type Member struct {
	ID     partition.MemberID
	Node   *Node
	Caller transport.MemCaller
	Server *transport.Server
}

// Config describes a Cluster of services of type S.
type Config[S any] struct {
	// Partitions is the partition count of the coordinator's table.
	Partitions int
	// Plan is the planner's configuration (backups, RecreateLost).
	Plan partition.PlanConfig
	// Start starts a member's service; Stop stops it, as its member's close does.
	Start func(m Member) (S, error)
	Stop  func(S)
}

// Cluster runs several members' services in one process over a transport.MemNetwork, with a
// Coord for control plane. Its methods are for the test's goroutine (they fail the test);
// the fields may be read and changed between them (Net's and Coord's rules, for faults).
type Cluster[S any] struct {
	T     testing.TB
	Net   *transport.MemNetwork
	Coord *Coord
	Nodes map[partition.MemberID]*Node
	Svcs  map[partition.MemberID]S
	// Active are the members started and not killed, in start order: those Replan plans with.
	Active []partition.MemberID

	cfg Config[S]
}

// NewCluster starts n members, plans the table with them and waits until it is stable. The
// test's cleanup stops every service and server.
func NewCluster[S any](t testing.TB, n int, cfg Config[S]) *Cluster[S] {
	t.Helper()
	c := &Cluster[S]{
		T:     t,
		Net:   transport.NewMemNetwork(),
		Coord: NewCoord(cfg.Partitions, cfg.Plan),
		Nodes: map[partition.MemberID]*Node{},
		Svcs:  map[partition.MemberID]S{},
		cfg:   cfg,
	}
	for range n {
		c.Start()
	}
	c.Replan(nil)
	c.WaitStable()
	t.Cleanup(func() {
		for _, s := range c.Svcs {
			cfg.Stop(s)
		}
	})
	return c
}

// Start starts a member, m00, m01... in start order; it is in the plan at the next Replan.
func (c *Cluster[S]) Start() S {
	c.T.Helper()
	id := partition.MemberID(fmt.Sprintf("m%02d", len(c.Svcs)))
	srv, err := transport.NewServer(transport.Config{})
	if err != nil {
		c.T.Fatal(err)
	}
	c.T.Cleanup(func() { srv.Close() })
	c.Net.Register(string(id), srv)
	node := &Node{ID: id, Coord: c.Coord}
	s, err := c.cfg.Start(Member{ID: id, Node: node, Caller: c.Net.Caller(string(id)), Server: srv})
	if err != nil {
		c.T.Fatal(err)
	}
	c.Svcs[id] = s
	c.Nodes[id] = node
	c.Active = append(c.Active, id)
	return s
}

// Replan commits the plan of the active members, leaving ones (which keep their partitions
// until they are copied away) apart.
func (c *Cluster[S]) Replan(leaving []partition.MemberID) {
	var active []partition.MemberID
	for _, id := range c.Active {
		if !slices.Contains(leaving, id) {
			active = append(active, id)
		}
	}
	c.Coord.Plan(partition.Members{Active: active, Leaving: leaving})
}

// Kill cuts members off the network, stops their services and replans without them, as the
// coordinator does once it declares them dead. All of them go down before the coordinator
// hears of any: they die at once.
func (c *Cluster[S]) Kill(ids ...partition.MemberID) {
	for _, id := range ids {
		c.Net.SetDown(string(id), true)
		c.cfg.Stop(c.Svcs[id])
		c.Active = slices.DeleteFunc(c.Active, func(m partition.MemberID) bool { return m == id })
	}
	c.Replan(nil)
}

// DropMember removes a dead member from the directory, as the control plane eventually does.
func (c *Cluster[S]) DropMember(id partition.MemberID) {
	c.Coord.Mu.Lock()
	c.Coord.Gone[id] = true
	c.Coord.Mu.Unlock()
}

// WaitStable waits until every partition has an owner and no pending copy, and returns that
// table; it fails the test after StableTimeout.
func (c *Cluster[S]) WaitStable() *partition.Table {
	c.T.Helper()
	deadline := time.NewTimer(StableTimeout)
	defer deadline.Stop()
	for {
		t, ch := c.Coord.Watch()
		if stable(t) {
			return t
		}
		select {
		case <-ch:
		case <-deadline.C:
			c.T.Fatalf("table not stable after %v: epoch %d", StableTimeout, t.Epoch)
		}
	}
}

// stable reports whether every partition of t has an owner and no pending copy.
func stable(t *partition.Table) bool {
	for _, a := range t.Partitions {
		if len(a.Pending) > 0 || len(a.Replicas) == 0 {
			return false
		}
	}
	return true
}

// Svc returns the service of the i-th active member.
func (c *Cluster[S]) Svc(i int) S { return c.Svcs[c.Active[i]] }

// KeysOwnedBy returns n keys ("k0", "k1"...) whose partitions (by partitionOf) owner owns in the
// current table; with same, all in one partition. It fails the test if there are not n among
// the first 100000.
func (c *Cluster[S]) KeysOwnedBy(partitionOf func(key string) partition.ID, owner partition.MemberID, n int, same bool) []string {
	c.T.Helper()
	tab, _ := c.Coord.Watch()
	var keys []string
	var first partition.ID = -1
	for i := 0; len(keys) < n && i < 100000; i++ {
		k := fmt.Sprintf("k%d", i)
		p := partitionOf(k)
		if tab.Owner(p) != owner || (same && first >= 0 && p != first) {
			continue
		}
		first = p
		keys = append(keys, k)
	}
	if len(keys) < n {
		c.T.Fatalf("no %d keys owned by %s", n, owner)
	}
	return keys
}
