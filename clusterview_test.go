package gridmap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/partition"
)

// waitSafe waits, with a deadline, until the cluster is safe as m sees it.
func waitSafe(t *testing.T, m *Member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m.Cluster().WaitSafe(ctx); err != nil {
		t.Fatalf("%s: %v", m.cfg.Name, err)
	}
}

// checkSafeTable checks what Safe promises on m's table: every partition has min(BackupCount+1,
// len(live)) replicas, all among live, no copy pending, none lost.
func checkSafeTable(t *testing.T, m *Member, live []*Member) {
	t.Helper()
	ids := map[partition.MemberID]bool{}
	for _, l := range live {
		ids[l.id] = true
	}
	want := min(m.cfg.backups()+1, len(live))
	tab := m.node.Table()
	for p, a := range tab.Partitions {
		if len(a.Replicas) != want || len(a.Pending) > 0 || a.Lost {
			t.Fatalf("epoch %d, partition %d: %+v, want %d replicas, nothing pending", tab.Epoch, p, a, want)
		}
		for _, r := range a.Replicas {
			if !ids[r] {
				t.Fatalf("epoch %d, partition %d: replica %s is not a live member", tab.Epoch, p, r)
			}
		}
	}
}

// Members that start together are safe once every one of them holds its share, and the view
// shows them all, with one raft leader.
func TestClusterWaitSafeAfterStart(t *testing.T) {
	members := startMembers(t, 3, nil)
	for _, m := range members {
		waitSafe(t, m)
		checkSafeTable(t, m, members)
		if !m.Cluster().Safe() {
			t.Fatalf("%s: Safe is false after WaitSafe returned", m.cfg.Name)
		}
	}
	c := members[0].Cluster()
	view := c.Members()
	if len(view) != 3 {
		t.Fatalf("members: %+v", view)
	}
	for i, mi := range view {
		if !mi.Alive || mi.Leaving || mi.Addr == "" || mi.GossipAddr == "" {
			t.Fatalf("member %d: %+v", i, mi)
		}
		if mi.Local != (mi.ID == members[0].ID()) {
			t.Fatalf("member %d: Local %v, local member is %s", i, mi.Local, members[0].ID())
		}
	}
	leader, ok := c.Leader()
	if !ok || !leader.Voter {
		t.Fatalf("leader %+v, %v", leader, ok)
	}
	if vs := c.Voters(); len(vs) == 0 || !slices.ContainsFunc(vs, func(v MemberInfo) bool { return v.ID == leader.ID }) {
		t.Fatalf("voters %+v do not include the leader %s", vs, leader.ID)
	}
	if c.PartitionCount() != 71 || len(c.Partitions()) != 71 {
		t.Fatalf("partition count %d, %d partitions", c.PartitionCount(), len(c.Partitions()))
	}
	if lost := c.LostPartitions(); len(lost) != 0 {
		t.Fatalf("lost partitions after start: %v", lost)
	}
	if err := c.ResetLostPartitions(context.Background()); err != nil {
		t.Fatalf("resetting no lost partition: %v", err)
	}
}

