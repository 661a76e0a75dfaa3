package gridmaptest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/gridmaptest"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
	"github.com/gridmap/gridmap/partition"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// A ready cluster: every partition owned and backed up on distinct members, and a value put
// through one member is read through every other.
func TestNewClusterPutOnOneReadOnAnother(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testPutOnOneReadOnAnother(t) })
	t.Run("sockets", func(t *testing.T) { testPutOnOneReadOnAnother(t, gridmaptest.WithSockets()) })
}

func testPutOnOneReadOnAnother(t *testing.T, opts ...gridmaptest.Option) {
	c := gridmaptest.NewCluster(t, 3, opts...)
	ctx := testContext(t)
	if got := len(c.Members()); got != 3 {
		t.Fatalf("%d members", got)
	}
	owners := map[partition.MemberID]bool{}
	for _, p := range c.Member(1).Cluster().Partitions() {
		if p.Owner == "" || len(p.Backups) != 1 || p.Backups[0] == p.Owner {
			t.Fatalf("partition %d not owned and backed up: %+v", p.ID, p)
		}
		owners[p.Owner] = true
	}
	if len(owners) != 3 {
		t.Fatalf("partitions owned by %d members, want 3", len(owners))
	}
	put, err := gridmap.GetMap[string, int](c.Member(0), "scores")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := put.Put(ctx, fmt.Sprint("k", i), i); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range c.Members()[1:] {
		get, err := gridmap.GetMap[string, int](m, "scores")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			if v, err := get.Get(ctx, fmt.Sprint("k", i)); err != nil || v != i {
				t.Fatalf("member %s: k%d = %d, %v", m.ID(), i, v, err)
			}
		}
	}
}

// A killed member's partitions are served again from their backups, with every acknowledged
// write, and the table no longer names it.
func TestKillFailsOver(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3)
	ctx := testContext(t)
	m0, err := gridmap.GetMap[string, string](c.Member(0), "m")
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n {
		if err := m0.Put(ctx, fmt.Sprint("k", i), fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	victim := c.Member(2).ID()
	owned := 0
	for _, p := range c.Member(0).Cluster().Partitions() {
		if p.Owner == victim {
			owned++
		}
	}
	if owned == 0 {
		t.Fatal("the member to kill owns no partition: the test would prove nothing")
	}
	c.Kill(2)
	c.WaitSafe()
	if got := len(c.Members()); got != 2 {
		t.Fatalf("%d live members after a kill, want 2", got)
	}
	for _, p := range c.Member(1).Cluster().Partitions() {
		if p.Owner == victim || len(p.Backups) != 1 {
			t.Fatalf("partition %d after the kill: %+v", p.ID, p)
		}
	}
	m1, err := gridmap.GetMap[string, string](c.Member(1), "m")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if v, err := m1.Get(ctx, fmt.Sprint("k", i)); err != nil || v != fmt.Sprint("v", i) {
			t.Fatalf("k%d after failover: %q, %v", i, v, err)
		}
	}
	if size, err := m1.Size(ctx); err != nil || size != n {
		t.Fatalf("size after failover: %d, %v", size, err)
	}
}

