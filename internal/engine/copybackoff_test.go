package engine

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

func TestCopyBackoffPauses(t *testing.T) {
	var b copyBackoff
	task := copyTask{p: 3, m: "x"}
	now := time.Unix(1000, 0)
	if !b.ready(task, 7, now) {
		t.Fatal("a copy that never failed must be ready")
	}
	var prevWait time.Duration
	for i := range 8 {
		pause := b.failed(task, 7, now)
		w := b.tasks[task].wait
		if pause < w/2 || pause > w {
			t.Fatalf("failure %d: pause %v outside [%v, %v]", i+1, pause, w/2, w)
		}
		if w < prevWait || w > copyRetryMax || w < migrationRetry {
			t.Fatalf("failure %d: wait %v after %v (bounds %v..%v)", i+1, w, prevWait, migrationRetry, copyRetryMax)
		}
		prevWait = w
		if b.ready(task, 7, now.Add(pause-time.Millisecond)) {
			t.Fatalf("failure %d: ready before its pause of %v", i+1, pause)
		}
		if !b.ready(task, 7, now.Add(pause)) {
			t.Fatalf("failure %d: not ready after its pause of %v", i+1, pause)
		}
		// A new stint of the target as pending starts without a pause.
		if !b.ready(task, 8, now) {
			t.Fatalf("failure %d: a new stint must not wait", i+1)
		}
	}
	if prevWait != copyRetryMax {
		t.Fatalf("after 8 failures the wait is %v, want the cap %v", prevWait, copyRetryMax)
	}
	// A failure in a new stint starts from the first pause again.
	b.failed(task, 8, now)
	if w := b.tasks[task].wait; w != migrationRetry {
		t.Fatalf("first failure of a new stint waits %v, want %v", w, migrationRetry)
	}
	b.succeeded(task)
	if !b.ready(task, 8, now) {
		t.Fatal("a copy that succeeded must be ready")
	}

	// prune forgets what the table no longer asks.
	tb := partition.NewTable(4)
	tb.Epoch = 9
	tb.Partitions[3] = partition.Assignment{Replicas: []partition.MemberID{"self"}, Pending: []partition.Pending{{Member: "x", Since: 8}}}
	b.failed(task, 8, now)
	other := copyTask{p: 2, m: "x"}
	b.failed(other, 8, now)
	b.prune(tb, "self")
	if _, ok := b.tasks[task]; !ok {
		t.Fatal("prune dropped a copy the table still asks for")
	}
	if _, ok := b.tasks[other]; ok {
		t.Fatal("prune kept a copy the table no longer asks for")
	}
}

// A copy whose target is cut off fails at once (the dial is refused). The driver used to start
// it again as soon as it ended: thousands of attempts a minute per pending copy on a member cut
// off from others (issue 21's Jepsen runs logged 17,000 failed copies in one 30 s partition),
// CPU taken from the leases and heartbeats the cluster needs to recover. The attempts must be
// spaced: five attempts take at least the first four pauses (at least half of 0.5, 1, 2 and 2 s).
// Once the target is reachable again the copy completes.
func TestFailingCopyBacksOff(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *Config) { cfg.BackupAckTimeout = 100 * time.Millisecond })
	p, a, x := pendingCandidate(t, c)
	var begins atomic.Int64
	var firstAt, fifthAt atomic.Int64
	c.Net.SetDrop(func(from, to string, mt transport.MsgType) bool {
		if from != string(a) || to != string(x) || mt != msgSyncBegin {
			return false
		}
		switch begins.Add(1) {
		case 1:
			firstAt.Store(time.Now().UnixNano())
		case 5:
			fifthAt.Store(time.Now().UnixNano())
		}
		return true
	})
	c.Coord.Commit(func(t *partition.Table) {
		t.Partitions[p].Pending = []partition.Pending{{Member: x, Since: t.Epoch}}
	})
	enginetest.Eventually(t, 30*time.Second, "five attempts of the copy", func() bool { return begins.Load() >= 5 })
	minimum := (migrationRetry + 2*migrationRetry + copyRetryMax + copyRetryMax) / 2
	if got := time.Duration(fifthAt.Load() - firstAt.Load()); got < minimum {
		t.Fatalf("five attempts of a failing copy took %v, want at least %v (the pauses)", got, minimum)
	}
	c.Net.SetDrop(nil)
	enginetest.Eventually(t, 30*time.Second, "the copy to complete once the target is reachable", func() bool {
		return c.Svcs[a].copiesDone.Load() > 0
	})
}

// A member without a lease starts no copy: each would fail before it begins (mayPush), and the
// driver would spin on them. Once the lease is back, the copy runs.
func TestNoCopyWithoutLease(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	p, a, x := pendingCandidate(t, c)
	c.Coord.Mu.Lock()
	c.Coord.NoLease = map[partition.MemberID]bool{a: true}
	c.Coord.Mu.Unlock()
	c.Coord.Commit(func(t *partition.Table) {
		t.Partitions[p].Pending = []partition.Pending{{Member: x, Since: t.Epoch}}
	})
	// An observation window of several driver rounds (migrationRetry each): nothing may start.
	time.Sleep(4 * migrationRetry)
	if n := c.Svcs[a].copiesFailed.Load(); n != 0 {
		t.Fatalf("a member without a lease started %d copies that failed", n)
	}
	c.Coord.Mu.Lock()
	c.Coord.NoLease = nil
	c.Coord.Mu.Unlock()
	enginetest.Eventually(t, 30*time.Second, "the copy to complete once the lease is back", func() bool {
		return c.Svcs[a].copiesDone.Load() > 0
	})
}

// pendingCandidate picks a partition p, its owner a and a member x that does not replicate it.
func pendingCandidate(t *testing.T, c *cluster) (p partition.ID, a, x partition.MemberID) {
	t.Helper()
	c.Coord.Mu.Lock()
	defer c.Coord.Mu.Unlock()
	reps := c.Coord.Table.Partitions[p].Replicas
	if len(reps) == 0 {
		t.Fatalf("partition %d has no replicas", p)
	}
	a = reps[0]
	x = c.Active[slices.IndexFunc(c.Active, func(m partition.MemberID) bool { return !slices.Contains(reps, m) })]
	return p, a, x
}
