package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

// Entries that come from the store are Loaded events; entries the memory budget evicts are
// Evicted events, on the owner.
func TestLoadedAndEvictedEvents(t *testing.T) {
	st := memstore.New()
	c := newCluster(t, 1, 0, func(cfg *Config) {
		cfg.MemoryBudget = 16 << 10
		cfg.Maps = map[string]MapConfig{"m": {Store: keyedOnly{st}}} // write-through, no initial load
	})
	ctx := context.Background()
	m := mustMap[int, []byte](t, c.Svc(0), "m")
	var mu sync.Mutex
	kinds := map[listener.Kind]int{}
	h, err := m.AddLocalEntryListener(t.Context(), func(e EntryEvent[int, []byte]) {
		mu.Lock()
		kinds[e.Kind]++
		mu.Unlock()
	}, ListenerOptions[int]{QueueSize: 10000})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	st.Put(mustEncode(t, 1_000_000), make([]byte, 100))
	if _, err := m.Get(ctx, 1_000_000); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := m.Put(ctx, i, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		loaded, evicted, added := kinds[listener.Loaded], kinds[listener.Evicted], kinds[listener.Added]
		mu.Unlock()
		if loaded == 1 && added == 100 && evicted > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events: loaded %d (want 1), added %d (want 100), evicted %d (want > 0)", loaded, added, evicted)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
