package gridmap

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

// waitStoreHas waits (up to d) until the store holds exactly want[k] under every key k of want.
func waitStoreHas(t *testing.T, st *memstore.Store, want map[string]string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		bad, missing := "", 0
		for k, v := range want {
			got, ok := st.Get([]byte(k))
			if !ok || string(got) != v {
				missing++
				if bad == "" {
					bad = fmt.Sprintf("%s = %q (stored %v), want %q", k, got, ok, v)
				}
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not converge within %v: %d of %d keys wrong, e.g. %s", d, missing, len(want), bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withWriteBehind configures map "wb" of every member as write-behind into st.
func withWriteBehind(st *memstore.Store, pc mapstore.Config) func(*Config) {
	return func(c *Config) {
		c.Maps = map[string]dmap.MapConfig{"wb": {Store: st, Persistence: pc}}
	}
}

// storeContents returns every key and value of st.
func storeContents(st *memstore.Store) map[string]string {
	out := map[string]string{}
	for _, k := range st.Keys() {
		if v, ok := st.Get([]byte(k)); ok {
			out[k] = string(v)
		}
	}
	return out
}

// mapContents returns every entry of the map, read through m.
func mapContents(t *testing.T, m *Member, name string) map[string]string {
	t.Helper()
	mp, err := GetMap[string, string](m, name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]string{}
	for e, err := range mp.Entries(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		out[e.Key] = e.Value
	}
	return out
}

// diff describes the first differences between two key-value sets ("" when equal).
func diff(got, want map[string]string) string {
	var out []string
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			out = append(out, fmt.Sprintf("%s = %q (present %v), want %q", k, g, ok, v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s = %q, want absent", k, v))
		}
	}
	slices.Sort(out)
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("... %d differences", len(out)))
	}
	return strings.Join(out, "; ")
}

// TestCloseFlushes: with a write delay of an hour nothing is stored on its own; closing the
// last member stores every write (and every delete) before Close returns. With 3 members closed
// one by one, the first two hand their queues to the others and the last one stores them all.
func TestCloseFlushes(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("members=%d", n), func(t *testing.T) {
			st := memstore.New()
			want := map[string]string{}
			for i := range 50 { // stored before; half of them deleted through the map
				k := fmt.Sprint("old", i)
				st.Put([]byte(k), []byte("stale"))
				want[k] = "stale"
			}
			members := startCluster(t, n, withWriteBehind(st, mapstore.Config{WriteDelay: time.Hour}))
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			for i := range 500 {
				mp, err := GetMap[string, string](members[i%n], "wb")
				if err != nil {
					t.Fatal(err)
				}
				k, v := fmt.Sprint("k", i%400), fmt.Sprint("v", i)
				if err := mp.Put(ctx, k, v); err != nil {
					t.Fatal(err)
				}
				want[k] = v
				if i < 50 && i%2 == 0 {
					if _, err := mp.Delete(ctx, fmt.Sprint("old", i)); err != nil {
						t.Fatal(err)
					}
					delete(want, fmt.Sprint("old", i))
				}
			}
			if c := st.Count(memstore.OpStore, memstore.OpStoreAll, memstore.OpDelete, memstore.OpDeleteAll); c != 0 {
				t.Fatalf("%d store calls before the delay", c)
			}
			for i, m := range members {
				if err := m.Close(ctx); err != nil {
					// Known failure (HEAD e5e92bc): Member.Close runs FlushLocal after node.Leave
					// closed the control node, so every partition's flush is refused for want of
					// a lease and the last member's dirty entries are never stored.
					first, _, _ := strings.Cut(err.Error(), "\n")
					t.Errorf("close member %d of %d: %s (%d lines)", i, n, first, strings.Count(err.Error(), "\n")+1)
				}
				if rest := members[i+1:]; len(rest) > 0 {
					waitSettled(t, rest...)
					if got := mapContents(t, rest[0], "wb"); len(got) != 400+25 {
						t.Fatalf("after closing member %d the map has %d entries, want %d", i, len(got), 425)
					}
				}
			}
			if d := diff(storeContents(st), want); d != "" {
				t.Fatalf("after Close the store differs from the writes: %s", d)
			}
		})
	}
}

// TestStoreOutageUnderLoad: writers keep putting and deleting while the store goes down and
// comes back. No writer sees an error (the dirty data stays far below its limit); afterwards the
// map holds each key's last write and Flush makes the store converge to the map's contents.
func TestStoreOutageUnderLoad(t *testing.T) {
	st := memstore.New()
	members := startCluster(t, 3, withWriteBehind(st, mapstore.Config{
		WriteDelay: 20 * time.Millisecond, RetryInitial: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond}))
	const writers, keysPerWriter = 4, 100
	var ops, errs atomic.Int64
	var firstErr atomic.Pointer[error]
	last := make([]map[string]string, writers) // per writer: key -> last value ("" deleted)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		last[w] = map[string]string{}
		mp, err := GetMap[string, string](members[w%3], "wb")
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				k := fmt.Sprintf("w%d-k%d", w, (i*37)%keysPerWriter)
				var err error
				if i%7 == 3 {
					_, err = mp.Delete(ctx, k)
					last[w][k] = ""
				} else {
					v := fmt.Sprintf("w%d-%d", w, i)
					err = mp.Put(ctx, k, v)
					last[w][k] = v
				}
				cancel()
				ops.Add(1)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	stopped := false
	stopWriters := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopWriters()
	waitOps := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for ops.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("writers made %d operations, waited for %d", ops.Load(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitOps(300)
	st.Down()
	outage := ops.Load()
	waitOps(outage + 1500)
	failed := 0
	for _, c := range st.Calls() {
		if c.Err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no store call failed during the outage")
	}
	st.Up()
	waitOps(ops.Load() + 300)
	stopWriters()
	if n := errs.Load(); n != 0 {
		t.Fatalf("%d of %d writes failed, first: %v", n, ops.Load(), *firstErr.Load())
	}
	want := map[string]string{}
	for _, l := range last {
		for k, v := range l {
			if v != "" {
				want[k] = v
			}
		}
	}
	if d := diff(mapContents(t, members[0], "wb"), want); d != "" {
		t.Fatalf("the map differs from the last writes: %s", d)
	}
	mp, _ := GetMap[string, string](members[1], "wb")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d := diff(storeContents(st), want); d != "" {
		t.Fatalf("after Flush the store differs from the map: %s", d)
	}
	for _, m := range members {
		if ps := m.Maps().PersistenceStats("wb"); ps.DirtyEntries != 0 {
			t.Fatalf("member %s still has %d dirty entries after Flush", m.ID(), ps.DirtyEntries)
		}
	}
	t.Logf("%d writes, %d during the outage; %d failed store calls", ops.Load(), 1500, failed)
}
