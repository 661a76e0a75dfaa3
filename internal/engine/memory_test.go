package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// putShort is a Put whose wait for memory is kept short.
func putShort[K comparable](t *testing.T, m *tmap[K, []byte], key K, v []byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return m.Put(ctx, key, v)
}

// budgetBackup starts an owner without a memory budget and a backup with budget (mod, if set,
// adjusts both members' configs), and returns them with the owner's map "plain" and n keys of
// partitions the owner owns and the backup backs up.
func budgetBackup(t *testing.T, budget int64, n int, mod func(*Config)) (owner, backup *Service, m *tmap[int, []byte], keys []int) {
	t.Helper()
	c := newCluster(t, 1, 1, mod) // m00: no budget
	c.cfg.MemoryBudget = budget
	c.Start() // m01: budget
	c.Replan(nil)
	tab := c.WaitStable()
	owner, backup = c.Svc(0), c.Svc(1)
	m = mustMap[int, []byte](t, owner, "plain")
	for k := 0; len(keys) < n; k++ {
		p, err := m.Partition(k)
		if err != nil {
			t.Fatal(err)
		}
		if tab.Owner(p) == owner.self && tab.IsReplica(p, backup.self) {
			keys = append(keys, k)
		}
	}
	return owner, backup, m, keys
}

// fillUntilRefused writes value under keys in order until a write is refused with
// ErrMemoryLimit, and returns how many passed (len(keys) when none was refused).
func fillUntilRefused(t *testing.T, m *tmap[int, []byte], keys []int, value []byte) int {
	t.Helper()
	for n, k := range keys {
		err := putShort(t, m, k, value)
		if errors.Is(err, ErrMemoryLimit) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return len(keys)
}

// A map without a store filled to the budget: growing writes get ErrMemoryLimit, the count never
// exceeds the budget and is exact (the records' own sum), reads, deletes and overwrites that do
// not grow pass, and a write waiting for memory succeeds once a delete freed some within its
// deadline.
func TestMemoryLimitStoreLessMap(t *testing.T) {
	const budget = 64 << 10
	c := newCluster(t, 1, 0, func(cfg *Config) { cfg.MemoryBudget = budget })
	s := c.Svc(0)
	m := mustMap[int, []byte](t, s, "plain")
	ctx := context.Background()
	value := make([]byte, 1000)
	n := 0
	for ; ; n++ {
		err := putShort(t, m, n, value)
		if errors.Is(err, ErrMemoryLimit) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 1000 {
			t.Fatal("no write refused far beyond the budget")
		}
	}
	per := int64(len(value) + 8 + recordOverhead) // a small int key encodes within 8 bytes
	if used := s.MemoryUsed(); used > budget || used < budget-2*per {
		t.Fatalf("refused at %d bytes counted, budget %d", used, budget)
	}
	if used, sum := s.MemoryUsed(), s.memoryUsed(); used != sum {
		t.Fatalf("the running count %d differs from the records' sum %d", used, sum)
	}
	for i := range n {
		if v, err := m.Get(ctx, i); err != nil || len(v) != len(value) {
			t.Fatalf("Get %d at the limit: %d bytes, %v", i, len(v), err)
		}
	}
	// A new key and a growing overwrite are refused; an overwrite that does not grow passes.
	if err := putShort(t, m, n, value); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("new key at the limit: %v, want ErrMemoryLimit", err)
	}
	if err := putShort(t, m, 2, make([]byte, 2*len(value)+2*int(per))); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("growing overwrite at the limit: %v, want ErrMemoryLimit", err)
	}
	if err := putShort(t, m, 0, value); err != nil {
		t.Fatalf("same-size overwrite at the limit: %v", err)
	}
	// Back-pressure: a write waits for room and succeeds when a delete frees some in time.
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		done <- m.Put(wctx, n, value)
	}()
	enginetest.Eventually(t, 10*time.Second, "the write to wait for memory", func() bool { return s.mem.waiters.Load() > 0 })
	select {
	case err := <-done:
		t.Fatalf("the write did not wait: %v", err)
	default:
	}
	if _, err := m.Delete(ctx, 3); err != nil {
		t.Fatalf("delete at the limit: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the write waiting for memory: %v", err)
	}
	if v, err := m.Get(ctx, n); err != nil || len(v) != len(value) {
		t.Fatalf("Get of the write that waited: %d bytes, %v", len(v), err)
	}
	if err := putShort(t, m, 1, value[:10]); err != nil {
		t.Fatalf("shrinking overwrite at the limit: %v", err)
	}
	// Clear frees everything, and the count follows exactly.
	if err := m.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if used := s.MemoryUsed(); used != 0 {
		t.Fatalf("%d bytes counted after Clear", used)
	}
	if err := putShort(t, m, 0, value); err != nil {
		t.Fatalf("write after Clear: %v", err)
	}
}

