package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// keyOn returns a key of map m whose partition has exactly the replicas owner and backup, and
// that partition.
func keyOn[V any](t *testing.T, c *cluster, m *tmap[string, V], owner, backup partition.MemberID) (string, partition.ID) {
	t.Helper()
	for i := range 10000 {
		k := fmt.Sprint("k", i)
		_, p, err := m.encodeKey(k)
		if err != nil {
			t.Fatal(err)
		}
		tab, _ := c.Coord.Watch()
		reps := tab.Partitions[p].Replicas
		if len(reps) == 2 && reps[0] == owner && reps[1] == backup {
			return k, p
		}
	}
	t.Fatalf("no partition with replicas [%s %s]", owner, backup)
	return "", 0
}

// partitionOwnedBy returns a partition that owner owns in the current table.
func partitionOwnedBy(t *testing.T, c *cluster, owner partition.MemberID) partition.ID {
	t.Helper()
	tab, _ := c.Coord.Watch()
	for p := range partition.ID(len(tab.Partitions)) {
		if tab.Owner(p) == owner {
			return p
		}
	}
	t.Fatalf("%s owns no partition", owner)
	return 0
}

// hangBackups makes the backups owner sends to backup go unanswered.
func hangBackups(c *cluster, owner, backup partition.MemberID) {
	c.Net.SetHang(func(from, to string, mt transport.MsgType) bool {
		return from == string(owner) && to == string(backup) && mt == msgBackup
	})
}

// writeMuFree reports whether nobody holds p's write lock.
func writeMuFree(pt *part) bool {
	if !pt.writeMu.TryLock() {
		return false
	}
	pt.writeMu.Unlock()
	return true
}

// A remote caller's deadline travels with its write: when the owner's backup never answers,
// the caller gets ErrTimeout at its deadline (not after the owner's own timeouts), and the owner
// stops waiting then too, releasing the partition. Both owner paths: the one served without
// blocking, and the ordinary one (taken when the partition must be taken over first).
func TestRemoteWriteHonoursDeadline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		takeOver bool // the owner must take the partition over: the ordinary path
	}{{"ordinary path", true}, {"inline path", false}} {
		t.Run(tc.name, func(t *testing.T) {
			// A BackupAckTimeout beyond the test: only the write's deadline can end the wait.
			c := newCluster(t, 3, 1, func(cfg *Config) { cfg.BackupAckTimeout = time.Minute })
			caller, owner, backup := c.Active[0], c.Active[1], c.Active[2]
			const name = "deadline"
			m := mustMap[string, string](t, c.Svcs[caller], name)
			key, p := keyOn(t, c, m, owner, backup)
			if err := m.Put(context.Background(), key, "v0"); err != nil {
				t.Fatal(err)
			}
			if tc.takeOver {
				c.Svcs[owner].parts[p].ownEpoch.Store(0)
			}
			hangBackups(c, owner, backup)

			const timeout = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			err := m.Put(ctx, key, "v")
			took := time.Since(start)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("Put = %v, want ErrTimeout", err)
			}
			t.Logf("Put returned after %v: %v", took, err)
			if took > timeout+time.Second {
				t.Fatalf("Put with a %v deadline returned after %v", timeout, took)
			}
			// The owner gave up at the deadline as well: it no longer holds the partition's
			// writers.
			pt := c.Svcs[owner].parts[p]
			enginetest.Eventually(t, 2*time.Second, "the owner to release the partition's write lock", func() bool { return writeMuFree(pt) })
			if n := c.Coord.ReportsOf(backup); n != 0 {
				t.Fatalf("the backup was reported unreachable %d times for a deadline that was the caller's", n)
			}

			// Once the backup answers again, the partition is written as before, and the backup,
			// which may have missed the timed-out write, ends up like its owner.
			c.Net.SetHang(nil)
			if err := m.Put(context.Background(), key, "w"); err != nil {
				t.Fatal(err)
			}
			if got := waitReplicasAgree(t, c, p, name)[key]; got != string(mustEncode(t, "w")) {
				t.Fatalf("replicas hold %q, want w", got)
			}
		})
	}
}

