package engine

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
	"github.com/gridmap/gridmap/partition"
)

// replicaContents reads map name's entries of partition p straight from member m's record
// store, as key -> value.
func replicaContents(c *cluster, m partition.MemberID, p partition.ID, name string) map[string]string {
	pt := c.Svcs[m].parts[p]
	pt.mu.RLock()
	defer pt.mu.RUnlock()
	out := map[string]string{}
	for r := range pt.rs.all(name) {
		out[r.key] = string(r.value)
	}
	return out
}

// waitReplicasAgree waits until every replica of p holds the same entries of map name, and
// returns them; it fails the test with the differences when they do not agree in time.
func waitReplicasAgree(t *testing.T, c *cluster, p partition.ID, name string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tab := c.Coord.Table
		reps := tab.Partitions[p].Replicas
		first := replicaContents(c, reps[0], p, name)
		agree := len(tab.Partitions[p].Pending) == 0
		var diff string
		for _, r := range reps[1:] {
			got := replicaContents(c, r, p, name)
			if !maps.Equal(first, got) {
				agree = false
				for k, v := range first {
					if got[k] != v {
						diff += fmt.Sprintf("\n  key %q: owner %s has %q, replica %s has %q", k, reps[0], v, r, got[k])
					}
				}
				for k, v := range got {
					if _, ok := first[k]; !ok {
						diff += fmt.Sprintf("\n  key %q: owner %s has none, replica %s has %q", k, reps[0], r, v)
					}
				}
			}
		}
		if agree {
			return first
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas %v of partition %d still differ:%s", reps, p, diff)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With two backups, an owner that dies in the middle of a write may have sent it to one backup
// and not the other. The write was never acknowledged, so it may be lost, but the surviving
// replicas must end up identical, and a later write to the same key must reach all of them.
func TestOrphanWriteDoesNotLeaveReplicasDiverged(t *testing.T) {
	for _, tc := range []struct {
		name string
		// lost is the index (1 or 2) in the replica list of the backup that misses the write;
		// the planner promotes the first backup (index 1).
		lost int
	}{
		{"promoted backup lacks the write", 1},
		{"promoted backup holds the write", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, 2, func(cfg *Config) { cfg.OperationTimeout = 2 * time.Second })
			ctx := context.Background()
			const name = "orphan"
			probe := mustMap[string, string](t, c.Svc(0), name)
			key := "k"
			kb, p, _ := probe.encodeKey(key)
			reps := c.Coord.Table.Partitions[p].Replicas
			if len(reps) != 3 {
				t.Fatalf("partition %d has replicas %v, want 3", p, reps)
			}
			owner, lossy, other := reps[0], reps[tc.lost], reps[3-tc.lost]
			om := mustMap[string, string](t, c.Svcs[owner], name)
			if err := om.Put(ctx, key, "v1"); err != nil {
				t.Fatal(err)
			}
			if err := om.Put(ctx, "other", "o1"); err != nil { // same partition or not: context
				t.Fatal(err)
			}

			// The owner's next backup message reaches `other` but never `lossy`.
			c.Net.SetDrop(func(from, to string, mt transport.MsgType) bool {
				return from == string(owner) && to == string(lossy) && mt == msgBackup
			})
			done := make(chan error, 1)
			go func() { done <- om.Put(ctx, key, "orphan") }()
			deadline := time.Now().Add(5 * time.Second)
			for {
				pt := c.Svcs[other].parts[p]
				pt.mu.RLock()
				got := pt.rs.get(name, string(kb), 0)
				pt.mu.RUnlock()
				if got.ok && string(got.value) == string(mustEncode(t, "orphan")) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the orphan write never reached the backup that should get it")
				}
				time.Sleep(time.Millisecond)
			}
			c.Kill(owner)
			c.Net.SetDrop(nil)
			if err := <-done; err == nil {
				t.Fatal("the write the owner died in was acknowledged")
			}
			c.WaitStable()
			if got := c.Coord.Table.Partitions[p].Replicas; got[0] != reps[1] {
				t.Fatalf("replicas after failover %v: expected %s promoted", got, reps[1])
			}

			// Whatever became of the orphan, the survivors agree.
			before := waitReplicasAgree(t, c, p, name)
			t.Logf("after failover the replicas agree on %q = %q", key, before[string(kb)])

			// A new write through the new owner reaches every replica.
			nm := mustMap[string, string](t, c.Svcs[reps[1]], name)
			if err := nm.Put(ctx, key, "v3"); err != nil {
				t.Fatal(err)
			}
			after := waitReplicasAgree(t, c, p, name)
			if got := after[string(kb)]; got != string(mustEncode(t, "v3")) {
				t.Fatalf("after a new write the replicas hold %q, want v3", got)
			}
			if v, err := nm.Get(ctx, key); err != nil || v != "v3" {
				t.Fatalf("Get = %q, %v; want v3", v, err)
			}
		})
	}
}

