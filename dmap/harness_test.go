package dmap

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// The façade's tests run several members' engines in one process over the in-memory network and
// coordinator of internal/enginetest, each seen through its user-facing Service.

type cluster struct {
	t       testing.TB
	net     *transport.MemNetwork
	coord   *enginetest.Coord
	engines map[partition.MemberID]*engine.Service
	svcs    map[partition.MemberID]*Service
	active  []partition.MemberID
	cfg     engine.Config
}

func newCluster(t testing.TB, n, backups int, mod func(*engine.Config)) *cluster {
	t.Helper()
	cfg := engine.Config{PartitionCount: 31, ExpiryInterval: 20 * time.Millisecond, OperationTimeout: 20 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c := &cluster{
		t:       t,
		net:     transport.NewMemNetwork(),
		coord:   enginetest.NewCoord(cfg.PartitionCount, partition.PlanConfig{Backups: backups, RecreateLost: true}),
		engines: map[partition.MemberID]*engine.Service{},
		svcs:    map[partition.MemberID]*Service{},
		cfg:     cfg,
	}
	for range n {
		c.start()
	}
	c.replan()
	c.waitStable()
	t.Cleanup(func() {
		for _, e := range c.engines {
			e.Close()
		}
	})
	return c
}

// start adds a member (not yet in the plan: call replan).
func (c *cluster) start() *Service {
	c.t.Helper()
	id := partition.MemberID(fmt.Sprintf("m%02d", len(c.svcs)))
	srv, err := transport.NewServer(transport.Config{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { srv.Close() })
	c.net.Register(string(id), srv)
	e, err := engine.NewService(c.cfg, &enginetest.Node{ID: id, Coord: c.coord}, c.net.Caller(string(id)), srv)
	if err != nil {
		c.t.Fatal(err)
	}
	c.engines[id] = e
	c.svcs[id] = WrapEngine(e)
	c.active = append(c.active, id)
	return c.svcs[id]
}

func (c *cluster) replan() {
	c.coord.Plan(partition.Members{Active: slices.Clone(c.active)})
}

// kill cuts a member off the network, stops it and declares it dead.
func (c *cluster) kill(id partition.MemberID) {
	c.net.SetDown(string(id), true)
	c.engines[id].Close()
	c.active = slices.DeleteFunc(c.active, func(m partition.MemberID) bool { return m == id })
	c.replan()
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

// id returns the member whose service s is.
func (c *cluster) id(s *Service) partition.MemberID {
	for id, o := range c.svcs {
		if o == s {
			return id
		}
	}
	c.t.Fatal("unknown service")
	return ""
}

func mustMap[K comparable, V any](t *testing.T, s *Service, name string) *Map[K, V] {
	t.Helper()
	m, err := New[K, V](s, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// keysOwnedBy returns n keys whose partitions member owner owns in the current table (same: all
// in one partition).
func keysOwnedBy(t *testing.T, c *cluster, m *Map[string, string], owner partition.MemberID, n int, same bool) []string {
	t.Helper()
	tab, _ := c.coord.Watch()
	var keys []string
	var first partition.ID = -1
	for i := 0; len(keys) < n && i < 100000; i++ {
		k := fmt.Sprintf("k%d", i)
		p, _ := m.Partition(k)
		if tab.Owner(p) != owner || (same && first >= 0 && p != first) {
			continue
		}
		first = p
		keys = append(keys, k)
	}
	if len(keys) < n {
		t.Fatalf("no %d keys owned by %s", n, owner)
	}
	return keys
}

// recorder collects the events one listener received.
type recorder[K comparable, V any] struct {
	mu     sync.Mutex
	evs    []EntryEvent[K, V]
	missed uint64
}

func (r *recorder[K, V]) on(e EntryEvent[K, V]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Kind == listener.Overflow {
		r.missed += e.Missed
		return
	}
	r.evs = append(r.evs, e)
}

func (r *recorder[K, V]) snapshot() ([]EntryEvent[K, V], uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs), r.missed
}

func (r *recorder[K, V]) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.evs)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// registerDivisible registers on each service "divisible", a predicate that accepts the events
// whose new value is divisible by its argument.
func registerDivisible(t *testing.T, svcs ...*Service) {
	t.Helper()
	for _, s := range svcs {
		err := RegisterPredicate(s, "divisible", func(e EntryEvent[int, int], by int) bool { return e.NewValue%by == 0 })
		if err != nil {
			t.Fatal(err)
		}
	}
}

// coKey is a key whose partition is its Report's: the entries of one report are co-keyed.
type coKey struct {
	Report string
	Kind   string
}

func (k coKey) PartitionKey() string { return k.Report }

// closeSvc closes the engine behind s, as its member's Close does.
func (c *cluster) closeSvc(s *Service) { c.engines[c.id(s)].Close() }
