package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/enginetest"
	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

func TestLocalListenersSteadyState(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	tab := c.WaitStable()
	ctx := context.Background()
	recs := make([]*recorder[string, int], 3)
	for i := range recs {
		recs[i] = &recorder[string, int]{}
		m := mustMap[string, int](t, c.Svc(i), "steady")
		if _, err := m.AddLocalEntryListener(t.Context(), recs[i].on, ListenerOptions[string]{IncludeValues: true, QueueSize: 20000}); err != nil {
			t.Fatal(err)
		}
	}
	const puts, writers, keys = 10000, 8, 700
	var mu sync.Mutex
	perKey := map[string]int{}
	var wg sync.WaitGroup
	for w := range writers {
		m := mustMap[string, int](t, c.Svc(w%3), "steady")
		rng := rand.New(rand.NewPCG(uint64(w), 42))
		wg.Go(func() {
			for i := range puts / writers {
				k := fmt.Sprint("k", rng.IntN(keys))
				if err := m.Put(ctx, k, w*puts+i); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				perKey[k]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	enginetest.Eventually(t, 30*time.Second, "10,000 events", func() bool {
		return recs[0].Count()+recs[1].Count()+recs[2].Count() >= puts
	})
	time.Sleep(50 * time.Millisecond) // any extra (duplicate) event would arrive now

	type ps struct {
		p   partition.ID
		seq uint64
	}
	seen := map[ps]bool{}
	got := map[string]int{}
	total := 0
	probe := mustMap[string, int](t, c.Svc(0), "steady")
	for i, r := range recs {
		evs, missed := r.Snapshot()
		if missed != 0 {
			t.Fatalf("member %d missed %d events", i, missed)
		}
		total += len(evs)
		last := map[string]uint64{}
		for _, e := range evs {
			if e.Err != nil {
				t.Fatal(e.Err)
			}
			p, _ := probe.Partition(e.Key)
			if e.Member != c.Active[i] || tab.Owner(p) != c.Active[i] || e.Partition != p {
				t.Fatalf("event of %s (partition %d, owner %s) delivered on %s (event says %s)", e.Key, p, tab.Owner(p), c.Active[i], e.Member)
			}
			if seen[ps{p, e.Seq}] {
				t.Fatalf("event %d/%d delivered twice", p, e.Seq)
			}
			seen[ps{p, e.Seq}] = true
			if e.Seq <= last[e.Key] {
				t.Fatalf("key %s: seq %d after %d", e.Key, e.Seq, last[e.Key])
			}
			wantKind := listener.Updated
			if last[e.Key] == 0 {
				wantKind = listener.Added
			}
			if e.Kind != wantKind {
				t.Fatalf("key %s: %v, want %v", e.Key, e.Kind, wantKind)
			}
			last[e.Key] = e.Seq
			got[e.Key]++
		}
	}
	if total != puts {
		t.Fatalf("%d events delivered, want %d", total, puts)
	}
	for k, n := range perKey {
		if got[k] != n {
			t.Fatalf("key %s: %d events, %d puts", k, got[k], n)
		}
	}
	t.Logf("%d puts on %d keys: %d events, each once, on its owner, in order per key", puts, len(perKey), total)
}

func TestListenerEventKinds(t *testing.T) {
	c := newCluster(t, 1, 0, func(cfg *Config) { cfg.ExpiryInterval = 10 * time.Millisecond })
	ctx := context.Background()
	s := c.Svc(0)
	m := mustMap[string, string](t, s, "kinds")
	other := mustMap[string, string](t, s, "other")
	var r recorder[string, string]
	h, err := m.AddLocalEntryListener(t.Context(), r.on, ListenerOptions[string]{IncludeValues: true})
	if err != nil {
		t.Fatal(err)
	}
	var noValues recorder[string, string]
	if _, err := m.AddLocalEntryListener(t.Context(), noValues.on, ListenerOptions[string]{}); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.Put(ctx, "a", "1"))
	must(m.Put(ctx, "a", "2"))
	_, err = m.Delete(ctx, "a")
	must(err)
	_, err = m.Delete(ctx, "a") // nothing to delete: no event
	must(err)
	l, err := m.Lock(ctx, "b", 0) // locks: no event
	must(err)
	must(l.Unlock(ctx))
	tx, err := s.Begin(ctx)
	must(err)
	must(inTx(tx, m).Put(ctx, "t", "x")) // the transaction's mark: no event
	must(tx.Commit(ctx))
	must(m.Put(ctx, "c1", "x"))
	must(other.Put(ctx, "c1", "y")) // another map: no event here
	p, _ := m.Partition("c1")
	k2 := ""
	for i := 2; k2 == ""; i++ { // a second key in the same partition, so one clear removes two
		if q, _ := m.Partition(fmt.Sprint("c", i)); q == p {
			k2 = fmt.Sprint("c", i)
		}
	}
	must(m.Put(ctx, k2, "z"))
	must(m.Clear(ctx)) // partitions are cleared in parallel: the removals come in any order
	must(m.Put(ctx, "ttl", "v", WithTTL(20*time.Millisecond)))

	want := []string{"Added a  1", "Updated a 1 2", "Removed a 2 ", "Added t  x", "Added c1  x", "Added " + k2 + "  z",
		"Removed c1 x ", "Removed " + k2 + " z ", "Removed t x ", "Added ttl  v", "Expired ttl v "}
	enginetest.Eventually(t, 10*time.Second, "every event", func() bool { return r.Count() >= len(want) })
	time.Sleep(30 * time.Millisecond)
	evs, _ := r.Snapshot()
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%v %s %s %s", e.Kind, e.Key, e.OldValue, e.NewValue))
	}
	if len(got) == len(want) {
		slices.Sort(got[6:9])
		slices.Sort(want[6:9])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%q\nwant\n%q", got, want)
	}
	nv, _ := noValues.Snapshot()
	if len(nv) != len(want) || nv[1].OldValue != "" || nv[1].NewValue != "" {
		t.Fatalf("listener without values got %d events, first update %+v", len(nv), nv[1])
	}
	h.Remove()
	must(m.Put(ctx, "after", "x"))
	enginetest.Eventually(t, 5*time.Second, "the other listener", func() bool { return noValues.Count() == len(want)+1 })
	if r.Count() != len(want) {
		t.Fatal("removed listener still receives events")
	}
}

func TestLocalListenerFollowsMigration(t *testing.T) {
	c := newCluster(t, 2, 1, nil)
	ctx := context.Background()
	recs := map[partition.MemberID]*recorder[int, int]{}
	listen := func(s *Service) {
		r := &recorder[int, int]{}
		recs[s.self] = r
		if _, err := mustMap[int, int](t, s, "moving").AddLocalEntryListener(t.Context(), r.on, ListenerOptions[int]{}); err != nil {
			t.Fatal(err)
		}
	}
	listen(c.Svc(0))
	listen(c.Svc(1))
	m := mustMap[int, int](t, c.Svc(0), "moving")
	for i := range 200 {
		if err := m.Put(ctx, i, i); err != nil {
			t.Fatal(err)
		}
	}
	enginetest.Eventually(t, 10*time.Second, "first events", func() bool { return recs[c.Active[0]].Count()+recs[c.Active[1]].Count() == 200 })

	s2 := c.Start()
	listen(s2)
	c.Replan(nil)
	tab := c.WaitStable()
	moved := tab.Owned(s2.self)
	if len(moved) == 0 {
		t.Fatal("the new member owns nothing")
	}
	want := 0
	for i := range 200 {
		if p, _ := m.Partition(i); slices.Contains(moved, p) {
			want++
		}
		if err := m.Put(ctx, i, -i); err != nil {
			t.Fatal(err)
		}
	}
	enginetest.Eventually(t, 10*time.Second, "events on the new owner", func() bool { return recs[s2.self].Count() == want })
	enginetest.Eventually(t, 10*time.Second, "all events", func() bool {
		return recs[c.Active[0]].Count()+recs[c.Active[1]].Count()+recs[s2.self].Count() == 400
	})
	evs, _ := recs[s2.self].Snapshot()
	for _, e := range evs {
		if !slices.Contains(moved, e.Partition) || e.Kind != listener.Updated {
			t.Fatalf("new owner got %v of partition %d", e.Kind, e.Partition)
		}
	}
	t.Logf("%d partitions moved to the new member; its listener got their %d later events", len(moved), want)
}

func TestSlowListenerOverflowCountsExactly(t *testing.T) {
	c := newCluster(t, 1, 0, nil)
	ctx := context.Background()
	m := mustMap[int, int](t, c.Svc(0), "slow")
	entered, release := make(chan struct{}), make(chan struct{})
	var r recorder[int, int]
	first := true
	h, err := m.AddLocalEntryListener(t.Context(), func(e EntryEvent[int, int]) {
		if first {
			first = false
			close(entered)
			<-release
		}
		r.on(e)
	}, ListenerOptions[int]{QueueSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	<-entered
	const n = 2000
	start := time.Now()
	for i := 1; i < n; i++ { // the listener is stuck: none of these may wait for it
		if err := m.Put(ctx, i, i); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	close(release)
	enginetest.Eventually(t, 10*time.Second, "the backlog", func() bool {
		evs, missed := r.Snapshot()
		return uint64(len(evs))+missed == n
	})
	evs, missed := r.Snapshot()
	st := h.Stats()
	if len(evs) != 1+8 || missed != n-9 || st.Missed != missed || st.Delivered != 9 {
		t.Fatalf("delivered %d, notices report %d missed, stats %+v", len(evs), missed, st)
	}
	t.Logf("%d writes in %v while the listener was blocked; it got 9 events and a notice of %d missed", n-1, took, missed)
}

func registerDivisible(t *testing.T, svcs ...*Service) {
	t.Helper()
	for _, s := range svcs {
		err := RegisterPredicate(s, "divisible", func(e EntryEvent[int, int], by int) bool { return e.NewValue%by == 0 })
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestClusterListenerPredicate(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	ctx := context.Background()
	for _, s := range c.Svcs {
		registerDivisible(t, s)
	}
	reg := c.Svc(0)
	m0 := mustMap[int, int](t, reg, "numbers")
	if _, err := m0.AddEntryListener(ctx, func(EntryEvent[int, int]) {}, ListenerOptions[int]{Predicate: "nope"}); !errors.Is(err, ErrNoPredicate) {
		t.Fatalf("unknown predicate: %v", err)
	}
	var div3, one recorder[int, int]
	h, err := m0.AddEntryListener(ctx, div3.on, ListenerOptions[int]{IncludeValues: true, Predicate: "divisible", PredicateArg: 3})
	if err != nil {
		t.Fatal(err)
	}
	key := 77
	m1 := mustMap[int, int](t, c.Svc(1), "numbers")
	if _, err := m1.AddEntryListener(ctx, one.on, ListenerOptions[int]{Key: &key}); err != nil {
		t.Fatal(err)
	}
	sentBefore := totalSent(c)
	const n = 3000
	remoteMatches := 0
	tab := c.WaitStable()
	for i := range n {
		if err := mustMap[int, int](t, c.Svc(i%3), "numbers").Put(ctx, i, i); err != nil {
			t.Fatal(err)
		}
		p, _ := m0.Partition(i)
		if i%3 == 0 && tab.Owner(p) != reg.self {
			remoteMatches++
		}
		if p, _ := m0.Partition(i); i == key && tab.Owner(p) != c.Active[1] {
			remoteMatches++
		}
	}
	enginetest.Eventually(t, 20*time.Second, "the matching events", func() bool { return div3.Count() == n/3 && one.Count() == 1 })
	time.Sleep(50 * time.Millisecond)
	evs, missed := div3.Snapshot()
	if len(evs) != n/3 || missed != 0 {
		t.Fatalf("%d events, %d missed; want %d", len(evs), missed, n/3)
	}
	keys := map[int]bool{}
	for _, e := range evs {
		if e.Key%3 != 0 || e.NewValue != e.Key || e.Kind != listener.Added || keys[e.Key] {
			t.Fatalf("unexpected event %+v", e)
		}
		keys[e.Key] = true
	}
	if sent := totalSent(c) - sentBefore; sent != uint64(remoteMatches) {
		t.Fatalf("%d events crossed the network, want only the %d matching ones owned elsewhere", sent, remoteMatches)
	}
	if st := h.Stats(); st.Delivered != n/3 || st.Missed != 0 {
		t.Fatalf("stats %+v", st)
	}

	// A member that joins later applies the registrations: its partitions' events arrive too.
	s3 := c.Start()
	registerDivisible(t, s3)
	c.Replan(nil)
	tab = c.WaitStable()
	enginetest.Eventually(t, 10*time.Second, "the joiner's registry", func() bool { return s3.events.cw.listening("numbers") })
	want := n / 3
	for i := n; i < 2*n; i++ {
		if err := m1.Put(ctx, i, i); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			want++
		}
	}
	enginetest.Eventually(t, 20*time.Second, "events after the join", func() bool { return div3.Count() == want })
	fromJoiner := 0
	evs, _ = div3.Snapshot()
	for _, e := range evs[n/3:] {
		if e.Member == s3.self {
			fromJoiner++
		}
	}
	if len(tab.Owned(s3.self)) > 0 && fromJoiner == 0 {
		t.Fatal("no event from the member that joined")
	}

	// The registrant dies: every member drops its registrations.
	dead := reg.self
	c.Kill(dead)
	c.DropMember(dead)
	enginetest.Eventually(t, 10*time.Second, "registrations dropped", func() bool {
		for _, s := range c.Svcs {
			if s.self == dead {
				continue
			}
			for _, r := range (*s.events.cw.index.Load())["numbers"] {
				if r.member == dead {
					return false
				}
			}
		}
		return true
	})
	t.Logf("predicate listener: %d of %d events, %d crossed the network; %d from the joiner", n/3, n, remoteMatches, fromJoiner)
}

func totalSent(c *cluster) uint64 {
	var n uint64
	for _, s := range c.Svcs {
		n += s.events.cw.sent.Load()
	}
	return n
}

func TestClusterListenerOverflowIsCounted(t *testing.T) {
	c := newCluster(t, 2, 0, nil)
	ctx := context.Background()
	m := mustMap[int, int](t, c.Svc(0), "flood")
	entered, release := make(chan struct{}), make(chan struct{})
	var r recorder[int, int]
	var once sync.Once
	h, err := m.AddEntryListener(ctx, func(e EntryEvent[int, int]) {
		once.Do(func() { close(entered); <-release })
		r.on(e)
	}, ListenerOptions[int]{QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, -1, 0); err != nil {
		t.Fatal(err)
	}
	<-entered
	const n = 1000
	for i := range n {
		if err := m.Put(ctx, i, i); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every event reached the registrant (queued or counted), then let it go.
	enginetest.Eventually(t, 10*time.Second, "events to arrive", func() bool {
		st := h.Stats()
		return uint64(st.Queued)+st.Missed == n
	})
	close(release)
	enginetest.Eventually(t, 10*time.Second, "the backlog", func() bool {
		evs, missed := r.Snapshot()
		return uint64(len(evs))+missed == n+1
	})
	evs, missed := r.Snapshot()
	if len(evs) != 5 || missed != n-4 || h.Stats().Missed != missed {
		t.Fatalf("delivered %d, notices %d, stats %+v", len(evs), missed, h.Stats())
	}
}

func TestPartitionEvents(t *testing.T) {
	c := newCluster(t, 2, 0, nil)
	type rec struct {
		mu  sync.Mutex
		evs []PartitionEvent
	}
	listen := func(s *Service) *rec {
		r := &rec{}
		if _, err := s.AddPartitionListener(t.Context(), func(e PartitionEvent) {
			r.mu.Lock()
			r.evs = append(r.evs, e)
			r.mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r0, r1 := listen(c.Svc(0)), listen(c.Svc(1))
	settled := c.WaitStable()
	enginetest.Eventually(t, 5*time.Second, "the watchers to see the settled table", func() bool {
		return c.Svc(0).events.parts.epoch.Load() == settled.Epoch && c.Svc(1).events.parts.epoch.Load() == settled.Epoch
	})
	s2 := c.Start()
	r2 := listen(s2)
	c.Replan(nil)
	tab := c.WaitStable()
	moved := tab.Owned(s2.self)
	count := func(r *rec, k PartitionEventKind) (n int, parts []partition.ID) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.evs {
			if e.Kind == k {
				n++
				parts = append(parts, e.Partition)
			}
		}
		return n, parts
	}
	enginetest.Eventually(t, 5*time.Second, "migration events", func() bool {
		n, _ := count(r2, MigrationFinished)
		return n == len(moved)
	})
	started, sp := count(r2, MigrationStarted)
	slices.Sort(sp)
	if started != len(moved) || !slices.Equal(sp, moved) {
		t.Fatalf("joiner saw %d migrations started (%v), %d partitions moved (%v)", started, sp, len(moved), moved)
	}
	enginetest.Eventually(t, 5*time.Second, "the senders' migration events", func() bool {
		a, _ := count(r0, MigrationFinished)
		b, _ := count(r1, MigrationFinished)
		return a+b == len(moved)
	})
	a, _ := count(r0, MigrationStarted)
	b, _ := count(r1, MigrationStarted)
	if a+b != len(moved) {
		t.Fatalf("senders saw %d+%d migrations started, want %d", a, b, len(moved))
	}

	// Without backups, a member's death loses its partitions: every survivor reports them.
	victim := c.Active[0]
	lost := tab.Owned(victim)
	c.Kill(victim)
	c.WaitStable()
	for i, r := range []*rec{r1, r2} {
		enginetest.Eventually(t, 5*time.Second, "partition lost events", func() bool {
			n, _ := count(r, PartitionLost)
			return n == len(lost)
		})
		_, parts := count(r, PartitionLost)
		slices.Sort(parts)
		if !slices.Equal(parts, lost) {
			t.Fatalf("lost %v, want %v", parts, lost)
		}
		if n := []*Service{c.Svc(0), s2}[i].PartitionsLost(); n != uint64(len(lost)) {
			t.Fatalf("PartitionsLost() = %d, want %d", n, len(lost))
		}
	}
}

func TestPartitionChangesIsPlainLogic(t *testing.T) {
	mk := func(epoch uint64, as ...partition.Assignment) *partition.Table {
		return &partition.Table{Epoch: epoch, Partitions: as}
	}
	a := func(pending []partition.Pending, replicas ...partition.MemberID) partition.Assignment {
		return partition.Assignment{Replicas: replicas, Pending: pending}
	}
	lostAt := func(epoch uint64, as partition.Assignment) partition.Assignment {
		as.LostAt, as.Lost = epoch, true
		return as
	}
	prev := mk(1, a(nil, "x", "y"), a(nil, "w"), a(nil, "x"), a(nil, "y"))
	cur := mk(2, a([]partition.Pending{{Member: "z", AsOwner: true}}, "x", "y"), lostAt(2, a(nil, "y")), a(nil, "x"), a(nil, "x"))
	got := partitionChanges(prev, cur, "x")
	want := []PartitionEvent{
		{Kind: MigrationStarted, Partition: 0, Epoch: 2, Owner: "x", PreviousOwner: "x"}, // x sends a copy to z
		{Kind: PartitionLost, Partition: 1, Epoch: 2, Owner: "y", PreviousOwner: "w"},    // w, its only holder, is gone
		// Partition 2 unchanged; partition 3 moved from y (alive) to x: a hand-off seen at once.
		{Kind: MigrationStarted, Partition: 3, Epoch: 2, Owner: "x", PreviousOwner: "y"},
		{Kind: MigrationFinished, Partition: 3, Epoch: 2, Owner: "x", PreviousOwner: "y"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got := partitionChanges(cur, mk(3, a(nil, "z", "x"), lostAt(2, a(nil, "y")), a(nil, "x"), a(nil, "x")), "x"); len(got) != 1 || got[0].Kind != MigrationFinished || got[0].Owner != "z" {
		t.Fatalf("finish: %+v", got)
	}

	// Losses, as every member sees them: only LostAt growing reports one, once.
	for _, tc := range []struct {
		name      string
		prev, cur *partition.Table
		lost      bool
	}{
		{
			// The only replica died while z was receiving a copy: a pending copy is not a
			// replica, so the data is lost even though z, alive, is given the partition.
			name: "pending-only survivor",
			prev: mk(4, a([]partition.Pending{{Member: "z"}}, "w")),
			cur:  mk(5, lostAt(5, a(nil, "z"))),
			lost: true,
		},
		{
			name: "pending-only survivor, re-created empty",
			prev: mk(4, a([]partition.Pending{{Member: "z"}}, "w")),
			cur:  mk(5, partition.Assignment{Replicas: []partition.MemberID{"z"}, LostAt: 5}),
			lost: true,
		},
		{
			// This member skipped the table of the loss (and the reset after it).
			name: "loss in a skipped table",
			prev: mk(4, a(nil, "w", "y")),
			cur:  mk(9, partition.Assignment{Replicas: []partition.MemberID{"z"}, LostAt: 7}),
			lost: true,
		},
		{
			name: "the same loss seen again",
			prev: mk(5, lostAt(5, a(nil, "z"))),
			cur:  mk(6, a(nil, "z", "y")),
			lost: false,
		},
		{
			name: "the same loss, reset",
			prev: mk(5, lostAt(5, a(nil, "z"))),
			cur:  mk(6, partition.Assignment{Replicas: []partition.MemberID{"z"}, LostAt: 5}),
			lost: false,
		},
		{
			// A backup survived: its promotion is no loss, whatever this member saw of it.
			name: "backup promoted",
			prev: mk(4, a(nil, "w", "y")),
			cur:  mk(5, a(nil, "y")),
			lost: false,
		},
		{
			name: "a second loss",
			prev: mk(6, partition.Assignment{Replicas: []partition.MemberID{"z"}, LostAt: 5}),
			cur:  mk(8, lostAt(8, a(nil, "y"))),
			lost: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, self := range []partition.MemberID{"w", "x", "y", "z"} {
				n := 0
				for _, ev := range partitionChanges(tc.prev, tc.cur, self) {
					if ev.Kind == PartitionLost {
						n++
						if ev.Epoch != tc.cur.Epoch || ev.Owner != tc.cur.Owner(0) {
							t.Fatalf("member %s: %+v", self, ev)
						}
					}
				}
				if want := map[bool]int{true: 1}[tc.lost]; n != want {
					t.Fatalf("member %s saw %d PartitionLost events, want %d", self, n, want)
				}
			}
		})
	}
}
