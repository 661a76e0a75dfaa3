package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
	"github.com/gridmap/gridmap/partition"
)

func withStore(name string, st *memstore.Store, pc mapstore.Config) func(*Config) {
	return func(c *Config) {
		c.Maps = map[string]MapConfig{name: {Store: st, Persistence: pc}}
	}
}

// storeHas waits until the store holds exactly want for every key of want.
func storeHas(t *testing.T, st *memstore.Store, want map[string][]byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		bad := ""
		for k, v := range want {
			got, ok := st.Get([]byte(k))
			if v == nil && ok {
				bad = fmt.Sprintf("%s still stored", k)
			} else if v != nil && string(got) != string(v) {
				bad = fmt.Sprintf("%s = %q, want %q", k, got, v)
			}
			if bad != "" {
				break
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not converge: %s", bad)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWriteThroughFailureLeavesMapUnchanged(t *testing.T) {
	st := memstore.New()
	c := newCluster(t, 3, 1, withStore("wt", st, mapstore.Config{}))
	ctx := context.Background()
	m := mustMap[string, string](t, c.Svc(0), "wt")
	if err := m.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Get([]byte("k")); string(got) != "v1" {
		t.Fatalf("write-through did not store: %q", got)
	}
	st.Down()
	if err := m.Put(ctx, "k", "v2"); !errors.Is(err, ErrStore) {
		t.Fatalf("Put with the store down = %v, want ErrStore", err)
	}
	if _, err := m.Delete(ctx, "k"); !errors.Is(err, ErrStore) {
		t.Fatalf("Delete with the store down = %v, want ErrStore", err)
	}
	if v, _ := m.Get(ctx, "k"); v != "v1" {
		t.Fatalf("map changed by a failed write-through: %q", v)
	}
	st.Up()
	if _, err := m.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Get([]byte("k")); ok {
		t.Fatal("delete not written through")
	}
}

func TestWriteBehindCoalescing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		coalesce mapstore.Coalescing
		want     int
	}{{"on", mapstore.CoalesceOn, 1}, {"off", mapstore.CoalesceOff, 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New()
			c := newCluster(t, 3, 1, withStore("wb", st, mapstore.Config{WriteDelay: time.Hour, Coalesce: tc.coalesce}))
			ctx := context.Background()
			m := mustMap[string, int](t, c.Svc(0), "wb")
			for i := range 1000 {
				if err := m.Put(ctx, "hot", i); err != nil {
					t.Fatal(err)
				}
			}
			if n := st.Count(memstore.OpStore, memstore.OpStoreAll); n != 0 {
				t.Fatalf("%d store calls before the delay", n)
			}
			if err := m.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			calls := st.CallsFor("hot")
			if len(calls) != tc.want {
				t.Fatalf("%d store calls for the key, want %d", len(calls), tc.want)
			}
			for i, call := range calls {
				want := i
				if tc.want == 1 {
					want = 999
				}
				if string(call.Value) != string(mustEncode(t, want)) {
					t.Fatalf("call %d stored %v, want %d (in order)", i, call.Value, want)
				}
			}
		})
	}
}

// writeAll writes n keys through the members round-robin and returns what the store must end
// with.
func writeAll(t *testing.T, c *cluster, name string, n int, round string) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for i := range n {
		m := mustMap[string, string](t, c.Svc(i%len(c.Active)), name)
		k, v := fmt.Sprint("k", i), fmt.Sprint(round, i)
		if err := m.Put(context.Background(), k, v); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		want[k] = []byte(v)
	}
	return want
}

