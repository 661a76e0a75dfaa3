package dmap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func registerIncr(t *testing.T, c *cluster) {
	t.Helper()
	for _, s := range c.Svcs {
		err := RegisterProcessor(s, "incr", func(ctx context.Context, e *MutableEntry[string, int], by int) (int, error) {
			e.SetValue(e.Value + by)
			return e.Value + by, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestEntryProcessorLosesNoIncrement(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	registerIncr(t, c)
	ctx := context.Background()
	var wg sync.WaitGroup
	const workers, each = 32, 20
	for i := range workers {
		m := mustMap[string, int](t, c.Svc(i%3), "counters")
		wg.Go(func() {
			for range each {
				if _, err := Execute[int](ctx, m, "incr", "hits", 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	m := mustMap[string, int](t, c.Svc(0), "counters")
	if v, err := m.Get(ctx, "hits"); err != nil || v != workers*each {
		t.Fatalf("counter = %d, %v; want %d", v, err, workers*each)
	}
	// The result is backed up like any write: the owner's failure keeps it.
	p, _ := m.Partition("hits")
	c.Kill(c.Coord.Table.Owner(p))
	c.WaitStable()
	if v, err := m.Get(ctx, "hits"); err != nil || v != workers*each {
		t.Fatalf("counter after failover = %d, %v", v, err)
	}
	if _, err := Execute[int](ctx, m, "nope", "hits", 1); !errors.Is(err, ErrNoProcessor) {
		t.Fatalf("unknown processor = %v", err)
	}
}

func TestExecuteOnKeysAndEntries(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	registerIncr(t, c)
	ctx := context.Background()
	m := mustMap[string, int](t, c.Svc(1), "many")
	var keys []string
	for i := range 100 {
		k := fmt.Sprint("k", i)
		keys = append(keys, k)
		if err := m.Put(ctx, k, i); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	for r, err := range ExecuteOnKeys[int](ctx, m, "incr", keys[:50], 1000) {
		if err != nil {
			t.Fatal(err)
		}
		got[r.Key] = r.Value
	}
	if len(got) != 50 || got["k7"] != 1007 {
		t.Fatalf("ExecuteOnKeys results: %d, k7=%d", len(got), got["k7"])
	}
	n := 0
	for r, err := range ExecuteOnEntries[int](ctx, m, "incr", 1) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if v, _ := m.Get(ctx, r.Key); v != r.Value {
			t.Fatalf("%s = %d, processor said %d", r.Key, v, r.Value)
		}
	}
	if n != 100 {
		t.Fatalf("ExecuteOnEntries saw %d entries", n)
	}
}

// TestRegisterNameTwice: a processor or predicate name already registered on a member is
// refused with ErrAlreadyRegistered, and the first registration keeps running.
func TestRegisterNameTwice(t *testing.T) {
	c := newCluster(t, 1, 0, nil)
	s := c.Svc(0)
	ctx := context.Background()
	registerIncr(t, c)
	err := RegisterProcessor(s, "incr", func(ctx context.Context, e *MutableEntry[string, int], by int) (int, error) {
		return -1, nil
	})
	if !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("second RegisterProcessor(incr) = %v, want ErrAlreadyRegistered", err)
	}
	m := mustMap[string, int](t, s, "counters")
	if err := RegisterMapProcessor(m, "incr", func(context.Context, *MutableEntry[string, int], int) (int, error) { return -1, nil }); !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("second RegisterMapProcessor(incr) = %v, want ErrAlreadyRegistered", err)
	}
	if r, err := Execute[int](ctx, m, "incr", "hits", 2); err != nil || r != 2 {
		t.Fatalf("incr after the refused registration = %d, %v; want the first processor's 2", r, err)
	}

	registerDivisible(t, s)
	err = RegisterPredicate(s, "divisible", func(e EntryEvent[int, int], by int) bool { return true })
	if !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("second RegisterPredicate(divisible) = %v, want ErrAlreadyRegistered", err)
	}
	if err := RegisterMapPredicate(mustMap[int, int](t, s, "numbers"), "divisible", func(EntryEvent[int, int], int) bool { return true }); !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("second RegisterMapPredicate(divisible) = %v, want ErrAlreadyRegistered", err)
	}
	// Other names are still free.
	if err := RegisterPredicate(s, "any", func(EntryEvent[int, int], struct{}) bool { return true }); err != nil {
		t.Fatal(err)
	}
}

// TestShortTypeArguments: the calls name only the type parameters their arguments do not tell
// (the result of a processor, the other side of a codec option); this test fails to compile
// when that breaks.
func TestShortTypeArguments(t *testing.T) {
	c := newCluster(t, 1, 0, nil)
	s := c.Svc(0)
	ctx := context.Background()
	err := RegisterProcessor(s, "len", func(ctx context.Context, e *MutableEntry[string, int], suffix string) (int, error) {
		return len(e.Key + suffix), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The codecs are the defaults (typed processors decode with those), given as concrete
	// types: K and V are inferred from their methods.
	m, err := New(s, "short", WithKeyCodec[int](stringCodec{}), WithValueCodec[string](MsgpackCodec[int]{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, "abc", 1); err != nil {
		t.Fatal(err)
	}
	if n, err := Execute[int](ctx, m, "len", "abc", "de"); err != nil || n != 5 {
		t.Fatalf("Execute[int] = %d, %v; want 5", n, err)
	}
	for r, err := range ExecuteOnKeys[int](ctx, m, "len", []string{"xy"}, "") {
		if err != nil || r.Key != "xy" || r.Value != 2 {
			t.Fatalf("ExecuteOnKeys[int] = %+v, %v", r, err)
		}
	}
	n := 0
	for r, err := range ExecuteOnEntries[int](ctx, m, "len", "!") {
		if err != nil || r.Key != "abc" || r.Value != 4 {
			t.Fatalf("ExecuteOnEntries[int] = %+v, %v", r, err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("ExecuteOnEntries[int] yielded %d results, want 1", n)
	}
}

func TestLockMutualExclusion(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	var inside, maxInside, total atomic.Int32
	var wg sync.WaitGroup
	for i := range 12 {
		m := mustMap[string, int](t, c.Svc(i%3), "locked")
		wg.Go(func() {
			for range 10 {
				l, err := m.Lock(ctx, "resource", 0)
				if err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				if n > maxInside.Load() {
					maxInside.Store(n)
				}
				total.Add(1)
				inside.Add(-1)
				if err := l.Unlock(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if maxInside.Load() != 1 || total.Load() != 120 {
		t.Fatalf("max holders at once %d, acquisitions %d", maxInside.Load(), total.Load())
	}
}

func TestLockBlocksOtherWritersAndSurvivesFailover(t *testing.T) {
	c := newCluster(t, 4, 1, nil)
	ctx := context.Background()
	// The holder and the other writer are members that do not own the key's partition, so that
	// the owner can be killed without killing either.
	probe := mustMap[string, string](t, c.Svc(0), "docs")
	p, _ := probe.Partition("doc")
	owner := c.Coord.Table.Owner(p)
	var users []*Service
	for _, id := range c.Active {
		if id != owner {
			users = append(users, c.Svcs[id])
		}
	}
	holderSvc := users[0]
	m := mustMap[string, string](t, holderSvc, "docs")
	other := mustMap[string, string](t, users[1], "docs")
	l, err := m.Lock(ctx, "doc", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Put(l.Context(ctx), "doc", "by holder"); err != nil {
		t.Fatalf("holder write: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = other.Put(short, "doc", "by other")
	cancel()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("write by another holder while locked = %v, want ErrTimeout", err)
	}
	// TryLock does not wait: ErrLocked at once, even under a context without deadline.
	if l2, err := other.TryLock(ctx, "doc", 0); l2 != nil || !errors.Is(err, ErrLocked) || errors.Is(err, ErrTimeout) {
		t.Fatalf("TryLock on a held lock = %v, %v; want ErrLocked, no timeout", l2, err)
	}
	// Lock waits as long as its context allows.
	short, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
	l2, err := other.Lock(short, "doc", 0)
	cancel()
	if l2 != nil || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held lock under a 200ms context = %v, %v; want ErrTimeout and context.DeadlineExceeded", l2, err)
	}
	// The lock is backed up: kill the owner of its partition (not the holder's member).
	c.Kill(owner)
	c.WaitStable()
	if locked, err := other.IsLocked(ctx, "doc"); err != nil || !locked {
		t.Fatalf("after the owner's failure IsLocked = %v, %v", locked, err)
	}
	done := make(chan error, 1)
	go func() { done <- other.Put(ctx, "doc", "by other") }()
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiting writer: %v", err)
	}
	if v, _ := m.Get(ctx, "doc"); v != "by other" {
		t.Fatalf("value = %q", v)
	}
	// Released: TryLock acquires it, and then refuses everyone else, the same Map included.
	l3, err := other.TryLock(ctx, "doc", 0)
	if err != nil || l3 == nil {
		t.Fatalf("TryLock of a free lock = %v, %v", l3, err)
	}
	if l4, err := m.TryLock(ctx, "doc", 0); l4 != nil || !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock of a lock held by a TryLock = %v, %v; want ErrLocked", l4, err)
	}
	if err := l3.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if locked, err := m.IsLocked(ctx, "doc"); err != nil || locked {
		t.Fatalf("after Unlock IsLocked = %v, %v", locked, err)
	}
}

func TestLockOfDeadMemberIsReleased(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	var holder *Service
	var m *Map[string, int]
	// Hold the lock from a member that does not own the key, then kill that member.
	for i := range 3 {
		m = mustMap[string, int](t, c.Svc(i), "l")
		p, _ := m.Partition("x")
		if c.Coord.Table.Owner(p) != c.id(c.Svc(i)) {
			holder = c.Svc(i)
			break
		}
	}
	if _, err := m.Lock(ctx, "x", 0); err != nil {
		t.Fatal(err)
	}
	c.Kill(c.id(holder))
	c.DropMember(c.id(holder))
	other := mustMap[string, int](t, c.Svc(0), "l")
	l, err := other.Lock(ctx, "x", 0)
	if err != nil {
		t.Fatalf("lock of a dead member not released: %v", err)
	}
	l.Unlock(ctx)
}

func TestTransactionsAreAtomicAndIsolated(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	raw := mustMap[string, int](t, c.Svc(0), "raw")
	proc := mustMap[coKey, int](t, c.Svc(0), "process")
	const n = 100
	// Writers move "report-i" through versions, always writing both maps in one transaction.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		s := c.Svc(w % 3)
		wg.Go(func() {
			rm := mustMap[string, int](t, s, "raw")
			pm := mustMap[coKey, int](t, s, "process")
			for v := 1; ; v++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprint("report-", (v*7+w)%n)
				tx, _ := s.Begin(ctx)
				cur, err := InTx(tx, rm).Get(ctx, id)
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Error(err)
					return
				}
				InTx(tx, rm).Put(ctx, id, cur+1)
				InTx(tx, pm).Put(ctx, coKey{Report: id, Kind: "todo"}, cur+1)
				if err := tx.Commit(ctx); err != nil && !errors.Is(err, ErrConflict) {
					t.Error(err)
					return
				}
			}
		})
	}
	// Readers must never see the two maps disagree: a read-only transaction reads both, and
	// its commit validates that neither changed in between.
	deadline := time.Now().Add(2 * time.Second)
	checks, consistent := 0, 0
	for time.Now().Before(deadline) {
		id := fmt.Sprint("report-", checks%n)
		tx, _ := c.Svc(1).Begin(ctx)
		a, errA := InTx(tx, raw).Get(ctx, id)
		b, errB := InTx(tx, proc).Get(ctx, coKey{Report: id, Kind: "todo"})
		checks++
		if err := tx.Commit(ctx); errors.Is(err, ErrConflict) {
			continue // a writer committed between the two reads
		} else if err != nil {
			t.Fatal(err)
		}
		consistent++
		if errors.Is(errA, ErrNotFound) != errors.Is(errB, ErrNotFound) {
			t.Fatalf("%s exists in one map only", id)
		}
		if errA == nil && a != b {
			t.Fatalf("%s: raw=%d process=%d", id, a, b)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d snapshot reads, %d validated", checks, consistent)
	if consistent == 0 {
		t.Fatal("no read-only transaction validated")
	}
	// After the writers: every pair agrees, and no update was lost (raw counts commits).
	for i := range n {
		id := fmt.Sprint("report-", i)
		a, errA := raw.Get(ctx, id)
		b, errB := proc.Get(ctx, coKey{Report: id, Kind: "todo"})
		if (errA == nil) != (errB == nil) || a != b {
			t.Fatalf("%s: raw=%d,%v process=%d,%v", id, a, errA, b, errB)
		}
	}
}

func TestConflictingTransactionsNeverBothCommit(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	m := mustMap[string, int](t, c.Svc(0), "acct")
	m.Put(ctx, "a", 100)
	tx1, _ := c.Svc(0).Begin(ctx)
	tx2, _ := c.Svc(1).Begin(ctx)
	m2 := mustMap[string, int](t, c.Svc(1), "acct")
	v1, _ := InTx(tx1, m).Get(ctx, "a")
	v2, _ := InTx(tx2, m2).Get(ctx, "a")
	InTx(tx1, m).Put(ctx, "a", v1-30)
	InTx(tx2, m2).Put(ctx, "a", v2-50)
	err1 := tx1.Commit(ctx)
	err2 := tx2.Commit(ctx)
	if err1 != nil || !errors.Is(err2, ErrConflict) {
		t.Fatalf("commits: %v, %v; want nil then ErrConflict", err1, err2)
	}
	if v, _ := m.Get(ctx, "a"); v != 70 {
		t.Fatalf("balance %d, want 70", v)
	}
	if err := tx1.Commit(ctx); !errors.Is(err, ErrTxDone) {
		t.Fatalf("second commit = %v", err)
	}
}

func TestCrossPartitionTransactionFails(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	m := mustMap[string, int](t, c.Svc(0), "x")
	tx, _ := c.Svc(0).Begin(ctx)
	if err := InTx(tx, m).Put(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	var other string
	pa, _ := m.Partition("a")
	for i := 0; ; i++ {
		other = fmt.Sprint("b", i)
		if p, _ := m.Partition(other); p != pa {
			break
		}
	}
	if err := InTx(tx, m).Put(ctx, other, 2); !errors.Is(err, ErrCrossPartition) {
		t.Fatalf("cross-partition put = %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rolled-back write visible: %v", err)
	}
}

func TestEntryProcessorIncrementsAcrossFailover(t *testing.T) {
	c := newCluster(t, 4, 1, nil)
	registerIncr(t, c)
	ctx := context.Background()
	probe := mustMap[string, int](t, c.Svc(0), "counters")
	p, _ := probe.Partition("hits")
	owner := c.Coord.Table.Owner(p)
	var callers []*Service
	for _, id := range c.Active {
		if id != owner {
			callers = append(callers, c.Svcs[id])
		}
	}
	var done atomic.Int32
	var wg sync.WaitGroup
	const workers, each = 32, 15
	for i := range workers {
		m := mustMap[string, int](t, callers[i%len(callers)], "counters")
		wg.Go(func() {
			for range each {
				if _, err := Execute[int](ctx, m, "incr", "hits", 1); err != nil {
					t.Error(err)
					return
				}
				done.Add(1)
			}
		})
	}
	for done.Load() < workers*each/3 {
		time.Sleep(time.Millisecond)
	}
	c.Kill(owner) // the owner of the counter dies while increments run
	wg.Wait()
	c.WaitStable()
	m := mustMap[string, int](t, callers[0], "counters")
	if v, err := m.Get(ctx, "hits"); err != nil || v != workers*each {
		t.Fatalf("counter = %d, %v; want %d (no increment lost or applied twice)", v, err, workers*each)
	}
}
