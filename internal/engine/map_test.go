package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/partition"
)

func TestMapOperations(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	a := mustMap[string, string](t, c.Svc(0), "m")
	b := mustMap[string, string](t, c.Svc(1), "m")

	if _, err := a.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
	if err := a.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get(ctx, "k"); err != nil || v != "v1" {
		t.Fatalf("Get from other member = %q, %v", v, err)
	}
	steps := []struct {
		name string
		run  func() (bool, error)
		want bool
	}{
		{"PutIfAbsent existing", func() (bool, error) { return a.PutIfAbsent(ctx, "k", "x") }, false},
		{"PutIfAbsent new", func() (bool, error) { return a.PutIfAbsent(ctx, "k2", "v2") }, true},
		{"Replace existing", func() (bool, error) { return b.Replace(ctx, "k", "v3") }, true},
		{"Replace missing", func() (bool, error) { return b.Replace(ctx, "nope", "v") }, false},
		{"ReplaceIfSame wrong", func() (bool, error) { return a.ReplaceIfSame(ctx, "k", "v1", "v4") }, false},
		{"ReplaceIfSame right", func() (bool, error) { return a.ReplaceIfSame(ctx, "k", "v3", "v4") }, true},
		{"ContainsKey", func() (bool, error) { return b.ContainsKey(ctx, "k") }, true},
		{"Delete", func() (bool, error) { return b.Delete(ctx, "k2") }, true},
		{"Delete again", func() (bool, error) { return b.Delete(ctx, "k2") }, false},
		{"ContainsKey deleted", func() (bool, error) { return a.ContainsKey(ctx, "k2") }, false},
	}
	for _, s := range steps {
		got, err := s.run()
		if err != nil || got != s.want {
			t.Fatalf("%s = %v, %v; want %v", s.name, got, err, s.want)
		}
	}
	if v, _ := a.Get(ctx, "k"); v != "v4" {
		t.Fatalf("after CAS Get = %q", v)
	}
}

func TestSizeClearAndIteration(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	m := mustMap[int, int](t, c.Svc(0), "nums")
	const n = 500
	for i := range n {
		if err := m.Put(ctx, i, i*i); err != nil {
			t.Fatal(err)
		}
	}
	if size, err := m.Size(ctx); err != nil || size != n {
		t.Fatalf("Size = %d, %v", size, err)
	}
	seen := map[int]bool{}
	for e, err := range m.Entries(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Value != e.Key*e.Key || seen[e.Key] {
			t.Fatalf("bad or repeated entry %+v", e)
		}
		seen[e.Key] = true
	}
	if len(seen) != n {
		t.Fatalf("Entries saw %d keys", len(seen))
	}
	local := 0
	for id := range c.Svcs {
		lm := mustMap[int, int](t, c.Svcs[id], "nums")
		for _, err := range lm.LocalKeys() {
			if err != nil {
				t.Fatal(err)
			}
			local++
		}
	}
	if local != n {
		t.Fatalf("LocalKeys over all members = %d, want %d", local, n)
	}
	keys := 0
	for _, err := range m.Keys(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		keys++
	}
	if keys != n {
		t.Fatalf("Keys = %d", keys)
	}
	if err := m.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if size, _ := m.Size(ctx); size != 0 {
		t.Fatalf("Size after Clear = %d", size)
	}
}

func TestTTLExpires(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	m := mustMap[string, []byte](t, c.Svc(0), "ttl")
	if err := m.Put(ctx, "short", []byte("x"), WithTTL(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, "long", []byte("y")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := m.Get(ctx, "short")
		if errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry with TTL still there: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := m.Get(ctx, "long"); err != nil {
		t.Fatal(err)
	}
}

type coKey struct {
	Report string
	Kind   string
}

func (k coKey) PartitionKey() string { return k.Report }

func TestCoKeyedEntriesShareAPartition(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	raw := mustMap[string, string](t, c.Svc(0), "raw")
	proc := mustMap[coKey, string](t, c.Svc(1), "process")
	for i := range 100 {
		id := fmt.Sprintf("report-%d", i)
		p1, _ := raw.Partition(id)
		p2, _ := proc.Partition(coKey{Report: id, Kind: "x"})
		if p1 != p2 {
			t.Fatalf("%s: partitions %d and %d differ", id, p1, p2)
		}
	}
}

func TestBackupsHoldEveryWrite(t *testing.T) {
	for _, backups := range []int{1, 2} {
		t.Run(fmt.Sprint("backups=", backups), func(t *testing.T) {
			c := newCluster(t, 4, backups, nil)
			ctx := context.Background()
			m := mustMap[int, int](t, c.Svc(0), "b")
			for i := range 300 {
				if err := m.Put(ctx, i, i); err != nil {
					t.Fatal(err)
				}
			}
			tab := c.Coord.Table
			for i := range 300 {
				p, _ := m.Partition(i)
				kb, _, _ := m.encodeKey(i)
				reps := tab.Partitions[p].Replicas
				if len(reps) != backups+1 {
					t.Fatalf("partition %d has %d replicas", p, len(reps))
				}
				for _, r := range reps {
					pt := c.Svcs[r].parts[p]
					pt.mu.RLock()
					rec := pt.rs.get("b", string(kb), 0)
					pt.mu.RUnlock()
					if !rec.ok {
						t.Fatalf("key %d missing on replica %s of partition %d", i, r, p)
					}
				}
			}
		})
	}
}

func TestValueTooLarge(t *testing.T) {
	c := newCluster(t, 2, 1, func(cfg *Config) { cfg.MaxValueSize = 1024 })
	m := mustMap[string, []byte](t, c.Svc(0), "big")
	if err := m.Put(context.Background(), "k", make([]byte, 2048)); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("Put oversized = %v, want ErrValueTooLarge", err)
	}
	if err := m.Put(context.Background(), "k", make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
}

// writer puts increasing values for its own keys and records the last acknowledged value.
type writer struct {
	mu    sync.Mutex
	acked map[string]int
	ops   int
	errs  []error
}

func runWriters(ctx context.Context, m func(i int) *tmap[string, int], n int) (*writer, func()) {
	w := &writer{acked: map[string]int{}}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			mp := m(i)
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-k%d", i, seq%50)
				err := mp.Put(ctx, key, seq)
				w.mu.Lock()
				if err != nil {
					w.errs = append(w.errs, err)
				} else {
					w.acked[key] = seq
					w.ops++
				}
				w.mu.Unlock()
			}
		})
	}
	return w, func() { close(stop); wg.Wait() }
}