// A backup that stops answering (or whose connection fails) is dropped from the writes' wait
// after BackupAckTimeout: the owner reports it, the coordinator takes it out of the backups,
// and the writers, who counted on it, complete without it.
func TestUnansweringBackupIsReportedAndDropped(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(c *cluster, owner, backup partition.MemberID)
	}{
		{"never answers", hangBackups},
		{"connection fails", func(c *cluster, owner, backup partition.MemberID) {
			c.Net.SetDrop(func(from, to string, mt transport.MsgType) bool {
				return from == string(owner) && to == string(backup) && mt == msgBackup
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const ackTimeout = 100 * time.Millisecond
			c := newCluster(t, 3, 1, func(cfg *Config) { cfg.BackupAckTimeout = ackTimeout })
			c.Coord.Mu.Lock()
			c.Coord.Demote = true
			c.Coord.Mu.Unlock()
			caller, owner, backup := c.Active[0], c.Active[1], c.Active[2]
			const name = "drop"
			maps := []*tmap[string, string]{mustMap[string, string](t, c.Svcs[caller], name), mustMap[string, string](t, c.Svcs[owner], name)}
			key, p := keyOn(t, c, maps[0], owner, backup)
			tc.fail(c, owner, backup)

			// Remote and local writers of the partition, several at once: none waits much longer
			// than BackupAckTimeout plus the table commit, however many queue.
			var mu sync.Mutex
			var worst time.Duration
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := range 5 {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						start := time.Now()
						err := maps[w%2].Put(ctx, key, fmt.Sprint(w, "-", i))
						took := time.Since(start)
						cancel()
						if err != nil {
							t.Errorf("writer %d: %v", w, err)
							return
						}
						mu.Lock()
						worst = max(worst, took)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			t.Logf("slowest write: %v (BackupAckTimeout %v)", worst, ackTimeout)
			if worst > 2*time.Second {
				t.Fatalf("a write waited %v for a backup that does not answer", worst)
			}
			if c.Coord.ReportsOf(backup) == 0 {
				t.Fatal("the unanswering backup was never reported")
			}
			if tab, _ := c.Coord.Watch(); tab.IsReplica(p, backup) {
				t.Fatalf("%s still a replica of partition %d", backup, p)
			}
			if v, err := maps[0].Get(context.Background(), key); err != nil || v == "" {
				t.Fatalf("Get = %q, %v", v, err)
			}
		})
	}
}

// A write whose deadline passed while it queued for the partition's write lock (behind a write
// waiting for a backup that does not answer) is refused with ErrTimeout, not applied late.
func TestExpiredQueuedWriteNotApplied(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *Config) { cfg.BackupAckTimeout = time.Minute })
	caller, owner, backup := c.Active[0], c.Active[1], c.Active[2]
	const name = "queued"
	cm := mustMap[string, string](t, c.Svcs[caller], name)
	om := mustMap[string, string](t, c.Svcs[owner], name)
	key, p := keyOn(t, c, cm, owner, backup)
	if err := cm.Put(context.Background(), key, "v0"); err != nil {
		t.Fatal(err)
	}
	hangBackups(c, owner, backup)

	// A, the owner's own write, holds the partition until its deadline.
	errA := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		errA <- om.Put(ctx, key, "A")
	}()
	enginetest.Eventually(t, 5*time.Second, "the owner's copy to hold A", func() bool { return replicaContents(c, owner, p, name)[key] == string(mustEncode(t, "A")) })

	// B, a remote write, queues behind A, and its deadline passes there.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := cm.Put(ctx, key, "B"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("queued write: %v, want ErrTimeout", err)
	}
	if err := <-errA; !errors.Is(err, ErrTimeout) {
		t.Fatalf("write waiting for the backup: %v, want ErrTimeout", err)
	}
	c.Net.SetHang(nil)
	// Once every handler has returned (B's among them), B is nowhere.
	enginetest.Eventually(t, 5*time.Second, "the owner's handlers to return", func() bool {
		return c.Net.Serving() == 0 && writeMuFree(c.Svcs[owner].parts[p])
	})
	if got := waitReplicasAgree(t, c, p, name)[key]; got != string(mustEncode(t, "A")) {
		t.Fatalf("replicas hold %q after the queued write expired, want A", got)
	}
	if v, err := cm.Get(context.Background(), key); err != nil || v != "A" {
		t.Fatalf("Get = %q, %v; want A", v, err)
	}
}

