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
)

// keyedOnly hides a store's key listing (no initial load), so that every read is a miss.
type keyedOnly struct{ st *memstore.Store }

func (k keyedOnly) Load(ctx context.Context, key []byte) ([]byte, bool, error) {
	return k.st.Load(ctx, key)
}
func (k keyedOnly) Store(ctx context.Context, key, value []byte) error {
	return k.st.Store(ctx, key, value)
}
func (k keyedOnly) Delete(ctx context.Context, key []byte) error { return k.st.Delete(ctx, key) }

func TestReadThroughLoadsOnce(t *testing.T) {
	st := memstore.New()
	st.Put([]byte("cold"), []byte("from the store"))
	st.SetLatency(20 * time.Millisecond) // concurrent misses overlap
	c := newCluster(t, 3, 1, func(cfg *Config) {
		cfg.Maps = map[string]MapConfig{"rt": {Store: keyedOnly{st}, Persistence: mapstore.Config{WriteDelay: time.Hour}}}
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 32 {
		m := mustMap[string, string](t, c.Svc(i%3), "rt")
		wg.Go(func() {
			v, err := m.Get(ctx, "cold")
			if err != nil || v != "from the store" {
				t.Errorf("Get = %q, %v", v, err)
			}
		})
	}
	wg.Wait()
	if n := len(st.CallsFor("cold")); n != 1 {
		t.Fatalf("%d Load calls for 32 concurrent misses, want 1", n)
	}
	m := mustMap[string, string](t, c.Svc(0), "rt")
	if _, err := m.Get(ctx, "absent"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a key the store lacks = %v", err)
	}
	// The loaded entry is clean (not written back) and backed up: the owner's failure keeps it.
	p, _ := m.Partition("cold")
	c.Kill(c.Coord.Table.Owner(p))
	c.WaitStable()
	loads := st.Count(memstore.OpLoad)
	m = mustMap[string, string](t, c.Svc(0), "rt") // a survivor
	if v, err := m.Get(ctx, "cold"); err != nil || v != "from the store" {
		t.Fatalf("after failover Get = %q, %v", v, err)
	}
	if st.Count(memstore.OpLoad) != loads {
		t.Fatal("the loaded entry was not backed up: loaded again after failover")
	}
	if n := st.Count(memstore.OpStore, memstore.OpStoreAll); n != 0 {
		t.Fatalf("a loaded (clean) entry was written back: %d store calls", n)
	}
}

func TestPendingDeleteIsNotReadThrough(t *testing.T) {
	st := memstore.New()
	c := newCluster(t, 2, 1, withStore("pd", st, mapstore.Config{WriteDelay: time.Hour}))
	ctx := context.Background()
	m := mustMap[string, string](t, c.Svc(0), "pd")
	if err := m.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after a delete not yet stored = %v; the store's old value came back", err)
	}
}

func TestInitialLoadCoversEveryKeyOnce(t *testing.T) {
	st := memstore.New()
	const n = 1000
	for i := range n {
		st.Put([]byte(fmt.Sprint("key-", i)), []byte(fmt.Sprint("value-", i)))
	}
	c := newCluster(t, 3, 1, withStore("init", st, mapstore.Config{WriteDelay: time.Hour, InitialLoad: mapstore.LoadLazy}))
	ctx := context.Background()
	// Every member uses the map at the same moment: each triggers the cluster-wide load.
	var wg sync.WaitGroup
	for i := range 3 {
		m := mustMap[string, string](t, c.Svc(i), "init")
		wg.Go(func() {
			if _, err := m.Get(ctx, "key-1"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	loaded := map[string]int{}
	for _, call := range st.Calls() {
		if call.Op == memstore.OpLoad || call.Op == memstore.OpLoadAll {
			loaded[call.Key]++
		}
	}
	for i := range n {
		if k := fmt.Sprint("key-", i); loaded[k] != 1 {
			t.Fatalf("%s loaded %d times", k, loaded[k])
		}
	}
	m := mustMap[string, string](t, c.Svc(0), "init")
	if size, err := m.Size(ctx); err != nil || size != n {
		t.Fatalf("Size after the initial load = %d, %v", size, err)
	}
	// A member that joins later loads nothing again.
	before := len(st.Calls())
	c.Start()
	c.Replan(nil)
	c.WaitStable()
	late := mustMap[string, string](t, c.Svc(3), "init")
	if _, err := late.Get(ctx, "key-2"); err != nil {
		t.Fatal(err)
	}
	for _, call := range st.Calls()[before:] {
		if call.Op == memstore.OpLoad || call.Op == memstore.OpLoadAll {
			t.Fatalf("a late member loaded %s again", call.Key)
		}
	}
}

func TestEagerInitialLoadHappensAtCreation(t *testing.T) {
	st := memstore.New()
	for i := range 200 {
		st.Put([]byte(fmt.Sprint("key-", i)), []byte("v"))
	}
	c := newCluster(t, 3, 1, withStore("eager", st, mapstore.Config{InitialLoad: mapstore.LoadEager}))
	mustMap[string, string](t, c.Svc(1), "eager") // creating the view loads the whole map
	held := 0
	for _, s := range c.Svcs {
		m := mustMap[string, string](t, s, "eager")
		for range m.LocalKeys() { // local memory only: no read-through
			held++
		}
	}
	if held != 200 {
		t.Fatalf("after creation the owners hold %d of 200 entries", held)
	}
	loads := 0
	for _, call := range st.Calls() {
		if call.Op == memstore.OpLoad || call.Op == memstore.OpLoadAll {
			loads++
		}
	}
	if loads != 200 {
		t.Fatalf("%d keys loaded for 200 entries", loads)
	}
}