func (w *writer) verify(t *testing.T, ctx context.Context, m *tmap[string, int]) {
	t.Helper()
	if len(w.errs) > 0 {
		t.Fatalf("%d writes failed, first: %v", len(w.errs), w.errs[0])
	}
	for k, want := range w.acked {
		got, err := m.Get(ctx, k)
		if err != nil || got != want {
			t.Fatalf("key %s = %d, %v; want %d", k, got, err, want)
		}
	}
}

func TestMigrationUnderLoadLosesNothing(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	w, stop := runWriters(ctx, func(i int) *tmap[string, int] { return mustMap[string, int](t, c.Svc(i%3), "load") }, 16)
	waitWrites(t, w, 500)
	c.Start()
	c.Replan(nil)
	c.WaitStable()
	waitWrites(t, w, 2000)
	c.Start()
	c.Replan(nil)
	c.WaitStable()
	leaving := c.Active[0]
	c.Replan([]partition.MemberID{leaving})
	tab := c.WaitStable()
	if len(tab.Held(leaving)) != 0 {
		t.Fatalf("leaving member still holds %v", tab.Held(leaving))
	}
	waitWrites(t, w, 3000)
	stop()
	w.verify(t, ctx, mustMap[string, int](t, c.Svc(1), "load"))
}

func TestFailoverKeepsAcknowledgedWrites(t *testing.T) {
	c := newCluster(t, 4, 1, nil)
	ctx := context.Background()
	w, stop := runWriters(ctx, func(i int) *tmap[string, int] { return mustMap[string, int](t, c.Svc(1+i%3), "fo") }, 8)
	waitWrites(t, w, 500)
	c.Kill(c.Active[0])
	c.WaitStable()
	waitWrites(t, w, 2000)
	stop()
	w.verify(t, ctx, mustMap[string, int](t, c.Svc(0), "fo"))
	tab := c.Coord.Table
	for p, a := range tab.Partitions {
		if len(a.Replicas) != 2 {
			t.Fatalf("partition %d has %d replicas after failover", p, len(a.Replicas))
		}
	}
}

func waitWrites(t *testing.T, w *writer, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		w.mu.Lock()
		got := w.ops
		w.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acknowledged", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAsyncBackupsCatchUp(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *Config) { cfg.AsyncBackups = true })
	ctx := context.Background()
	m := mustMap[int, int](t, c.Svc(0), "async")
	const n = 400
	for i := range n {
		if err := m.Put(ctx, i, i); err != nil {
			t.Fatal(err)
		}
	}
	// Every backup converges to the owner's contents, in order (the last value wins).
	for i := range n {
		if err := m.Put(ctx, i, i+1); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		missing := 0
		tab := c.Coord.Table
		for i := range n {
			p, _ := m.Partition(i)
			kb, _, _ := m.encodeKey(i)
			for _, r := range tab.Partitions[p].Replicas[1:] {
				pt := c.Svcs[r].parts[p]
				pt.mu.RLock()
				rec := pt.rs.get("async", string(kb), 0)
				pt.mu.RUnlock()
				if !rec.ok || string(rec.value) != string(mustEncode(t, i+1)) {
					missing++
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backup entries still stale", missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Kill(c.Active[1])
	c.WaitStable()
	for i := range n {
		if v, err := m.Get(ctx, i); err != nil || v != i+1 {
			t.Fatalf("after failover key %d = %d, %v", i, v, err)
		}
	}
}

func mustEncode[V any](t *testing.T, v V) []byte {
	t.Helper()
	b, err := testCodec[V]{}.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// With B backups, any B members may die at once without losing an acknowledged write.
func TestBackupsSurviveSimultaneousDeaths(t *testing.T) {
	c := newCluster(t, 5, 2, nil)
	ctx := context.Background()
	m := mustMap[int, int](t, c.Svc(0), "b2")
	const n = 500
	for i := range n {
		if err := m.Put(ctx, i, i*7); err != nil {
			t.Fatal(err)
		}
	}
	c.Kill(c.Active[0], c.Active[1])
	c.WaitStable()
	m = mustMap[int, int](t, c.Svc(0), "b2") // a survivor
	for i := range n {
		if v, err := m.Get(ctx, i); err != nil || v != i*7 {
			t.Fatalf("key %d after two simultaneous deaths = %d, %v", i, v, err)
		}
	}
	for p, a := range c.Coord.Table.Partitions {
		if len(a.Replicas) != 3 {
			t.Fatalf("partition %d has %d replicas after restoration, want 3", p, len(a.Replicas))
		}
	}
}
