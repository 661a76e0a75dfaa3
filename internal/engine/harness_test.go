package engine

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// The harness runs several map services in one process over an in-memory network with a fake
// coordinator (internal/enginetest).

type cluster struct {
	t      testing.TB
	net    *transport.MemNetwork
	coord  *enginetest.Coord
	svcs   map[partition.MemberID]*Service
	nodes  map[partition.MemberID]*enginetest.Node
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
		net:   transport.NewMemNetwork(),
		coord: enginetest.NewCoord(cfg.PartitionCount, partition.PlanConfig{Backups: backups, RecreateLost: true}),
		svcs:  map[partition.MemberID]*Service{},
		nodes: map[partition.MemberID]*enginetest.Node{},
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
	node := &enginetest.Node{ID: id, Coord: c.coord}
	srv, err := transport.NewServer(transport.Config{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { srv.Close() })
	c.net.Register(string(id), srv)
	s, err := NewService(c.cfg, node, c.net.Caller(string(id)), srv)
	if err != nil {
		c.t.Fatal(err)
	}
	c.svcs[id] = s
	c.nodes[id] = node
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
	c.coord.Plan(partition.Members{Active: active, Leaving: leaving})
}

// kill cuts members off the network and declares them dead.
func (c *cluster) kill(ids ...partition.MemberID) {
	// All of them go down before the coordinator hears of any: they die at once.
	for _, id := range ids {
		c.net.SetDown(string(id), true)
		c.svcs[id].Close()
		c.active = slices.DeleteFunc(c.active, func(m partition.MemberID) bool { return m == id })
	}
	c.replan(nil)
}

// dropMember removes a dead member from the directory, as the control plane eventually does.
func (c *cluster) dropMember(id partition.MemberID) {
	c.coord.Mu.Lock()
	c.coord.Gone[id] = true
	c.coord.Mu.Unlock()
}

// waitStable waits until the table has no pending copies.
func (c *cluster) waitStable() *partition.Table {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		t, ch := c.coord.Watch()
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

func mustMap[K comparable, V any](t *testing.T, s *Service, name string) *tmap[K, V] {
	t.Helper()
	m, err := newTMap[K, V](s, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