// A backup being resynced after a failover keeps serving from its own store and applies the new
// owner's writes to it: if the new owner dies before the copy completes, the backup that is
// promoted holds every acknowledged write.
func TestResyncSurvivesNewOwnersDeath(t *testing.T) {
	c := newCluster(t, 3, 2, func(cfg *Config) { cfg.OperationTimeout = 2 * time.Second })
	ctx := context.Background()
	const name = "orphan"
	probe := mustMap[string, string](t, c.Svc(0), name)
	key := "k"
	_, p, _ := probe.encodeKey(key)
	reps := c.Coord.Table.Partitions[p].Replicas
	owner, heir, last := reps[0], reps[1], reps[2]
	om := mustMap[string, string](t, c.Svcs[owner], name)
	if err := om.Put(ctx, key, "v1"); err != nil {
		t.Fatal(err)
	}
	// Another acknowledged entry of the same partition, which the resync's copy would carry.
	sibling := ""
	for i := 0; sibling == ""; i++ {
		if _, q, _ := probe.encodeKey(fmt.Sprint("s", i)); q == p {
			sibling = fmt.Sprint("s", i)
		}
	}
	if err := om.Put(ctx, sibling, "kept"); err != nil {
		t.Fatal(err)
	}
	// The orphan reaches `last` only; then the promoted heir's copy to `last` never gets
	// beyond its beginning.
	c.Net.SetDrop(func(from, to string, mt transport.MsgType) bool {
		return (from == string(owner) && to == string(heir) && mt == msgBackup) ||
			(from == string(heir) && to == string(last) && mt == msgSyncChunk)
	})
	done := make(chan error, 1)
	go func() { done <- om.Put(ctx, key, "orphan") }()
	enginetest.Eventually(t, 5*time.Second, "the orphan write on the last backup", func() bool {
		return replicaContents(c, last, p, name)[key] == "orphan"
	})
	c.Kill(owner)
	<-done
	c.WaitStable()
	hm := mustMap[string, string](t, c.Svcs[heir], name)
	if err := hm.Put(ctx, key, "v3"); err != nil {
		t.Fatal(err)
	}
	if got := replicaContents(c, last, p, name)[key]; got != "v3" {
		t.Fatalf("backup under resync holds %q, want the acknowledged v3", got)
	}
	c.Kill(heir)
	c.Net.SetDrop(nil)
	c.WaitStable()
	lm := mustMap[string, string](t, c.Svcs[last], name)
	if v, err := lm.Get(ctx, key); err != nil || v != "v3" {
		t.Fatalf("after the new owner's death Get = %q, %v; want v3", v, err)
	}
	if v, err := lm.Get(ctx, sibling); err != nil || v != "kept" {
		t.Fatalf("after the new owner's death Get(%s) = %q, %v; want kept", sibling, v, err)
	}
}

// The resync also replaces a backup's write-behind queue: an orphan write queued on a backup
// must not be written to the store by that backup once it owns the partition, while the map
// itself holds another value.
func TestResyncReplacesWriteBehindQueue(t *testing.T) {
	st := memstore.New()
	c := newCluster(t, 3, 2, func(cfg *Config) {
		withStore("wb", st, mapstore.Config{WriteDelay: time.Hour})(cfg)
		cfg.OperationTimeout = 2 * time.Second
	})
	ctx := context.Background()
	probe := mustMap[string, string](t, c.Svc(0), "wb")
	key := "k"
	_, p, _ := probe.encodeKey(key)
	reps := c.Coord.Table.Partitions[p].Replicas
	owner, heir, last := reps[0], reps[1], reps[2]
	om := mustMap[string, string](t, c.Svcs[owner], "wb")
	if err := om.Put(ctx, key, "v1"); err != nil {
		t.Fatal(err)
	}
	c.Net.SetDrop(func(from, to string, mt transport.MsgType) bool {
		return from == string(owner) && to == string(heir) && mt == msgBackup
	})
	done := make(chan error, 1)
	go func() { done <- om.Put(ctx, key, "orphan") }()
	enginetest.Eventually(t, 5*time.Second, "the orphan write on the last backup", func() bool { return replicaContents(c, last, p, "wb")[key] == "orphan" })
	c.Kill(owner)
	c.Net.SetDrop(nil)
	<-done
	c.WaitStable()
	waitReplicasAgree(t, c, p, "wb")
	queued := func(m partition.MemberID) string {
		pt := c.Svcs[m].parts[p]
		pt.mu.RLock()
		defer pt.mu.RUnlock()
		q := pt.queues["wb"]
		if q == nil {
			return ""
		}
		out := ""
		for _, e := range q.Snapshot(time.Now()).Entries {
			out += fmt.Sprintf("%s=%s@%d ", e.Key, e.Value, e.Seq)
		}
		return out
	}
	enginetest.Eventually(t, 5*time.Second, "the heir's write-behind queue to match the last backup's", func() bool { return queued(heir) == queued(last) })
	c.Kill(heir)
	c.WaitStable()
	lm := mustMap[string, string](t, c.Svcs[last], "wb")
	v, err := lm.Get(ctx, key)
	if err != nil || v != "v1" {
		t.Fatalf("Get = %q, %v; want v1", v, err)
	}
	if err := lm.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	storeHas(t, st, map[string][]byte{key: []byte(v)})
}

// Under load, with two backups, owners die one after the other: every acknowledged write
// survives and the replicas of every partition end up identical.
func TestFailoversUnderLoadKeepReplicasIdentical(t *testing.T) {
	c := newCluster(t, 5, 2, nil)
	ctx := context.Background()
	w, stop := runWriters(ctx, func(i int) *tmap[string, int] { return mustMap[string, int](t, c.Svc(2+i%3), "fl") }, 12)
	waitWrites(t, w, 500)
	c.Kill(c.Active[0])
	waitWrites(t, w, 1500)
	c.Kill(c.Active[0])
	c.WaitStable()
	waitWrites(t, w, 2500)
	stop()
	w.verify(t, ctx, mustMap[string, int](t, c.Svc(0), "fl"))
	for p := range c.Coord.Table.Partitions {
		waitReplicasAgree(t, c, partition.ID(p), "fl")
	}
}
