package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// A copy belongs to the stint of its target as pending that it began in. Under load the
// coordinator drops a pending member (reported unreachable: suspects get no copies) and adds it
// again a second later, while the owner's copy to it, begun before, runs on. Meanwhile the
// member, pending in neither table, freed what it had received, and the owner's writes of that
// interval went to the backups only. The owner's report of the old copy must not complete the
// new stint: the member would join the replicas (here as the owner, a hand-off) with nothing,
// and serve the partition without its acknowledged writes. The Jepsen runs of issue 21 (seeds
// 1796397358043979648 and 1796397985861674509) lost whole partitions' set adds silently so.
//
// Here: p has replicas [A B]; A's view is frozen (its driver starts no copy by itself). The
// coordinator makes X pending as p's next owner; A copies p to X (stint 1); the coordinator
// drops X, which frees p; A acknowledges more writes (to B); the coordinator makes X pending
// again (stint 2); A reports the copy of stint 1. X must not become a replica. Once A's view
// follows the table again, its own copy hands p over, and every replica holds every write.
func TestCopyOfAnEarlierPendingStintDoesNotComplete(t *testing.T) {
	const name = "set"
	c, p, keys, reps, x := onePartition(t, 3, 1, name)
	ctx := context.Background()
	t0 := c.Coord.Table
	a := reps[0]
	c.Nodes[a].Freeze(t0)
	am := mustMap[string, string](t, c.Svcs[a], name)
	want := map[string]string{}
	for _, k := range keys[:10] {
		if err := am.Put(ctx, k, "before"); err != nil {
			t.Fatal(err)
		}
		want[k] = "before"
	}

	// Stint 1: X pending as the next owner; A copies p to it.
	t1 := c.Coord.Commit(func(t *partition.Table) {
		t.Partitions[p].Pending = []partition.Pending{{Member: x, AsOwner: true, Since: t.Epoch}}
	})
	sa := c.Svcs[a]
	pt := sa.parts[p]
	pt.writeMu.Lock()
	if err := sa.sendCopy(ctx, pt, x, t1.Epoch); err != nil { // releases writeMu
		t.Fatal(err)
	}
	if got := replicaContents(c, x, p, name); len(got) != 10 {
		t.Fatalf("X holds %d entries of partition %d after the copy, want 10", len(got), p)
	}

	// X dropped: it frees p. A acknowledges more writes, replicated to B.
	c.Coord.Commit(func(t *partition.Table) { t.Partitions[p].Pending = nil })
	deadline := time.Now().Add(10 * time.Second)
	for len(replicaContents(c, x, p, name)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("X still holds partition %d after the table dropped it", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, k := range keys[10:] {
		if err := am.Put(ctx, k, "during"); err != nil {
			t.Fatal(err)
		}
		want[k] = "during"
	}

	// Stint 2, and the report of stint 1's copy.
	c.Coord.Commit(func(t *partition.Table) {
		t.Partitions[p].Pending = []partition.Pending{{Member: x, AsOwner: true, Since: t.Epoch}}
	})
	if err := c.Nodes[a].ReportSynced(ctx, p, x, t1.Epoch); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		tab := c.Coord.Table
		for _, m := range tab.Partitions[p].Replicas {
			got := replicaContents(c, m, p, name)
			for _, k := range keys {
				if got[k] != want[k] {
					t.Errorf("%s: replica %s of partition %d (replicas %v): %s = %q, want %q", when, m, p, tab.Partitions[p].Replicas, k, got[k], want[k])
				}
			}
		}
	}
	check("after the report of the earlier stint's copy")
	if slices.Contains(c.Coord.Table.Partitions[p].Replicas, x) {
		t.Fatalf("the copy of an earlier stint made %s a replica of partition %d: %v", x, p, c.Coord.Table.Partitions[p].Replicas)
	}

	// A follows the table again: its driver copies p to X within stint 2 and hands it over.
	c.Nodes[a].Thaw()
	c.WaitStable()
	check("after the hand-off")
	xm := mustMap[string, string](t, c.Svcs[x], name)
	for _, k := range keys {
		if v, err := xm.Get(ctx, k); err != nil || v != want[k] {
			t.Errorf("Get(%s) = %q, %v; want %q", k, v, err, want[k])
		}
	}
}

// onePartition starts a cluster of n members with the given backups and short operation and
// backup-ack timeouts (for tests of refused or unanswered writes), and returns 20 keys of map
// name in one partition p, p's replicas (checked to be backups+1) and a member x that holds no
// copy of p.
func onePartition(t *testing.T, n, backups int, name string) (c *cluster, p partition.ID, keys []string, reps []partition.MemberID, x partition.MemberID) {
	t.Helper()
	c = newCluster(t, n, backups, func(cfg *Config) {
		cfg.OperationTimeout = 2 * time.Second
		cfg.BackupAckTimeout = 100 * time.Millisecond
	})
	probe := mustMap[string, string](t, c.Svc(0), name)
	keys = keysOwnedBy(t, c, probe, c.Svc(0).self, 20, true)
	p, _ = probe.Partition(keys[0])
	reps = c.Coord.Table.Partitions[p].Replicas
	if len(reps) != backups+1 {
		t.Fatalf("partition %d has replicas %v, want %d", p, reps, backups+1)
	}
	i := slices.IndexFunc(c.Active, func(m partition.MemberID) bool { return !slices.Contains(reps, m) })
	if i < 0 {
		t.Fatalf("every member holds partition %d", p)
	}
	return c, p, keys, reps, c.Active[i]
}
