package gridmap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/freeport"
	"github.com/gridmap/gridmap/partition"
)

// freeGossipAddr returns a loopback host:port free for both TCP and UDP right now.
func freeGossipAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func testConfig(gossip string, seeds []string, expect int) Config {
	return Config{
		GossipBindAddr: gossip,
		Seeds:          seeds,
		ExpectMembers:  expect,
		PartitionCount: 71,
		Timings:        LocalTimings(),
	}
}

// startCluster starts n members at the same moment and waits until they agree on a settled
// table. Members are killed (not closed) at the end of the test.
func startCluster(t testing.TB, n int, mod func(*Config)) []*Member {
	t.Helper()
	members := startMembers(t, n, mod)
	waitSettled(t, members...)
	return members
}

// startMembers starts n members at the same moment and returns once Start returned for each.
// Members are killed (not closed) at the end of the test.
func startMembers(t testing.TB, n int, mod func(*Config)) []*Member {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = freeGossipAddr(t)
	}
	members := make([]*Member, n)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cfg := testConfig(addrs[i], addrs, n)
			cfg.Name = fmt.Sprintf("m%d", i)
			if mod != nil {
				mod(&cfg)
			}
			members[i], errs[i] = Start(ctx, cfg)
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, m := range members {
			if m != nil {
				m.kill()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	return members
}

// join starts one more member that joins through the seeds of members.
func join(t *testing.T, seedsOf []*Member, mod func(*Config)) *Member {
	t.Helper()
	var seeds []string
	for _, m := range seedsOf {
		seeds = append(seeds, m.GossipAddr())
	}
	cfg := testConfig(freeGossipAddr(t), seeds, 1)
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.kill)
	return m
}

