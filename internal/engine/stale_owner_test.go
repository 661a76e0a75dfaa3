package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// A member stopped (SIGSTOP) for longer than failure detection resumes with the table it had,
// and then applies the tables committed meanwhile one by one while raft catches it up: for a
// while it sees itself as the owner of partitions given to others long ago, with copies to
// send and backups to probe. Nothing it sends from such a table may reach a replica's data. In
// the Jepsen run of issue 21 (seed 1796379107156928397) such a member sent its stale copy of a
// partition to the member its old table named pending; that member was by then a backup under
// the new owner and swapped the stale copy in, dropping every write made during the pause, and
// once it was promoted they were gone (137 acknowledged set adds, silently).
//
// Here: partition p has replicas [A Y Z]; A stops; the coordinator commits a table asking A
// for a copy to X (A cannot act on it), then declares A dead: Y owns p, X gets its copy from Y.
// Writes to p are acknowledged by Y, Z, X. A resumes seeing the intermediate table (A owns p, X
// pending) and tries the copy, a takeover (its probes mark replicas unsure) and a write. None
// of it may change Y, Z or X: once Y and Z die, X still serves every acknowledged write.
func TestStaleOwnerCannotOverwriteReplicas(t *testing.T) {
	for _, tc := range []struct {
		name string
		// lease: A's lease is valid (it was stopped just after checking it): the replicas'
		// check must refuse what it sends. Without it (A is catching up), X lags behind too and
		// sees the same old table, so that only A's own check (mayPush) protects X.
		lease bool
	}{
		{"stopped after its lease check", true},
		{"catching up without a lease, receiver lagging too", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const name = "set"
			c, p, keys, reps, x := onePartition(t, 4, 2, name)
			ctx := context.Background()
			t0 := c.Coord.Table
			a, y, z := reps[0], reps[1], reps[2]
			want := map[string]string{}
			am := mustMap[string, string](t, c.Svcs[a], name)
			for _, k := range keys[:5] {
				if err := am.Put(ctx, k, "before"); err != nil {
					t.Fatal(err)
				}
				want[k] = "before"
			}

			// A stops: it sees nothing and nobody reaches it.
			c.Nodes[a].Freeze(t0)
			c.Net.SetDown(string(a), true)
			stale := c.Coord.Commit(func(t *partition.Table) {
				t.Partitions[p].Pending = append(t.Partitions[p].Pending, partition.Pending{Member: x})
			})
			c.Active = slices.DeleteFunc(c.Active, func(m partition.MemberID) bool { return m == a })
			c.Replan(nil)
			c.WaitStable()
			if got := c.Coord.Table.Partitions[p].Replicas; got[0] != y || !slices.Contains(got, x) {
				t.Fatalf("after A's death partition %d has replicas %v, want %s owner and %s a backup", p, got, y, x)
			}
			ym := mustMap[string, string](t, c.Svcs[y], name)
			for _, k := range keys[5:] {
				if err := ym.Put(ctx, k, "during"); err != nil {
					t.Fatal(err)
				}
				want[k] = "during"
			}

			// A resumes in the intermediate table.
			c.Coord.Mu.Lock()
			c.Coord.NoLease[a] = !tc.lease
			c.Coord.Mu.Unlock()
			c.Net.SetDown(string(a), false)
			c.Nodes[a].Freeze(stale)
			if !tc.lease {
				c.Nodes[x].Freeze(stale)
			}
			sa := c.Svcs[a]
			if err := sa.copyPartition(ctx, p, x); err == nil {
				t.Errorf("the stale owner's copy of partition %d to %s succeeded", p, x)
			}
			pt := sa.parts[p]
			tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			pt.writeMu.Lock()
			_, ok := sa.takeOver(tctx, pt)
			pt.writeMu.Unlock()
			cancel()
			if ok {
				t.Errorf("the stale owner took partition %d over", p)
			}
			wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			if err := am.Put(wctx, keys[0], "stale"); err == nil {
				t.Errorf("the stale owner acknowledged a write")
			}
			cancel()
			c.Nodes[x].Thaw()

			for _, m := range []partition.MemberID{y, z, x} {
				got := replicaContents(c, m, p, name)
				for _, k := range keys {
					if got[k] != want[k] {
						t.Errorf("replica %s of partition %d: %s = %q, want %q", m, p, k, got[k], want[k])
					}
				}
				q := c.Svcs[m].parts[p]
				q.mu.RLock()
				unsure := q.unsure
				q.mu.RUnlock()
				if unsure {
					t.Errorf("replica %s of partition %d marked itself unsure at the stale owner's probe", m, p)
				}
			}

			// A catches up; then Y and Z die and X alone serves the partition.
			c.Nodes[a].Thaw()
			c.Coord.Mu.Lock()
			c.Coord.NoLease[a] = false
			c.Coord.Mu.Unlock()
			c.Kill(y, z)
			c.WaitStable()
			xm := mustMap[string, string](t, c.Svcs[x], name)
			for _, k := range keys {
				if v, err := xm.Get(ctx, k); err != nil || v != want[k] {
					t.Errorf("after the owner and a backup died: Get(%s) = %q, %v; want %q", k, v, err, want[k])
				}
			}
		})
	}
}
