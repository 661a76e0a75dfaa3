package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/internal/replicadisk"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// newDiskCluster is newCluster with a data folder per member, under dir (members started
// later, and a cluster started again on the same dir, get folders of their own: m00, m01...).
func newDiskCluster(t testing.TB, dir string, n, backups int, mod func(*Config)) *cluster {
	t.Helper()
	cfg := Config{ExpiryInterval: 20 * time.Millisecond, OperationTimeout: 20 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c := &cluster{cfg: cfg}
	c.Cluster = enginetest.NewCluster(t, n, enginetest.Config[*Service]{
		Partitions: testPartitions,
		Plan:       partition.PlanConfig{Backups: backups, RecreateLost: true},
		Start: func(m enginetest.Member) (*Service, error) {
			d, err := replicadisk.Open(filepath.Join(dir, string(m.ID)))
			if err != nil {
				return nil, err
			}
			cfg := c.cfg
			cfg.Disk = d
			s, err := NewService(cfg, m.Node, m.Caller, m.Server)
			if err != nil {
				d.Close()
			}
			return s, err
		},
		Stop: func(s *Service) {
			s.Close()
			s.cfg.Disk.Close()
		},
	})
	return c
}

// pagedCount counts the paged-out entries member s holds, as owner or backup.
func pagedCount(s *Service) int {
	n := 0
	for _, p := range s.parts {
		p.mu.RLock()
		n += p.rs.paged
		p.mu.RUnlock()
	}
	return n
}

// checkPagedCounts checks, on every member, the counts of paged-out entries (the stores', the
// tables', Stats) against the entries marked paged out, and the memory account against the
// records.
func checkPagedCounts(t *testing.T, c *cluster) {
	t.Helper()
	for _, id := range c.Active {
		s := c.Svcs[id]
		marked, counted, tables := 0, 0, 0
		var bytes int64
		for _, p := range s.parts {
			p.mu.RLock()
			counted += p.rs.paged
			var rsBytes int64
			for _, et := range p.rs.maps {
				tables += et.paged
				for r := range et.all() {
					if r.paged {
						marked++
					}
					rsBytes += recordSize(r)
				}
			}
			if rsBytes != p.rs.bytes {
				t.Errorf("%s partition %d: records of %d bytes, counted %d", id, p.id, rsBytes, p.rs.bytes)
			}
			bytes += rsBytes
			p.mu.RUnlock()
		}
		st := s.Stats()
		stats := 0
		for _, ms := range st.Maps {
			stats += ms.OwnedPaged + ms.BackupPaged
		}
		if counted != marked || tables != marked || stats != marked {
			t.Errorf("%s: %d entries paged out, counted %d by the stores, %d by the tables, %d by Stats", id, marked, counted, tables, stats)
		}
	}
}

// pagingValue is key i's value of version v: large enough that values dominate memory, and
// different for every key and version.
func pagingValue(i, v int) []byte {
	b := bytes.Repeat([]byte{byte(i), byte(v)}, 1024)
	return fmt.Appendf(b, "%d/%d", i, v)
}

// waitWithinBudget waits until every member's memory is within its budget.
func waitWithinBudget(t *testing.T, c *cluster, budget int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		over := ""
		for _, id := range c.Active {
			if u := c.Svcs[id].MemoryUsed(); u > budget {
				over = fmt.Sprintf("%s uses %d", id, u)
			}
		}
		if over == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory stays above the budget %d: %s", budget, over)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAll reads every key of want (nil: deleted) through member s.
func checkAll(t *testing.T, m *tmap[int, []byte], want map[int][]byte) {
	t.Helper()
	ctx := context.Background()
	for k, v := range want {
		got, err := m.Get(ctx, k)
		switch {
		case v == nil && !errors.Is(err, ErrNotFound):
			t.Fatalf("Get %d of a deleted key = %d bytes, %v", k, len(got), err)
		case v != nil && (err != nil || !bytes.Equal(got, v)):
			t.Fatalf("Get %d = %d bytes (%.20q), %v; want %d bytes (%.20q)", k, len(got), got, err, len(v), v)
		}
	}
	n := 0
	for _, v := range want {
		if v != nil {
			n++
		}
	}
	if size, err := m.Size(ctx); err != nil || size != n {
		t.Fatalf("Size = %d, %v; want %d", size, err, n)
	}
}

// A store-less map on members with a data folder, written to several times their memory budget:
// its entries are paged out on owners and backups, every write is accepted, and every key reads
// its last value; overwrites, deletes, conditional replaces and expiry of paged-out entries are
// exact.
func TestPagingHoldsMoreThanMemory(t *testing.T) {
	const budget = 256 << 10
	c := newDiskCluster(t, t.TempDir(), 3, 1, func(cfg *Config) { cfg.MemoryBudget = budget })
	ctx := context.Background()
	m := mustMap[int, []byte](t, c.Svc(0), "crashes")
	want := map[int][]byte{}
	const keys = 1200 // about 2.5 MiB of values, twice over with the backups: 3 members of 256 KiB
	for i := range keys {
		v := pagingValue(i, 0)
		if err := m.Put(ctx, i, v); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		want[i] = v
	}
	waitWithinBudget(t, c, budget)
	paged := 0
	for _, id := range c.Active {
		paged += pagedCount(c.Svcs[id])
	}
	if paged < keys {
		t.Fatalf("%d entries paged out on the 3 members, want most of the %d owned and %d backed up", paged, keys, keys)
	}
	checkAll(t, m, want)

	// Overwrites, deletes and conditional replaces of paged-out entries, then expiry.
	for i := 0; i < keys; i += 3 {
		v := pagingValue(i, 1)
		if err := m.Put(ctx, i, v); err != nil {
			t.Fatal(err)
		}
		want[i] = v
	}
	for i := 1; i < keys; i += 3 {
		if ok, err := m.Delete(ctx, i); err != nil || !ok {
			t.Fatalf("Delete %d = %v, %v", i, ok, err)
		}
		want[i] = nil
	}
	for i := 2; i < keys; i += 30 {
		if ok, err := m.ReplaceIfSame(ctx, i, pagingValue(i, 9), pagingValue(i, 2)); err != nil || ok {
			t.Fatalf("ReplaceIfSame %d with a wrong old value = %v, %v", i, ok, err)
		}
		if ok, err := m.ReplaceIfSame(ctx, i, want[i], pagingValue(i, 2)); err != nil || !ok {
			t.Fatalf("ReplaceIfSame %d = %v, %v", i, ok, err)
		}
		want[i] = pagingValue(i, 2)
	}
	waitWithinBudget(t, c, budget)
	checkAll(t, m, want)
	checkPagedCounts(t, c)

	// Entries written with a TTL, paged out, then expired: gone, although the folder keeps them.
	for i := keys; i < keys+200; i++ {
		if err := m.Put(ctx, i, pagingValue(i, 0), WithTTL(300*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := 0
		for i := keys; i < keys+200; i++ {
			if ok, err := m.ContainsKey(ctx, i); err != nil {
				t.Fatal(err)
			} else if ok {
				n++
			}
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries with a TTL still there", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkAll(t, m, want)
}

// fillPaged writes keys entries to m and waits until the members are within budget, most
// entries paged out; it returns what each key holds.
func fillPaged(t *testing.T, c *cluster, m *tmap[int, []byte], keys int, budget int64) map[int][]byte {
	t.Helper()
	ctx := context.Background()
	want := map[int][]byte{}
	for i := range keys {
		v := pagingValue(i, 0)
		if err := m.Put(ctx, i, v); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		want[i] = v
	}
	waitWithinBudget(t, c, budget)
	for _, id := range c.Active {
		if pagedCount(c.Svcs[id]) == 0 {
			t.Fatalf("member %s paged nothing out", id)
		}
	}
	return want
}

// A migration (a member joins) and a failover (an owner is killed) while most entries are paged
// out: the copies carry the paged-out values, read from the senders' folders, and every key
// reads its last value on its new owner; the receivers page out again under their own budget.
func TestPagingMigrationAndFailover(t *testing.T) {
	const budget = 256 << 10
	c := newDiskCluster(t, t.TempDir(), 3, 1, func(cfg *Config) { cfg.MemoryBudget = budget })
	m := mustMap[int, []byte](t, c.Svc(2), "crashes")
	want := fillPaged(t, c, m, 1000, budget)

	joiner := c.Start()
	c.Replan(nil)
	c.WaitStable()
	checkAll(t, m, want)
	waitWithinBudget(t, c, budget)
	if pagedCount(joiner) == 0 {
		t.Fatal("the joiner paged nothing out of the copies it received")
	}
	owned := 0
	table, _ := c.Coord.Watch()
	for _, p := range joiner.parts {
		if table.Owner(p.id) == joiner.self {
			owned++
		}
	}
	if owned == 0 {
		t.Fatal("the joiner owns no partition")
	}

	// Kill the first member: its backups take its partitions over from their folders' values,
	// and resync new backups from them.
	ctx := context.Background()
	for i := 0; i < 1000; i += 7 {
		v := pagingValue(i, 3)
		if err := m.Put(ctx, i, v); err != nil {
			t.Fatal(err)
		}
		want[i] = v
	}
	c.Kill(c.Active[0])
	c.WaitStable()
	checkAll(t, m, want)
	// And once more, so that the partitions resynced from paged-out values are read too.
	c.Kill(c.Active[0])
	c.WaitStable()
	checkAll(t, m, want)
	checkPagedCounts(t, c)
}

// A cluster stopped while most entries are paged out starts again on its folders with every
// key, and pages out again.
func TestPagingRestart(t *testing.T) {
	const budget = 256 << 10
	dir := t.TempDir()
	mod := func(cfg *Config) { cfg.MemoryBudget = budget }
	c := newDiskCluster(t, dir, 3, 1, mod)
	m := mustMap[int, []byte](t, c.Svc(0), "crashes")
	want := fillPaged(t, c, m, 1000, budget)
	if err := m.Flush(context.Background()); err != nil { // syncs every folder
		t.Fatal(err)
	}
	for _, id := range c.Active {
		c.Net.SetDown(string(id), true)
		s := c.Svcs[id]
		s.Close()
		s.cfg.Disk.Close()
	}

	c2 := newDiskCluster(t, dir, 3, 1, mod)
	m2 := mustMap[int, []byte](t, c2.Svc(1), "crashes")
	checkAll(t, m2, want)
	waitWithinBudget(t, c2, budget)
	for _, id := range c2.Active {
		if pagedCount(c2.Svcs[id]) == 0 {
			t.Fatalf("member %s paged nothing out after the restart", id)
		}
	}
}

// Paging out is not an eviction for listeners (no Evicted event); the old values of paged-out
// entries that are overwritten, deleted or cleared are told, read from the folder; a scan reads
// paged-out values.
func TestPagingEventsAndScans(t *testing.T) {
	const budget = 128 << 10
	c := newDiskCluster(t, t.TempDir(), 1, 0, func(cfg *Config) { cfg.MemoryBudget = budget })
	ctx := context.Background()
	m := mustMap[int, []byte](t, c.Svc(0), "crashes")
	var mu sync.Mutex
	var events []EntryEvent[int, []byte]
	h, err := m.AddLocalEntryListener(t.Context(), func(e EntryEvent[int, []byte]) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}, ListenerOptions[int]{QueueSize: 10000, IncludeValues: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	const keys = 300
	want := fillPaged(t, c, m, keys, budget)
	got := 0
	for e, err := range m.Entries(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.Value, want[e.Key]) {
			t.Fatalf("scanned %d = %.20q, want %.20q", e.Key, e.Value, want[e.Key])
		}
		got++
	}
	if got != keys {
		t.Fatalf("scanned %d entries, want %d", got, keys)
	}
	for i := range 100 {
		if err := m.Put(ctx, i, pagingValue(i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 100; i < 150; i++ {
		if _, err := m.Delete(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	old := map[listener.Kind]int{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n == keys+100+keys { // added, updated, removed (deleted or cleared)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events, want %d", n, keys+100+keys)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range events {
		switch e.Kind {
		case listener.Added:
		case listener.Updated, listener.Removed:
			if !bytes.Equal(e.OldValue, want[e.Key]) {
				t.Fatalf("%v event of %d: old value %.20q, want %.20q", e.Kind, e.Key, e.OldValue, want[e.Key])
			}
			if e.Kind == listener.Updated {
				want[e.Key] = pagingValue(e.Key, 1)
			}
		default:
			t.Fatalf("unexpected %v event of %d", e.Kind, e.Key)
		}
		old[e.Kind]++
	}
	if old[listener.Updated] != 100 || old[listener.Removed] != keys {
		t.Fatalf("events: %v", old)
	}
}

// A read of a key whose paged-out value the pending write (not yet acknowledged by its backup)
// removed waits for that write to settle: the folder no longer holds the value it should answer
// with, and answering the write's outcome before it is acknowledged would show a write that
// could still die with the owner.
func TestPagingReadWaitsForPendingWrite(t *testing.T) {
	const budget = 128 << 10
	c := newDiskCluster(t, t.TempDir(), 2, 1, func(cfg *Config) { cfg.MemoryBudget = budget })
	ctx := context.Background()
	owner := c.Svc(0)
	m := mustMap[int, []byte](t, owner, "crashes")
	want := fillPaged(t, c, m, 400, budget)
	// A key the owner holds paged out.
	key, part := -1, partition.ID(0)
	table, _ := c.Coord.Watch()
	for k := range want {
		p, _ := m.Partition(k)
		if table.Owner(p) != owner.self {
			continue
		}
		pt := owner.parts[p]
		pt.mu.RLock()
		r := pt.rs.lookup("crashes", string(mustEncode(t, k)))
		pt.mu.RUnlock()
		if r.paged {
			key, part = k, p
			break
		}
	}
	if key < 0 {
		t.Fatal("the owner has no paged-out entry")
	}

	release := make(chan struct{})
	var held atomic.Bool
	c.Net.SetAnswered(func(from, to string, typ transport.MsgType) bool {
		if typ == msgBackup && from == string(owner.self) && held.CompareAndSwap(false, true) {
			<-release
		}
		return false
	})
	deleted := make(chan error, 1)
	go func() {
		_, err := m.Delete(ctx, key)
		deleted <- err
	}()
	pt := owner.parts[part]
	enginetest.Eventually(t, 10*time.Second, "the delete to be pending", func() bool {
		pt.mu.RLock()
		defer pt.mu.RUnlock()
		return pt.pending != nil
	})
	req := &opRequest{Kind: opGet, Map: "crashes", Key: mustEncode(t, key), Part: int32(part)}
	if _, wait := owner.readOnce(pt, req, true); !wait {
		t.Fatal("a read of the pending delete's paged-out entry did not wait for it")
	}
	read := make(chan opResponse, 1)
	go func() { read <- owner.read(pt, req) }()
	close(release)
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if resp := <-read; resp.Status != statusNotFound {
		t.Fatalf("read after the delete settled: status %v, %d bytes; want not found", resp.Status, len(resp.Value))
	}
	c.Net.SetAnswered(nil)
}

// BenchmarkPaging measures, on one member with a data folder, gets of 4 KiB values held in
// memory and paged out (read back from the folder), and puts overwriting 2048 keys with 4 KiB
// values with memory to spare and with the budget full (8 MiB of values in 1 MiB: each put
// grows memory by its value, and waits when the evictor has not paged out others yet).
//
//	go test -run x -bench BenchmarkPaging -count 6 ./internal/engine/
func BenchmarkPaging(b *testing.B) {
	const valueSize = 4 << 10
	value := make([]byte, valueSize)
	ctx := context.Background()
	for _, setup := range []struct {
		name   string
		budget int64
	}{{"memory", 1 << 30}, {"paged", 1 << 20}} {
		b.Run(setup.name, func(b *testing.B) {
			c := newDiskCluster(b, b.TempDir(), 1, 0, func(cfg *Config) { cfg.MemoryBudget = setup.budget })
			s := c.Svc(0)
			m, err := newTMap[int, []byte](s, "bench")
			if err != nil {
				b.Fatal(err)
			}
			const keys = 2048 // 8 MiB of values
			for k := range keys {
				if err := m.Put(ctx, k, value); err != nil {
					b.Fatal(err)
				}
			}
			// The keys whose values are where this case wants them.
			var gets []int
			for k := range keys {
				p, _ := m.Partition(k)
				pt := s.parts[p]
				pt.mu.RLock()
				r := pt.rs.lookup("bench", string(mustEncodeB(b, k)))
				pt.mu.RUnlock()
				if r.paged == (setup.budget < keys*valueSize) {
					gets = append(gets, k)
				}
			}
			if len(gets) < keys/2 {
				b.Fatalf("only %d of %d keys are where the case wants them", len(gets), keys)
			}
			b.Run("get", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if v, err := m.Get(ctx, gets[i%len(gets)]); err != nil || len(v) != valueSize {
						b.Fatal(len(v), err)
					}
				}
			})
			b.Run("put", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if err := m.Put(ctx, i%keys, value); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func mustEncodeB[V any](b *testing.B, v V) []byte {
	b.Helper()
	out, err := testCodec[V]{}.Encode(v)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// A write served on the connection's reader that would read a paged-out value from the data
// folder (a conditional replace, or an overwrite whose listeners get the old value) is left to
// the ordinary path, which may block; other writes of paged-out keys are not.
func TestPagingInlineWriteDeclines(t *testing.T) {
	const budget = 128 << 10
	c := newDiskCluster(t, t.TempDir(), 1, 0, func(cfg *Config) { cfg.MemoryBudget = budget })
	ctx := context.Background()
	s := c.Svc(0)
	m := mustMap[int, []byte](t, s, "crashes")
	want := fillPaged(t, c, m, 300, budget)
	key := -1
	for k := range want {
		p, _ := m.Partition(k)
		pt := s.parts[p]
		pt.mu.RLock()
		paged := pt.rs.lookup("crashes", string(mustEncode(t, k))).paged
		pt.mu.RUnlock()
		if paged {
			key = k
			break
		}
	}
	if key < 0 {
		t.Fatal("no paged-out entry")
	}
	p, _ := m.Partition(key)
	pt := s.parts[p]
	declines := func(kind opKind) bool {
		iw := &inlineWrite{s: s, req: opRequest{Kind: kind, Map: "crashes", Key: mustEncode(t, key),
			Value: mustEncode(t, pagingValue(key, 1)), Expect: mustEncode(t, want[key])}}
		pt.mu.RLock()
		defer pt.mu.RUnlock()
		w := &writeBatch{rs: pt.rs, now: s.now(), events: s.events}
		iw.decide(w)
		return w.declined
	}
	if !declines(opReplaceIfSame) {
		t.Fatal("an inline ReplaceIfSame of a paged-out entry was not declined")
	}
	if declines(opPut) {
		t.Fatal("an inline Put of a paged-out entry without listeners was declined")
	}
	h, err := m.AddLocalEntryListener(t.Context(), func(EntryEvent[int, []byte]) {}, ListenerOptions[int]{IncludeValues: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	if !declines(opPut) {
		t.Fatal("an inline Put of a paged-out entry with a listener was not declined")
	}
	if ok, err := m.ReplaceIfSame(ctx, key, want[key], pagingValue(key, 1)); err != nil || !ok {
		t.Fatalf("ReplaceIfSame = %v, %v", ok, err)
	}
}

// Writers, readers and the evictor at once, on owners and backups paging out: every read of a
// key a writer wrote returns that writer's last acknowledged value for it (each writer owns its
// keys), and the map ends as the writers left it.
func TestPagingConcurrentWritersAndReaders(t *testing.T) {
	const budget = 128 << 10
	c := newDiskCluster(t, t.TempDir(), 3, 1, func(cfg *Config) { cfg.MemoryBudget = budget })
	ctx := context.Background()
	const writers, keysEach, rounds = 4, 60, 5
	finals := make([]map[int][]byte, writers)
	var wg sync.WaitGroup
	for w := range writers {
		m := mustMap[int, []byte](t, c.Svc(w%3), "crashes")
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			last := map[int][]byte{}
			for round := range rounds {
				for i := range keysEach {
					k := w*keysEach + i
					var err error
					switch rng.IntN(6) {
					case 0:
						if _, err = m.Delete(ctx, k); err == nil {
							last[k] = nil
						}
					default:
						v := pagingValue(k, round*keysEach+i)
						if err = m.Put(ctx, k, v); err == nil {
							last[k] = v
						}
					}
					if err != nil {
						t.Errorf("writer %d, key %d: %v", w, k, err)
						return
					}
					// Read back an earlier key of this writer: its last value, paged out or not.
					r := w*keysEach + rng.IntN(i+1)
					got, err := m.Get(ctx, r)
					switch want, written := last[r]; {
					case !written || want == nil:
						if !errors.Is(err, ErrNotFound) && (written || err != nil) {
							t.Errorf("writer %d: Get %d = %d bytes, %v; want not found", w, r, len(got), err)
							return
						}
					case err != nil || !bytes.Equal(got, want):
						t.Errorf("writer %d: Get %d = %d bytes (%.12q), %v; want %.12q", w, r, len(got), got, err, want)
						return
					}
				}
			}
			finals[w] = last
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := map[int][]byte{}
	for _, last := range finals {
		maps.Copy(want, last)
	}
	checkAll(t, mustMap[int, []byte](t, c.Svc(0), "crashes"), want)
	if paged := pagedCount(c.Svc(0)) + pagedCount(c.Svc(1)) + pagedCount(c.Svc(2)); paged == 0 {
		t.Fatal("nothing was paged out")
	}
	checkPagedCounts(t, c)
}