// waitSettled waits until every given member sees the same table, in which every partition has
// an owner among them, the configured number of replicas and no copy pending.
func waitSettled(t testing.TB, members ...*Member) *partition.Table {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	alive := map[partition.MemberID]bool{}
	for _, m := range members {
		alive[m.id] = true
	}
	want := min(members[0].cfg.backups()+1, len(members))
	for {
		tab := members[0].node.Table()
		ok := tab.Epoch > 0
		for _, m := range members[1:] {
			if m.node.Table().Epoch != tab.Epoch {
				ok = false
			}
		}
		for _, a := range tab.Partitions {
			if len(a.Pending) > 0 || len(a.Replicas) != want {
				ok = false
				break
			}
			for _, r := range a.Replicas {
				if !alive[r] {
					ok = false
				}
			}
		}
		if ok {
			return tab
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster did not settle: epoch %d", tab.Epoch)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getMap[K comparable, V any](t testing.TB, m *Member, name string) *dmap.Map[K, V] {
	t.Helper()
	mp, err := GetMap[K, V](m, name)
	if err != nil {
		t.Fatal(err)
	}
	return mp
}

func TestClusterOperations(t *testing.T) {
	members := startCluster(t, 3, nil)
	ctx := context.Background()
	maps := make([]*dmap.Map[string, string], len(members))
	for i, m := range members {
		maps[i] = getMap[string, string](t, m, "ops")
	}
	const n = 300
	for i := range n {
		if err := maps[i%3].Put(ctx, fmt.Sprint("k", i), fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		v, err := maps[(i+1)%3].Get(ctx, fmt.Sprint("k", i))
		if err != nil || v != fmt.Sprint("v", i) {
			t.Fatalf("Get k%d = %q, %v", i, v, err)
		}
	}
	if ok, err := maps[2].PutIfAbsent(ctx, "k1", "x"); ok || err != nil {
		t.Fatalf("PutIfAbsent on existing = %v, %v", ok, err)
	}
	if ok, err := maps[0].ReplaceIfSame(ctx, "k1", "v1", "w1"); !ok || err != nil {
		t.Fatalf("ReplaceIfSame = %v, %v", ok, err)
	}
	if ok, err := maps[1].Delete(ctx, "k2"); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	if _, err := maps[2].Get(ctx, "k2"); !errors.Is(err, dmap.ErrNotFound) {
		t.Fatalf("Get deleted = %v", err)
	}
	if size, err := maps[0].Size(ctx); err != nil || size != n-1 {
		t.Fatalf("Size = %d, %v", size, err)
	}
	local := 0
	for _, mp := range maps {
		for _, err := range mp.LocalKeys() {
			if err != nil {
				t.Fatal(err)
			}
			local++
		}
	}
	if local != n-1 {
		t.Fatalf("LocalKeys summed over members = %d, want %d", local, n-1)
	}
	count := 0
	for _, err := range maps[1].Entries(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		count++
	}
	if count != n-1 {
		t.Fatalf("Entries = %d", count)
	}
	if err := maps[1].Put(ctx, "ttl", "x", dmap.WithTTL(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := maps[0].Get(ctx, "ttl"); errors.Is(err, dmap.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("TTL entry did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBackupsOnDistinctMembers(t *testing.T) {
	members := startCluster(t, 4, func(c *Config) { c.BackupCount = new(2) })
	tab := waitSettled(t, members...)
	owners := map[partition.MemberID]int{}
	for p, a := range tab.Partitions {
		seen := map[partition.MemberID]bool{}
		for _, r := range a.Replicas {
			if seen[r] {
				t.Fatalf("partition %d has %s twice", p, r)
			}
			seen[r] = true
		}
		owners[a.Replicas[0]]++
	}
	lo, hi := tab.Count(), 0
	for _, m := range members {
		lo, hi = min(lo, owners[m.id]), max(hi, owners[m.id])
	}
	if hi-lo > 1 {
		t.Fatalf("owners unbalanced: %v", owners)
	}
}

// loadWriters runs n writers that put increasing values to their own keys through the given
// members and remember the last value acknowledged per key.
type loadWriters[V any] struct {
	value func(key string, seq int) V // the value of a key's write number seq
	mu    sync.Mutex
	acked map[string]int
	ops   int
	errs  []error
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startWriters starts writers of small values: a key's write number seq puts seq.
func startWriters(t *testing.T, n int, via []*Member, name string) *loadWriters[int] {
	return startWritersOf(t, n, via, name, func(_ string, seq int) int { return seq })
}

// largeValue is 20 KiB, large enough for a backup to take it from its own member's copy (see
// dmap's stash) when that member wrote it.
func largeValue(key string, seq int) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "%s=%d;", key, seq), 20<<10/len(fmt.Sprintf("%s=%d;", key, seq)))
}

func startWritersOf[V any](t *testing.T, n int, via []*Member, name string, value func(key string, seq int) V) *loadWriters[V] {
	w := &loadWriters[V]{value: value, acked: map[string]int{}, stop: make(chan struct{})}
	for i := range n {
		mp := getMap[string, V](t, via[i%len(via)], name)
		w.wg.Go(func() {
			for seq := 0; ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", i, seq%64)
				err := mp.Put(context.Background(), key, value(key, seq))
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
	return w
}

func (w *loadWriters[V]) waitOps(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		w.mu.Lock()
		ops := w.ops
		w.mu.Unlock()
		if ops >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acknowledged", ops)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *loadWriters[V]) finish(t *testing.T, check *dmap.Map[string, V]) {
	t.Helper()
	close(w.stop)
	w.wg.Wait()
	if len(w.errs) > 0 {
		t.Fatalf("%d writes failed; first: %v", len(w.errs), w.errs[0])
	}
	for k, seq := range w.acked {
		got, err := check.Get(context.Background(), k)
		if want := w.value(k, seq); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %.40v, %v; want the value of write %d, %.40v", k, got, err, seq, want)
		}
	}
	t.Logf("%d writes acknowledged, %d keys verified", w.ops, len(w.acked))
}

func TestMigrationUnderLoad(t *testing.T) {
	members := startCluster(t, 3, nil)
	// Bulk data makes every copy take a while, so that writes race the copies and hand-offs.
	bulk := getMap[int, []byte](t, members[0], "bulk")
	const bulkN = 5000
	for i := range bulkN {
		if err := bulk.Put(context.Background(), i, make([]byte, 2048)); err != nil {
			t.Fatal(err)
		}
	}
	w := startWriters(t, 16, members[:2], "load")
	large := startWritersOf(t, 4, members[:2], "large", largeValue)
	w.waitOps(t, 500)
	m3 := join(t, members[:1], nil)
	m4 := join(t, members[:1], nil)
	waitSettled(t, members[0], members[1], members[2], m3, m4)
	w.waitOps(t, 2000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := members[2].Close(ctx); err != nil {
		t.Fatalf("graceful close: %v", err)
	}
	waitSettled(t, members[0], members[1], m3, m4)
	w.waitOps(t, 3000)
	w.finish(t, getMap[string, int](t, m4, "load"))
	large.finish(t, getMap[string, []byte](t, m3, "large"))
	if n, err := getMap[int, []byte](t, m3, "bulk").Size(context.Background()); err != nil || n != bulkN {
		t.Fatalf("bulk map has %d entries after the moves, %v; want %d", n, err, bulkN)
	}
}

func TestCrashedMemberIsReplaced(t *testing.T) {
	members := startCluster(t, 4, nil)
	w := startWriters(t, 8, members[:3], "crash")
	w.waitOps(t, 500)
	members[3].kill()
	tab := waitSettled(t, members[:3]...)
	if len(tab.Held(members[3].id)) != 0 {
		t.Fatal("dead member still holds partitions")
	}
	w.waitOps(t, 1500)
	w.finish(t, getMap[string, int](t, members[0], "crash"))
}

// TestPutValueBufferReuse checks that a []byte value belongs to the caller again once Put
// returns, whether the key's owner is the calling member (which keeps a copy) or another one
// (the value travels without a copy on the caller's side).
func TestPutValueBufferReuse(t *testing.T) {
	members := startCluster(t, 3, nil)
	ctx := context.Background()
	mp := getMap[string, []byte](t, members[0], "reuse")
	reader := getMap[string, []byte](t, members[1], "reuse")
	for _, size := range []int{512, 100 << 10} { // a small frame, and one for the bulk lane
		buf := make([]byte, size)
		const n = 60
		for i := range n {
			copy(buf, fmt.Sprintf("value-%d-%04d", size, i))
			if err := mp.Put(ctx, fmt.Sprint("k", size, "-", i), buf); err != nil {
				t.Fatal(err)
			}
			copy(buf, "overwritten") // the caller reuses its buffer at once
		}
		local := 0
		for i := range n {
			k := fmt.Sprint("k", size, "-", i)
			v, err := reader.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("value-%d-%04d", size, i); len(v) != size || string(v[:len(want)]) != want {
				t.Fatalf("%s = %q... (%d bytes), want %q", k, v[:16], len(v), want)
			}
			if p, _ := mp.Partition(k); members[0].node.Table().Owner(p) == members[0].id {
				local++
			}
		}
		if local == 0 || local == n {
			t.Fatalf("%d of %d keys owned by the writer: both cases must be covered", local, n)
		}
	}
}

// TestGetValueIsTheCallers checks that a []byte Get returns a value the caller may modify without
// changing the stored entry, whichever member owns the key.
func TestGetValueIsTheCallers(t *testing.T) {
	members := startCluster(t, 3, nil)
	ctx := context.Background()
	mp := getMap[string, []byte](t, members[0], "owned")
	const n = 60
	for i := range n {
		if err := mp.Put(ctx, fmt.Sprint("k", i), []byte(fmt.Sprintf("value-%04d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		for i := range n {
			v, err := mp.Get(ctx, fmt.Sprint("k", i))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("value-%04d", i); string(v) != want {
				t.Fatalf("k%d = %q, want %q", i, v, want)
			}
			copy(v, "scribbled!") // the caller owns what Get returned
		}
	}
}