func TestWriteBehindSurvivesOutageFailoverAndMigration(t *testing.T) {
	st := memstore.New()
	c := newCluster(t, 3, 1, withStore("wb", st, mapstore.Config{WriteDelay: 10 * time.Millisecond, RetryInitial: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond}))
	st.Down()
	want := writeAll(t, c, "wb", 300, "a")
	// A member dies while every write is still dirty: its backups' queues take over.
	c.Kill(c.Active[0])
	c.WaitStable()
	// Members join and one leaves: partitions move with their queues.
	c.Start()
	c.Replan(nil)
	c.WaitStable()
	for k, v := range writeAll(t, c, "wb", 100, "b") {
		want[k] = v
	}
	c.Replan([]partition.MemberID{c.Active[0]})
	c.WaitStable()
	if st.Len() != 0 {
		t.Fatalf("store is down but has %d entries", st.Len())
	}
	// The members keep trying (and counting failures) while the store is down.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var storeErrors uint64
		for _, s := range c.Svcs {
			storeErrors += s.PersistenceStats("wb").StoreErrors
		}
		if storeErrors > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no store errors counted during the outage")
		}
		time.Sleep(5 * time.Millisecond)
	}
	st.Up()
	storeHas(t, st, want)
}

func TestWriteBehindBackPressure(t *testing.T) {
	st := memstore.New()
	c := newCluster(t, 1, 0, withStore("bp", st, mapstore.Config{WriteDelay: time.Millisecond, MaxDirtyEntries: 50, RetryInitial: time.Millisecond}))
	st.Down()
	m := mustMap[int, int](t, c.Svc(0), "bp")
	ctx := context.Background()
	for i := range 50 {
		if err := m.Put(ctx, i, i); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := m.Put(short, 999, 1); !errors.Is(err, ErrDirtyLimit) || !errors.Is(err, mapstore.ErrDirtyLimit) {
		t.Fatalf("Put at the dirty limit = %v, want ErrDirtyLimit", err)
	}
	if _, err := m.Get(ctx, 999); !errors.Is(err, ErrStore) {
		t.Fatalf("Get of a missing key with the store down = %v, want ErrStore (read-through)", err)
	}
	n := 0
	for range m.LocalKeys() {
		n++
	}
	if n != 50 {
		t.Fatalf("map has %d entries; the refused write was applied", n)
	}
	// A blocked writer goes on once the store is back.
	done := make(chan error, 1)
	go func() { done <- m.Put(ctx, 1000, 1) }()
	st.Up()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Len() != 51 {
		t.Fatalf("store has %d entries, want 51", st.Len())
	}
}

func TestWriteBehindUnderLoadWithOutage(t *testing.T) {
	st := memstore.New()
	c := newCluster(t, 3, 1, withStore("load", st, mapstore.Config{WriteDelay: 5 * time.Millisecond, RetryInitial: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}))
	ctx := context.Background()
	var mu sync.Mutex
	last := map[string][]byte{}
	var errs []error
	acked := 0
	waitAcked := func(n int, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		mu.Lock()
		target := acked + n
		mu.Unlock()
		for {
			mu.Lock()
			done := acked >= target
			mu.Unlock()
			if done && cond() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("writes stalled")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	storeErrors := func() uint64 {
		var n uint64
		for _, s := range c.Svcs {
			n += s.PersistenceStats("load").StoreErrors
		}
		return n
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		m := mustMap[string, string](t, c.Svc(w%3), "load")
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d-%d", w, i%40), fmt.Sprint(i)
				err := m.Put(ctx, k, v)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					last[k] = []byte(v)
					acked++
				}
				mu.Unlock()
			}
		})
	}
	waitAcked(200, func() bool { return st.Len() > 0 }) // writes flow to the store
	st.Down()
	waitAcked(400, func() bool { return storeErrors() > 0 }) // and go on while it is down
	st.Up()
	waitAcked(200, func() bool { return true })
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d writes failed during the outage, first: %v", len(errs), errs[0])
	}
	storeHas(t, st, last)
}

