package writebehind

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore"
)

func newQueue(t *testing.T, cfg mapstore.Config) *Queue {
	t.Helper()
	q, err := NewQueue(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func set(k, v string, seq uint64) Entry { return Entry{Key: []byte(k), Value: []byte(v), Seq: seq} }

// A backup that applies the owner's writes and acknowledgements holds what the owner holds, and
// when promoted it stores exactly what the owner had not stored yet.
func TestBackupFollowsOwnerAndTakesOver(t *testing.T) {
	for _, mode := range []mapstore.Coalescing{mapstore.CoalesceOn, mapstore.CoalesceOff} {
		cfg := mapstore.Config{WriteDelay: time.Second, Coalesce: mode, BatchSize: 2}
		owner, backup := newQueue(t, cfg), newQueue(t, cfg)
		t0 := time.Unix(0, 0)
		write := func(e Entry, at time.Time) {
			owner.Add(e, at)
			backup.Add(e, at.Add(3*time.Millisecond)) // the backup's clock differs; no matter
		}
		write(set("a", "1", 1), t0)
		write(set("b", "1", 2), t0)
		write(set("c", "1", 3), t0)
		batch := owner.Ready(t0.Add(time.Second))
		write(set("a", "2", 4), t0.Add(time.Second)) // re-dirtied during the flush
		owner.Ack(batch)
		backup.Ack(batch)
		backup.Add(set("c", "1", 3), t0) // a repeated replication message is ignored
		if owner.Len() != backup.Len() || owner.Bytes() != backup.Bytes() {
			t.Fatalf("mode %d: owner %d entries/%d bytes, backup %d/%d", mode, owner.Len(), owner.Bytes(), backup.Len(), backup.Bytes())
		}
		// the owner dies; the promoted backup stores the rest
		var got []string
		now := t0.Add(3 * time.Second)
		for b := backup.Ready(now); b != nil; b = backup.Ready(now) {
			got = append(got, render(b))
			backup.Ack(b)
		}
		want := "a=2 c=1" // a's coalesced entry keeps its place
		if mode == mapstore.CoalesceOff {
			want = "c=1 a=2"
		}
		if len(got) != 1 || got[0] != want {
			t.Fatalf("mode %d: promoted backup stored %q, want [%q]", mode, got, want)
		}
	}
}

// A snapshot carries ages, not times: the receiver's clock decides when entries are due.
func TestSnapshotRestoreKeepsAgesAndOrder(t *testing.T) {
	cfg := mapstore.Config{WriteDelay: 10 * time.Second, Coalesce: mapstore.CoalesceOff}
	src, dst := newQueue(t, cfg), newQueue(t, cfg)
	t0 := time.Unix(100, 0)
	src.Add(set("a", "1", 1), t0)
	src.Add(set("a", "2", 2), t0.Add(time.Second))
	src.Add(set("b", "1", 3), t0.Add(8*time.Second))
	snap := src.Snapshot(t0.Add(9 * time.Second))

	t1 := time.Unix(5000, 0) // another member, another clock
	dst.Restore(snap, t1)
	if dst.Len() != 3 || dst.LastSeq() != 3 {
		t.Fatalf("restored %d entries, last seq %d", dst.Len(), dst.LastSeq())
	}
	if got := dst.Stats(t1).OldestAge; got != 9*time.Second {
		t.Fatalf("oldest age %v, want 9s", got)
	}
	if b := dst.Ready(t1.Add(999 * time.Millisecond)); b != nil {
		t.Fatalf("batch %q before the delay", render(b))
	}
	var got []string
	now := t1.Add(10 * time.Second)
	for b := dst.Ready(now); b != nil; b = dst.Ready(now) {
		got = append(got, render(b))
		dst.Ack(b)
	}
	if want := []string{"a=1 b=1", "a=2"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("stored %q, want %q", got, want)
	}
}

// While a copy travels, live writes and acknowledgements reach the new replica first; the copy
// must neither resurrect a stored entry nor overwrite a newer write.
func TestSyncCopyRacingLiveTraffic(t *testing.T) {
	cfg := mapstore.Config{WriteDelay: time.Second}
	src, dst := newQueue(t, cfg), newQueue(t, cfg)
	t0 := time.Unix(0, 0)
	src.Add(set("k", "old", 90), t0)
	src.Add(set("j", "old", 91), t0)
	src.Add(set("m", "old", 92), t0)
	snap := src.Snapshot(t0)

	dst.Add(set("stale", "x", 1), t0) // whatever the replica held is replaced by the copy
	dst.BeginSync()
	dst.Add(set("k", "new", 105), t0) // live write arrives before the copy
	dst.Ack([]Entry{{Key: []byte("j"), Seq: 95}})
	dst.Restore(snap, t0)
	dst.EndSync()

	var got []string
	for b := dst.Ready(t0.Add(time.Second)); b != nil; b = dst.Ready(t0.Add(time.Second)) {
		got = append(got, render(b))
		dst.Ack(b)
	}
	if want := "m=old k=new"; len(got) != 1 || got[0] != want {
		t.Fatalf("after sync stored %q, want [%q]", got, want)
	}
	if u, n := dst.Budget().Usage(); u != 0 || n != 0 {
		t.Fatalf("budget still charged with %d bytes, %d entries", u, n)
	}
}

func TestBudgetSharedByQueuesAndWait(t *testing.T) {
	b := NewBudget(1<<20, 3)
	cfg := mapstore.Config{WriteDelay: time.Second}
	q1, _ := NewQueue(cfg, b)
	q2, _ := NewQueue(cfg, b)
	t0 := time.Unix(0, 0)
	q1.Add(set("a", "1", 0), t0)
	q2.Add(set("b", "1", 0), t0)
	q2.Add(set("c", "1", 0), t0)
	if !q1.Full() {
		t.Fatal("3 entries in two queues should fill a budget of 3")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(ctx); !errors.Is(err, mapstore.ErrDirtyLimit) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a full budget: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Wait(context.Background()) }()
	batch := q2.Ready(t0.Add(time.Second))
	q2.Ack(batch)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return after entries were stored")
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	if err := (mapstore.Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c := mapstore.DefaultConfig(time.Second)
	if c.BatchSize != mapstore.DefaultBatchSize || c.Coalesce != mapstore.CoalesceOn || c.RetryMax != mapstore.DefaultRetryMax || c.WriteThrough() {
		t.Fatalf("defaults not filled: %+v", c)
	}
	bad := mapstore.Config{WriteDelay: -1, BatchSize: -1, BatchBytes: -1, MaxDirtyBytes: -1, MaxDirtyEntries: -1,
		RetryInitial: time.Second, RetryMax: time.Millisecond, Coalesce: 9}.WithDefaults()
	err := bad.Validate()
	if !errors.Is(err, mapstore.ErrInvalidConfig) {
		t.Fatalf("want mapstore.ErrInvalidConfig, got %v", err)
	}
	for _, field := range []string{"WriteDelay", "BatchSize", "BatchBytes", "MaxDirtyBytes", "MaxDirtyEntries", "RetryMax", "Coalesce"} {
		if !contains(err.Error(), field) {
			t.Errorf("error does not mention %s: %v", field, err)
		}
	}
	if _, err := NewQueue(bad, nil); !errors.Is(err, mapstore.ErrInvalidConfig) {
		t.Fatalf("NewQueue accepted a bad config: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