// Options reach every member: backups, partitions, a map's store, a member's own setting; a
// member that joins takes its share, and one that leaves hands it off.
func TestOptionsJoinLeave(t *testing.T) {
	store := memstore.New()
	c := gridmaptest.NewCluster(t, 3,
		gridmaptest.WithBackups(2),
		gridmaptest.WithPartitionCount(31),
		gridmaptest.WithMap("stored", dmap.MapConfig{Store: store, Persistence: mapstore.Config{WriteDelay: time.Hour}}),
		gridmaptest.WithConfig(func(i int, cfg *gridmap.Config) { cfg.Name = fmt.Sprint("node-", i) }),
	)
	ctx := testContext(t)
	view := c.Member(0).Cluster()
	if view.PartitionCount() != 31 {
		t.Fatalf("%d partitions", view.PartitionCount())
	}
	for _, p := range view.Partitions() {
		if len(p.Backups) != 2 {
			t.Fatalf("partition %d has %d backups, want 2", p.ID, len(p.Backups))
		}
	}
	mp, err := gridmap.GetMap[string, string](c.Member(1), "stored")
	if err != nil {
		t.Fatal(err)
	}
	if err := mp.Put(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if store.Len() != 0 {
		t.Fatal("write-behind with an hour's delay stored at once: the map config did not reach the members")
	}
	if err := mp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if store.Len() != 1 {
		t.Fatalf("store holds %d entries after Flush, want 1", store.Len())
	}

	j := c.Join()
	if j != 3 || len(c.Members()) != 4 {
		t.Fatalf("joined as %d, %d live members", j, len(c.Members()))
	}
	if !slices.ContainsFunc(c.Member(0).Cluster().Partitions(), func(p gridmap.Partition) bool { return p.Owner == c.Member(j).ID() }) {
		t.Fatal("the joined member owns no partition")
	}
	left := c.Member(0).ID()
	c.Leave(0)
	for _, p := range c.Member(1).Cluster().Partitions() {
		if p.Owner == left || slices.Contains(p.Backups, left) {
			t.Fatalf("partition %d still on the member that left: %+v", p.ID, p)
		}
	}
	if v, err := mp.Get(ctx, "a"); err != nil || v != "b" {
		t.Fatalf("after join and leave: %q, %v", v, err)
	}
}

// t.Cleanup stops the members: after the subtest, their maps refuse work.
func TestCleanupStopsMembers(t *testing.T) {
	var m *gridmap.Member
	t.Run("cluster", func(t *testing.T) {
		c := gridmaptest.NewCluster(t, 1, gridmaptest.WithBackups(0))
		m = c.Member(0)
	})
	mp, err := gridmap.GetMap[string, int](m, "m")
	if err == nil {
		err = mp.Put(testContext(t), "k", 1)
	}
	if !errors.Is(err, gridmap.ErrClosed) && !errors.Is(err, dmap.ErrClosed) {
		t.Fatalf("a member of a finished test still works: %v", err)
	}
}

// In-memory clusters open no port: two of them, with the very same member addresses, run side
// by side without meeting (each has networks of its own).
func TestInMemoryClustersAreIsolated(t *testing.T) {
	a := gridmaptest.NewCluster(t, 2)
	b := gridmaptest.NewCluster(t, 2)
	if a.Member(0).GossipAddr() != b.Member(0).GossipAddr() {
		t.Fatalf("gossip addresses %s and %s: expected the same in-memory address", a.Member(0).GossipAddr(), b.Member(0).GossipAddr())
	}
	for _, c := range []*gridmaptest.Cluster{a, b} {
		if got := len(c.Member(0).Cluster().Members()); got != 2 {
			t.Fatalf("a cluster sees %d members, want its own 2", got)
		}
	}
	ctx := testContext(t)
	ma, err := gridmap.GetMap[string, string](a.Member(0), "m")
	if err != nil {
		t.Fatal(err)
	}
	if err := ma.Put(ctx, "k", "a"); err != nil {
		t.Fatal(err)
	}
	mb, err := gridmap.GetMap[string, string](b.Member(1), "m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Get(ctx, "k"); !errors.Is(err, dmap.ErrNotFound) {
		t.Fatalf("cluster b sees cluster a's entry: %v", err)
	}
}

// A partition isolating one member of three: the isolated owner stops accepting writes (its
// lease ends), the majority takes its partitions over with every acknowledged write, and once
// healed the member is back in a safe cluster that serves it all.
func TestPartitionAndHeal(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3)
	ctx := testContext(t)
	m0, err := gridmap.GetMap[string, int](c.Member(0), "m")
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := m0.Put(ctx, fmt.Sprint("k", i), i); err != nil {
			t.Fatal(err)
		}
	}
	isolated := c.Member(2)
	var owned string // a key the isolated member owns
	for i := range n {
		p, err := gridmap.PartitionOfKey(isolated.Cluster(), m0, fmt.Sprint("k", i))
		if err != nil {
			t.Fatal(err)
		}
		if p.Owner == isolated.ID() {
			owned = fmt.Sprint("k", i)
			break
		}
	}
	if owned == "" {
		t.Fatal("the member to isolate owns none of the keys: the test would prove nothing")
	}

	c.Partition([]int{2})
	m2, err := gridmap.GetMap[string, int](isolated, "m")
	if err != nil {
		t.Fatal(err)
	}
	// The minority stops accepting writes: within the lease (LocalTimings: 1s) and the
	// operation's own deadline, a write through it fails instead of forking the data.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = m2.Put(wctx, owned, -1)
	cancel()
	if err == nil {
		t.Fatal("the isolated member accepted a write")
	}
	// The majority reassigns the isolated member's partitions and serves every write.
	deadline := time.Now().Add(time.Minute)
	for {
		moved := true
		for _, p := range c.Member(0).Cluster().Partitions() {
			if p.Owner == isolated.ID() {
				moved = false
				break
			}
		}
		if moved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the majority never took the isolated member's partitions")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range n {
		if v, err := m0.Get(ctx, fmt.Sprint("k", i)); err != nil || v != i {
			t.Fatalf("k%d on the majority: %d, %v", i, v, err)
		}
	}

	c.Heal()
	c.WaitSafe()
	for i := range n {
		if v, err := m2.Get(ctx, fmt.Sprint("k", i)); err != nil || v != i {
			t.Fatalf("k%d through the healed member: %d, %v", i, v, err)
		}
	}
}