// The owner of a key in the view is the member that holds the key locally.
func TestClusterKeyOwner(t *testing.T) {
	members := startCluster(t, 3, nil)
	ctx := context.Background()
	mp := getMap[string, string](t, members[0], "owners")
	byID := map[partition.MemberID]*Member{}
	for _, m := range members {
		byID[m.ID()] = m
	}
	const n = 60
	for i := range n {
		if err := mp.Put(ctx, fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	local := map[partition.MemberID]map[string]bool{} // member ID -> keys it owns locally
	for _, m := range members {
		local[m.ID()] = map[string]bool{}
		for k, err := range getMap[string, string](t, m, "owners").LocalKeys() {
			if err != nil {
				t.Fatal(err)
			}
			local[m.ID()][k] = true
		}
	}
	owners := map[partition.MemberID]bool{}
	for i := range n {
		k := fmt.Sprintf("k%d", i)
		p, err := PartitionOfKey(members[1].Cluster(), mp, k)
		if err != nil {
			t.Fatal(err)
		}
		if byID[p.Owner] == nil || len(p.Backups) != 1 || p.Backups[0] == p.Owner || p.Lost || len(p.Migrating) != 0 {
			t.Fatalf("key %s: %+v", k, p)
		}
		for id, keys := range local {
			if keys[k] != (id == p.Owner) {
				t.Fatalf("key %s: owner per view %s, held locally by %s: %v", k, p.Owner, id, keys[k])
			}
		}
		owners[p.Owner] = true
	}
	if len(owners) != 3 {
		t.Fatalf("%d keys are owned by only %d members", n, len(owners))
	}
	if p := members[0].Cluster().Partition(71); p.Owner != "" {
		t.Fatalf("partition out of range: %+v", p)
	}
}

// After a member crashes the cluster is not safe until its partitions are served and backed up
// again by the others; WaitSafe returns then. Writers keep going throughout.
func TestClusterSafeAfterKill(t *testing.T) {
	members := startCluster(t, 3, nil)
	w := startWriters(t, 4, members[:2], "safe-kill")
	w.waitOps(t, 200)
	c := members[0].Cluster()
	if !c.Safe() {
		t.Fatal("not safe before the kill")
	}
	var migrations atomic.Int64 // partition events on members[0], through the cluster view
	h, err := c.AddPartitionListener(t.Context(), func(ev dmap.PartitionEvent) {
		if ev.Kind == dmap.MigrationFinished {
			migrations.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	dead := members[2]
	dead.kill()
	if err := dead.Cluster().WaitSafe(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitSafe on a killed member: %v, want ErrClosed", err)
	}
	// Until the killed member is declared dead it counts as live; from then on Safe must stay
	// false for as long as the table still gives it a partition.
	deadline := time.Now().Add(30 * time.Second)
	for !slices.ContainsFunc(c.Members(), func(mi MemberInfo) bool { return mi.ID == dead.ID() && !mi.Alive }) {
		if time.Now().After(deadline) {
			t.Fatal("killed member not declared dead within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sawUnsafe := false
	for {
		tab := members[0].node.Table()
		if len(tab.Held(dead.id)) == 0 && !slices.Contains(tab.Members(), dead.id) {
			break
		}
		if c.safe(tab) {
			t.Fatalf("safe at epoch %d although the dead member still holds partitions", tab.Epoch)
		}
		sawUnsafe = true
		if time.Now().After(deadline) {
			t.Fatal("dead member still in the table after 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !sawUnsafe {
		t.Log("the table dropped the dead member before this member declared it dead")
	}
	live := members[:2]
	for _, m := range live {
		waitSafe(t, m)
		checkSafeTable(t, m, live)
	}
	for _, mi := range c.Members() {
		if mi.ID == dead.ID() && mi.Alive {
			t.Fatalf("killed member still alive in the view: %+v", mi)
		}
	}
	// members[0] restores some of the backups the dead member held, or receives them.
	deadline = time.Now().Add(30 * time.Second)
	for migrations.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no MigrationFinished event on a survivor")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.waitOps(t, 600)
	w.finish(t, getMap[string, int](t, members[0], "safe-kill"))
}

// WaitSafe returns the context's error when the cluster does not become safe in time: here
// never, as two of three raft voters are gone and no table can be committed.
func TestClusterWaitSafeContext(t *testing.T) {
	members := startCluster(t, 3, nil)
	members[1].kill()
	members[2].kill()
	c := members[0].Cluster()
	deadline := time.Now().Add(30 * time.Second)
	for c.Safe() {
		if time.Now().After(deadline) {
			t.Fatal("still safe 30s after the majority was killed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.WaitSafe(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSafe: %v, want a deadline error", err)
	}
}
