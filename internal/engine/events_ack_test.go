package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
)

// backupModes runs test with synchronous backups and with AsyncBackups: listeners are told of a
// write once it is acknowledged, which with asynchronous backups means once the owner applied it
// and queued it for its backups.
func backupModes(t *testing.T, test func(t *testing.T, mod func(*Config))) {
	t.Run("sync", func(t *testing.T) { test(t, nil) })
	t.Run("async", func(t *testing.T) { test(t, func(cfg *Config) { cfg.AsyncBackups = true }) })
}

// Listeners are told of a write once reads see it (after its backups acknowledged it, or with
// AsyncBackups once the owner queued it for them): a local listener on one map reads, inside its
// callback, the co-keyed entry of another map written by the same transaction, and always finds
// it. Transactions come from every member, with a backup, so most are replicated over the
// network before they settle.
func TestListenerReadsCoKeyedTransactionWrite(t *testing.T) {
	backupModes(t, listenerReadsCoKeyedTransactionWrite)
}

func listenerReadsCoKeyedTransactionWrite(t *testing.T, mod func(*Config)) {
	c := newCluster(t, 3, 1, mod)
	ctx := t.Context()
	const txs = 300
	var seen, bad atomic.Int64
	var mu sync.Mutex
	var failures []string
	for i := range c.Active {
		s := c.Svc(i)
		process := mustMap[string, int](t, s, "process")
		reports := mustMap[string, int](t, s, "reports")
		_, err := process.AddLocalEntryListener(ctx, func(e EntryEvent[string, int]) {
			// The listener's own goroutine may block: read the report as a processor would.
			v, err := reports.Get(context.Background(), e.Key)
			if err != nil || v != e.NewValue {
				bad.Add(1)
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s: event of value %d, report read %d, %v", e.Key, e.NewValue, v, err))
				mu.Unlock()
			}
			seen.Add(1)
		}, ListenerOptions[string]{IncludeValues: true, QueueSize: txs})
		if err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range c.Active {
		s := c.Svc(w)
		process := mustMap[string, int](t, s, "process")
		reports := mustMap[string, int](t, s, "reports")
		wg.Go(func() {
			for i := w; i < txs; i += len(c.Active) {
				k := fmt.Sprint("crash-", i)
				err := s.RunTx(ctx, func(tx *Tx) error {
					if err := inTx(tx, reports).Put(ctx, k, i); err != nil {
						return err
					}
					return inTx(tx, process).Put(ctx, k, i)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	enginetest.Eventually(t, 30*time.Second, "an event per transaction", func() bool { return seen.Load() >= txs })
	if n := bad.Load(); n != 0 {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d of %d listener reads missed the transaction's co-keyed write, e.g. %v", n, txs, failures[0])
	}
}

// A plain put's listener reads its own key and finds the value it is told of (or a newer one:
// each key is written once here, so exactly it), with synchronous and asynchronous backups.
func TestListenerReadsOwnPut(t *testing.T) { backupModes(t, listenerReadsOwnPut) }

func listenerReadsOwnPut(t *testing.T, mod func(*Config)) {
	c := newCluster(t, 3, 1, mod)
	ctx := t.Context()
	const puts = 300
	var seen, bad atomic.Int64
	for i := range c.Active {
		m := mustMap[string, int](t, c.Svc(i), "own")
		_, err := m.AddLocalEntryListener(ctx, func(e EntryEvent[string, int]) {
			if v, err := m.Get(context.Background(), e.Key); err != nil || v != e.NewValue {
				t.Errorf("%s: event of value %d, read %d, %v", e.Key, e.NewValue, v, err)
				bad.Add(1)
			}
			seen.Add(1)
		}, ListenerOptions[string]{IncludeValues: true, QueueSize: puts})
		if err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range c.Active {
		m := mustMap[string, int](t, c.Svc(w), "own")
		wg.Go(func() {
			for i := w; i < puts; i += len(c.Active) {
				if err := m.Put(ctx, fmt.Sprint("k", i), i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	enginetest.Eventually(t, 30*time.Second, "an event per put", func() bool { return seen.Load() >= puts })
	if bad.Load() != 0 {
		t.Fatalf("%d listener reads missed the write they were told of", bad.Load())
	}
}

// A write whose backup never acknowledges it is not announced: while it waits, no listener (a
// local one on the owner, a cluster-wide one on another member) hears of it, and when the owner
// dies before the acknowledgement, the write is lost with it and was never announced.
func TestNoEventForUnacknowledgedWrite(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	owner, backup, other := c.Active[0], c.Active[1], c.Active[2]
	const name = "unacked"
	m := mustMap[string, string](t, c.Svcs[owner], name)
	key, p := keyOn(t, c, m, owner, backup)

	var local, remote recorder[string, string]
	if _, err := m.AddLocalEntryListener(t.Context(), local.on, ListenerOptions[string]{IncludeValues: true}); err != nil {
		t.Fatal(err)
	}
	om := mustMap[string, string](t, c.Svcs[other], name)
	if _, err := om.AddEntryListener(t.Context(), remote.on, ListenerOptions[string]{IncludeValues: true}); err != nil {
		t.Fatal(err)
	}
	// A write that is acknowledged is announced to both: the cluster-wide listener is in place.
	if err := m.Put(t.Context(), key, "acked"); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, 10*time.Second, "the first write's events", func() bool { return remote.Count() == 1 && local.Count() == 1 })

	hangBackups(c, owner, backup)
	pt := c.Svcs[owner].parts[p]
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- m.Put(ctx, key, "lost")
	}()
	enginetest.Eventually(t, 10*time.Second, "the write to be applied and wait for its backup", func() bool {
		pt.mu.RLock()
		defer pt.mu.RUnlock()
		return pt.pending != nil
	})
	// The owner dies: closing it delivers what its listeners had queued, and ends the write.
	c.Kill(owner)
	if err := <-done; err == nil {
		t.Fatal("the write whose owner died before its backup acknowledged succeeded")
	}
	c.WaitStable()
	// The backup, promoted, never had the write.
	bm := mustMap[string, string](t, c.Svcs[backup], name)
	if v, err := bm.Get(t.Context(), key); err != nil || v != "acked" {
		t.Fatalf("Get on the new owner = %q, %v; want the acknowledged write", v, err)
	}
	// An acknowledged write after the failover reaches the cluster-wide listener, which is then
	// known to be receiving.
	if err := bm.Put(t.Context(), key, "after"); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, 10*time.Second, "the event of the write after the failover", func() bool { return remote.Count() >= 2 })
	for _, r := range []*recorder[string, string]{&local, &remote} {
		evs, _ := r.Snapshot()
		for _, e := range evs {
			if e.NewValue == "lost" {
				t.Fatalf("a listener was told of the write that was lost: %+v", e)
			}
		}
	}
	if evs, _ := local.Snapshot(); len(evs) != 1 {
		t.Fatalf("the owner's local listener got %d events, want only the acknowledged write's", len(evs))
	}
}

// With AsyncBackups a write is acknowledged, and announced, once its owner applied it and queued
// it for its backups: a listener (a local one on the owner, a cluster-wide one elsewhere) that
// reads the key it is told of finds the write although no backup holds it yet. That is all the
// promise is: when the owner dies before its backups caught up, the write is lost, its
// acknowledgement and its events notwithstanding.
func TestAsyncBackupsAnnounceWriteBackupsDoNotHoldYet(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *Config) { cfg.AsyncBackups = true })
	owner, backup, other := c.Active[0], c.Active[1], c.Active[2]
	const name = "async"
	m := mustMap[string, string](t, c.Svcs[owner], name)
	om := mustMap[string, string](t, c.Svcs[other], name)
	key, _ := keyOn(t, c, m, owner, backup)
	if err := m.Put(t.Context(), key, "caught up"); err != nil {
		t.Fatal(err)
	}
	bm := mustMap[string, string](t, c.Svcs[backup], name)
	// held returns the value the backup's own records hold for key.
	held := func() string {
		kb, p, err := bm.encodeKey(key)
		if err != nil {
			t.Fatal(err)
		}
		pt := c.Svcs[backup].parts[p]
		pt.mu.RLock()
		r := pt.rs.get(name, string(kb), 0)
		pt.mu.RUnlock()
		if !r.ok {
			return "(none)"
		}
		v, err := testCodec[string]{}.Decode(r.value)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	enginetest.Eventually(t, 10*time.Second, "the backup to catch up", func() bool { return held() == "caught up" })

	var mu sync.Mutex
	reads := map[string]string{} // listener -> what it read of the key it was told of
	listen := func(who string, mp *tmap[string, string]) func(EntryEvent[string, string]) {
		return func(e EntryEvent[string, string]) {
			if e.NewValue != "announced" {
				return
			}
			v, err := mp.Get(context.Background(), e.Key)
			mu.Lock()
			reads[who] = fmt.Sprintf("%s %v", v, err)
			mu.Unlock()
		}
	}
	if _, err := m.AddLocalEntryListener(t.Context(), listen("local", m), ListenerOptions[string]{IncludeValues: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := om.AddEntryListener(t.Context(), listen("cluster-wide", om), ListenerOptions[string]{IncludeValues: true}); err != nil {
		t.Fatal(err)
	}

	hangBackups(c, owner, backup)
	if err := m.Put(t.Context(), key, "announced"); err != nil {
		t.Fatalf("an asynchronous put waits for nothing, yet: %v", err)
	}
	enginetest.Eventually(t, 10*time.Second, "both listeners to read the announced write", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reads) == 2
	})
	for who, got := range reads {
		if got != "announced <nil>" {
			t.Fatalf("the %s listener read %q of the write it was told of", who, got)
		}
	}
	if v := held(); v != "caught up" {
		t.Fatalf("the backup holds %q, want the write before its link hung", v)
	}

	// The owner dies before its backup caught up: the announced write is lost.
	c.Kill(owner)
	c.Net.SetHang(nil)
	c.WaitStable()
	if v, err := bm.Get(t.Context(), key); err != nil || v != "caught up" {
		t.Fatalf("Get on the promoted backup = %q, %v; want the write before the hang (the announced one is lost)", v, err)
	}
}