func TestMemoryBudgetEvictsCleanEntriesOnly(t *testing.T) {
	st := memstore.New()
	const budget = 64 << 10
	c := newCluster(t, 1, 0, func(cfg *Config) {
		cfg.MemoryBudget = budget
		cfg.Maps = map[string]MapConfig{
			"wt":    {Store: st},                                                      // write-through: clean at once
			"dirty": {Store: st, Persistence: mapstore.Config{WriteDelay: time.Hour}}, // never stored during the test
			"plain": {},                                                               // no store: never evicted
		}
	})
	ctx := context.Background()
	wt := mustMap[int, []byte](t, c.Svc(0), "wt")
	dirty := mustMap[int, []byte](t, c.Svc(0), "dirty")
	value := make([]byte, 1024)
	for i := range 20 {
		if err := dirty.Put(ctx, i, value); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 400 {
		if err := wt.Put(ctx, i, value); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Svc(0).memoryUsed() > budget {
		if time.Now().After(deadline) {
			t.Fatalf("memory %d stays above the budget %d", c.Svc(0).memoryUsed(), budget)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Dirty entries were all kept; evicted clean ones read through again.
	local := 0
	for range dirty.LocalKeys() {
		local++
	}
	if local != 20 {
		t.Fatalf("%d of 20 dirty entries left in memory", local)
	}
	loadsBefore := st.Count(memstore.OpLoad)
	for i := range 400 {
		if v, err := wt.Get(ctx, i); err != nil || len(v) != 1024 {
			t.Fatalf("Get %d after eviction = %d bytes, %v", i, len(v), err)
		}
	}
	if st.Count(memstore.OpLoad) == loadsBefore {
		t.Fatal("nothing was evicted and read through")
	}
}

// Eviction racing write-behind flushes never loses an entry from both the map and the store.
func TestEvictionRacingFlushesLosesNothing(t *testing.T) {
	st := memstore.New()
	c := newCluster(t, 2, 1, func(cfg *Config) {
		cfg.MemoryBudget = 32 << 10
		cfg.Maps = map[string]MapConfig{"race": {Store: st, Persistence: mapstore.Config{WriteDelay: time.Millisecond, BatchSize: 7}}}
	})
	ctx := context.Background()
	m := mustMap[int, int](t, c.Svc(0), "race")
	last := map[int]int{}
	for round := range 20 {
		for k := range 100 {
			v := round*1000 + k
			if err := m.Put(ctx, k, v); err != nil {
				t.Fatal(err)
			}
			last[k] = v
		}
	}
	for k, v := range last {
		got, err := m.Get(ctx, k)
		if err != nil || got != v {
			t.Fatalf("key %d = %d, %v; want %d", k, got, err, v)
		}
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for k, v := range last {
		b, ok := st.Get(mustEncode(t, k))
		if !ok || string(b) != string(mustEncode(t, v)) {
			t.Fatalf("store has key %d = %v, %v; want %d", k, b, ok, v)
		}
	}
}

// With many writers at the dirty limit, dirty data stays within the limit plus one batch: every
// writer blocks, then fails with ErrDirtyLimit, and nothing is dropped.
func TestBackPressureBoundsDirtyData(t *testing.T) {
	st := memstore.New()
	const limit, writers = 200, 16
	c := newCluster(t, 3, 1, withStore("bp", st, mapstore.Config{WriteDelay: time.Millisecond, MaxDirtyEntries: limit, RetryInitial: time.Millisecond}))
	st.Down()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	var refused int
	for w := range writers {
		m := mustMap[string, int](t, c.Svc(w%3), "bp")
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("w%d-%d", w, i)
				err := m.Put(ctx, k, i)
				mu.Lock()
				if err == nil {
					acked[k] = true
				}
				mu.Unlock()
				if err != nil {
					if !errors.Is(err, ErrDirtyLimit) {
						t.Errorf("writer %d: %v, want ErrDirtyLimit", w, err)
					}
					mu.Lock()
					refused++
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if refused != writers {
		t.Fatalf("%d of %d writers were refused", refused, writers)
	}
	batch := mapstore.DefaultBatchSize
	for id, s := range c.Svcs {
		_, entries := s.stores["bp"].budget.Usage()
		if entries > limit+int64(batch) {
			t.Fatalf("member %s holds %d dirty entries, limit %d plus one batch of %d", id, entries, limit, batch)
		}
	}
	st.Up()
	m := mustMap[string, int](t, c.Svc(0), "bp")
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for k := range acked {
		if _, ok := st.Get([]byte(k)); !ok {
			t.Fatalf("acknowledged write %s never stored", k)
		}
	}
}