// An operation on a partition the table marks lost fails with ErrPartitionLost, for reads and
// writes, at once (the router checks its own table) and on the owner (whatever the caller's
// table said); once the mark is cleared, the partition is served again, empty.
func TestLostPartitionRefusedUntilReset(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	owner, backup := c.Active[1], c.Active[2]
	const name = "lost"
	var maps []*tmap[string, string]
	for _, id := range c.Active {
		maps = append(maps, mustMap[string, string](t, c.Svcs[id], name))
	}
	key, p := keyOn(t, c, maps[0], owner, backup)
	ctx := context.Background()
	if err := maps[0].Put(ctx, key, "v"); err != nil {
		t.Fatal(err)
	}
	lost := c.Coord.Commit(func(t *partition.Table) {
		t.Partitions[p].LostAt, t.Partitions[p].Lost = t.Epoch, true
	})
	for i, m := range maps {
		start := time.Now()
		if _, err := m.Get(ctx, key); !errors.Is(err, ErrPartitionLost) {
			t.Fatalf("member %d: Get = %v, want ErrPartitionLost", i, err)
		}
		if err := m.Put(ctx, key, "w"); !errors.Is(err, ErrPartitionLost) {
			t.Fatalf("member %d: Put = %v, want ErrPartitionLost", i, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("member %d: refusals took %v: retried instead of final", i, took)
		}
	}
	// The owner refuses, and its answer reaches a remote caller as ErrPartitionLost.
	kb, _, _ := maps[0].encodeKey(key)
	for _, kind := range []opKind{opGet, opPut} {
		req := &opRequest{Map: name, Kind: kind, Part: int32(p), Key: kb, Epoch: lost.Epoch}
		msg, _ := encodeOpRequest(req)
		answer, err := c.Svcs[owner].handleOp(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := decodeResponse(answer)
		if err != nil || !errors.Is(resp.Status.err(resp.Msg), ErrPartitionLost) {
			t.Fatalf("owner's answer to %d: %+v, %v; want ErrPartitionLost", kind, resp, err)
		}
	}

	c.Coord.Commit(func(t *partition.Table) { t.Partitions[p].Lost = false })
	for i, m := range maps {
		if _, err := m.Get(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("member %d: Get after reset = %v, want ErrNotFound (served empty)", i, err)
		}
	}
	if err := maps[0].Put(ctx, key, "w"); err != nil {
		t.Fatal(err)
	}
	if v, err := maps[2].Get(ctx, key); err != nil || v != "w" {
		t.Fatalf("Get = %q, %v; want w", v, err)
	}
}

// A member that was receiving a copy of a partition when its replicas died holds part of the
// lost data: when the partition is assigned to it afresh, it serves the partition empty, and
// every member reports the loss once.
func TestPendingCopyOfLostPartitionServedEmpty(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	owner, backup, pending := c.Active[0], c.Active[1], c.Active[2]
	const name = "partial"
	om := mustMap[string, string](t, c.Svcs[owner], name)
	key, p := keyOn(t, c, om, owner, backup)
	ctx := context.Background()
	if err := om.Put(ctx, key, "v"); err != nil {
		t.Fatal(err)
	}
	// The copy to the pending member gets all its entries but never completes.
	c.Net.SetHang(func(from, to string, mt transport.MsgType) bool {
		return from == string(owner) && to == string(pending) && mt == msgSyncEnd
	})
	c.Coord.Commit(func(t *partition.Table) { t.Partitions[p].Pending = []partition.Pending{{Member: pending}} })
	enginetest.Eventually(t, 5*time.Second, "the pending copy to hold v", func() bool { return replicaContents(c, pending, p, name)[key] == string(mustEncode(t, "v")) })

	// Both replicas die: the coordinator gives the partition to the pending member afresh,
	// recording the loss (and, as RecreateLost asks, serving it at once).
	c.Coord.Commit(func(t *partition.Table) {
		t.Partitions[p] = partition.Assignment{Replicas: []partition.MemberID{pending}, LostAt: t.Epoch}
	})
	pm := mustMap[string, string](t, c.Svcs[pending], name)
	if v, err := pm.Get(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on the new owner = %q, %v; want ErrNotFound: the partial copy is of the lost data", v, err)
	}
	for _, id := range []partition.MemberID{owner, backup, pending} {
		enginetest.Eventually(t, 5*time.Second, "the loss reported on "+string(id), func() bool { return c.Svcs[id].PartitionsLost() == 1 })
	}
	if err := pm.Put(ctx, key, "new"); err != nil {
		t.Fatal(err)
	}
	if v, err := om.Get(ctx, key); err != nil || v != "new" {
		t.Fatalf("Get = %q, %v; want new", v, err)
	}
}

// A write is acknowledged only once every backup the committed table lists has it: reporting a
// backup that does not answer is not enough (promise 3, durable acknowledgement). While the
// coordinator keeps the member a backup, the write times out instead of succeeding with fewer
// replicas than the table promises.
func TestReportedBackupStillInTableHoldsTheWrite(t *testing.T) {
	const ackTimeout = 100 * time.Millisecond
	c := newCluster(t, 3, 1, func(cfg *Config) { cfg.BackupAckTimeout = ackTimeout })
	caller, owner, backup := c.Active[0], c.Active[1], c.Active[2]
	m := mustMap[string, string](t, c.Svcs[caller], "held")
	key, p := keyOn(t, c, m, owner, backup)
	hangBackups(c, owner, backup) // and the fake coordinator does not demote

	// Long enough for the owner to report the backup: it may first take it for slow (it answers
	// the owner's other calls, takeover probes of other partitions at the start) and waits up
	// to ackStretchMax BackupAckTimeouts per attempt before the two silent ones (ackwatch.go).
	ctx, cancel := context.WithTimeout(context.Background(), 2*(ackSlackMax+2*ackStretchMax)*ackTimeout)
	defer cancel()
	err := m.Put(ctx, key, "v")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Put with its backup listed but not answering = %v, want ErrTimeout", err)
	}
	if c.Coord.ReportsOf(backup) == 0 {
		t.Fatal("the unanswering backup was never reported")
	}
	if tab, _ := c.Coord.Watch(); !tab.IsReplica(p, backup) {
		t.Fatalf("the fake coordinator dropped %s, which this test needs listed", backup)
	}
}