// Backups: a member that backs up partitions counts their entries, tells their owners when it
// is at its budget, and their growing writes are refused (ErrMemoryLimit) rather than push it
// on; it exceeds its budget at most by the writes in flight (one, for one writer). Deletes on the
// owner free the backup's memory, and writes pass again, also one that was waiting.
func TestMemoryLimitBackups(t *testing.T) {
	const budget = 48 << 10
	owner, backup, m, keys := budgetBackup(t, budget, 500, nil)
	ctx := context.Background()
	value := make([]byte, 1000)
	per := int64(len(value) + 8 + recordOverhead)
	n := fillUntilRefused(t, m, keys, value)
	if n == len(keys) {
		t.Fatalf("%d writes of %d bytes all passed with a backup of budget %d", n, len(value), budget)
	}
	if used := backup.MemoryUsed(); used > budget+per || used < budget {
		t.Fatalf("backup counts %d bytes; budget %d, one write %d", used, budget, per)
	}
	if owner.MemoryUsed() != 0 {
		t.Fatal("a member without a budget counts memory")
	}
	// Reads and deletes pass; the deletes' acknowledgements free the owner's writes, also one
	// that was waiting (it asks the backup again while it waits).
	for i := range n {
		if v, err := m.Get(ctx, keys[i]); err != nil || len(v) != len(value) {
			t.Fatalf("Get at the limit: %d bytes, %v", len(v), err)
		}
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		done <- m.Put(wctx, keys[n], value)
	}()
	for i := range 5 {
		if _, err := m.Delete(ctx, keys[i]); err != nil {
			t.Fatalf("delete at the limit: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the write waiting for the backup's memory: %v", err)
	}
	if err := putShort(t, m, keys[n+1], value); err != nil {
		t.Fatalf("write after deletes freed the backup: %v", err)
	}
	if used := backup.MemoryUsed(); used > budget+per {
		t.Fatalf("backup counts %d bytes; budget %d", used, budget)
	}
}

// Asynchronous backups: nothing waits for a backup's acknowledgement, but the owner still learns
// from the asynchronous sender's acknowledgements that the backup is at its budget and holds
// growing writes back, so that the backup's memory stays bounded: within its budget plus the
// writes already queued for it when it said so. One writer, far more data than the budget: the
// writes must be refused (all 2000 would pass if the owner ignored the asynchronous
// acknowledgements), and the backup, once the backlog reached it, holds at most the budget and
// the slack below.
func TestMemoryLimitAsyncBackups(t *testing.T) {
	const budget = 48 << 10
	owner, backup, m, keys := budgetBackup(t, budget, 2000, func(cfg *Config) { cfg.AsyncBackups = true })
	value := make([]byte, 1000)
	per := int64(len(value) + 8 + recordOverhead)
	n := fillUntilRefused(t, m, keys, value)
	if n == len(keys) {
		t.Fatalf("%d asynchronously backed-up writes of %d bytes all passed with a backup of budget %d", n, len(value), budget)
	}
	// The backlog reaches the backup: then it holds what the owner admitted.
	enginetest.Eventually(t, 10*time.Second, "the asynchronous backlog to drain", func() bool {
		for _, p := range owner.parts {
			p.async.mu.Lock()
			busy := len(p.async.items) > 0 || p.async.running
			p.async.mu.Unlock()
			if busy {
				return false
			}
		}
		return true
	})
	// The slack: the writes queued while the batch that took the backup to its budget was on
	// its way (the sender sends the whole backlog at once). 5 to 60 writes in runs on a loaded
	// machine; the documented bound is the backlog itself (maxAsyncBacklog per partition).
	const slack = 1024 // writes
	if used := backup.MemoryUsed(); used > budget+slack*per || used < budget {
		t.Fatalf("backup counts %d bytes after %d writes; budget %d, slack %d writes of %d", used, n, budget, slack, per)
	}
	t.Logf("refused after %d writes; the backup holds %d bytes (budget %d, %.1f writes over)", n, backup.MemoryUsed(), budget,
		float64(backup.MemoryUsed()-budget)/float64(per))
}

// The events a listener's queue holds count in the budget until they are delivered: a stalled
// listener holding values makes growing writes wait, and its draining frees the room.
func TestMemoryLimitCountsListenerQueues(t *testing.T) {
	const budget = 64 << 10
	c := newCluster(t, 1, 0, func(cfg *Config) { cfg.MemoryBudget = budget })
	s := c.Svc(0)
	m := mustMap[int, []byte](t, s, "watched")
	ctx := context.Background()
	release := make(chan struct{})
	delivered := make(chan struct{}, 1000)
	h, err := m.AddLocalEntryListener(ctx, func(EntryEvent[int, []byte]) {
		<-release
		delivered <- struct{}{}
	}, ListenerOptions[int]{IncludeValues: true, QueueSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	value := make([]byte, 1000)
	// Each new entry's Added event holds its key and value in the queue until delivered: about
	// as much as the entry itself.
	writes := 0
	for ; ; writes++ {
		err := putShort(t, m, writes, value)
		if errors.Is(err, ErrMemoryLimit) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if writes > 1000 {
			t.Fatal("queued events never filled the budget")
		}
	}
	// Events are queued after their write was admitted: the last write's event may pass the
	// budget by its own size (a queue slot, the key and the value).
	if records, used := s.memoryUsed(), s.MemoryUsed(); used-records < budget/3 || used > budget+int64(len(value))+512 {
		t.Fatalf("%d bytes counted, %d of records: listener queues not counted", used, records)
	}
	close(release)
	for range writes {
		<-delivered
	}
	enginetest.Eventually(t, 10*time.Second, "the running count to match the records", func() bool { return s.MemoryUsed() == s.memoryUsed() })
	if err := putShort(t, m, writes, value); err != nil {
		t.Fatalf("write after the listener drained: %v", err)
	}
}

// fullBackups counts each member once, whatever the order of its answers.
func TestFullBackupsNote(t *testing.T) {
	var f fullBackups
	a, b := partition.MemberID("a"), partition.MemberID("b")
	f.note(a, true)
	f.note(a, true)
	f.note(b, false)
	if !f.has(a) || f.has(b) || f.n.Load() != 1 {
		t.Fatalf("after a full: has(a)=%v has(b)=%v n=%d", f.has(a), f.has(b), f.n.Load())
	}
	f.note(a, false)
	f.note(a, false)
	if f.has(a) || f.n.Load() != 0 {
		t.Fatalf("after a has room: has(a)=%v n=%d", f.has(a), f.n.Load())
	}
}

// A write to a remote owner that waits for memory until its deadline gets ErrMemoryLimit, not a
// timeout: the owner gives up early enough (refuseAhead) for its refusal to reach the caller
// before the caller's own deadline ends the call.
func TestMemoryLimitReachesARemoteCallerInTime(t *testing.T) {
	const budget = 32 << 10
	c := newCluster(t, 2, 0, func(cfg *Config) { cfg.MemoryBudget = budget })
	c.WaitStable()
	owner, caller := c.Svc(0), c.Svc(1)
	m := mustMap[string, []byte](t, caller, "plain")
	keys := c.KeysOwnedBy(func(k string) partition.ID { p, _ := m.Partition(k); return p }, owner.self, 200, false)
	value := make([]byte, 1000)
	filled := 0
	for ; filled < len(keys); filled++ {
		err := putShort(t, m, keys[filled], value)
		if errors.Is(err, ErrMemoryLimit) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if filled == len(keys) {
		t.Fatalf("%d writes of %d bytes within a budget of %d, none refused", filled, len(value), budget)
	}
	// The answers of operations take 20 ms back to the caller, as on a loaded network.
	c.Net.SetAnswered(func(_, _ string, mt transport.MsgType) bool {
		if mt == msgOp {
			time.Sleep(20 * time.Millisecond)
		}
		return false
	})
	defer c.Net.SetAnswered(nil)
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := m.Put(ctx, keys[filled], value)
		cancel()
		if !errors.Is(err, ErrMemoryLimit) {
			t.Fatalf("write %d waiting for memory at a remote owner until its deadline: %v, want ErrMemoryLimit", i, err)
		}
	}
}
