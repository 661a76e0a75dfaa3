package listener

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// waitLimit bounds every wait of these tests; generous for a loaded 2-core machine under -race.
const waitLimit = 30 * time.Second

func newDispatcher(t testing.TB) *Dispatcher {
	t.Helper()
	d, err := New(Config{Member: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d
}

// collector records what a listener receives and lets a test wait for a condition.
type collector struct {
	mu      sync.Mutex
	events  []Event
	missed  uint64 // sum of Overflow notices
	changed chan struct{}
}

func newCollector() *collector { return &collector{changed: make(chan struct{}, 1)} }

func (c *collector) OnEvent(e Event) {
	c.mu.Lock()
	if e.Kind == Overflow {
		c.missed += e.Missed
	}
	c.events = append(c.events, e)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond (called under the collector's lock) holds.
func (c *collector) waitFor(t *testing.T, what string, cond func(events []Event, missed uint64) bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond(c.events, c.missed)
		n := len(c.events)
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s (%d received)", what, n)
		}
	}
}

func (c *collector) snapshot() ([]Event, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...), c.missed
}

// gate is a listener that blocks inside OnEvent until released, and reports when it entered.
type gate struct {
	entered chan Event
	release chan struct{}
	next    Listener
}

func newGate(next Listener) *gate {
	return &gate{entered: make(chan Event, 1), release: make(chan struct{}), next: next}
}

func (g *gate) OnEvent(e Event) {
	select {
	case g.entered <- e:
		<-g.release // only the first call blocks
	default:
	}
	g.next.OnEvent(e)
}

func waitChan[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func register(t *testing.T, d *Dispatcher, mapName string, l Listener, opts Options) *Registration {
	t.Helper()
	r, err := d.Register(mapName, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// publishPartitions publishes total events from one goroutine per partition, as the write
// path does (each partition's writes are serialised, partitions run in parallel). Partition p
// writes keys "p<p>-k<i%keys>" with seq 1, 2, ...
func publishPartitions(d *Dispatcher, mapName string, parts, keys, total int) {
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() {
			var seq uint64
			for i := p; i < total; i += parts {
				seq++
				d.Publish(Event{
					Map: mapName, Kind: Updated, Partition: partition.ID(p), Seq: seq,
					Key: fmt.Appendf(nil, "p%d-k%d", p, i%keys),
				})
			}
		})
	}
	wg.Wait()
}

// checkOrder verifies that each key's events arrive with growing Seq.
func checkOrder(t *testing.T, events []Event) (delivered int) {
	t.Helper()
	last := map[string]uint64{}
	for _, e := range events {
		if e.Kind == Overflow {
			continue
		}
		delivered++
		k := string(e.Key)
		if e.Seq <= last[k] {
			t.Fatalf("key %s: seq %d after %d", k, e.Seq, last[k])
		}
		last[k] = e.Seq
	}
	return delivered
}

func TestOrderPerKey(t *testing.T) {
	const total = 10000
	d := newDispatcher(t)
	all := newCollector()
	rAll := register(t, d, "orders", all, Options{QueueSize: total})
	// A small queue: events are dropped, but those delivered keep their order and the drops
	// are accounted for exactly.
	small := newCollector()
	rSmall := register(t, d, "orders", small, Options{QueueSize: 8})

	publishPartitions(d, "orders", 8, 5, total)

	all.waitFor(t, "every event", func(ev []Event, _ uint64) bool { return len(ev) == total })
	events, missed := all.snapshot()
	if n := checkOrder(t, events); n != total || missed != 0 {
		t.Fatalf("delivered %d, missed %d; want %d, 0", n, missed, total)
	}
	if s := rAll.Stats(); s.Delivered != total || s.Missed != 0 || s.Queued != 0 {
		t.Fatalf("stats %+v", s)
	}

	small.waitFor(t, "every event accounted for", func(ev []Event, missed uint64) bool {
		n := 0
		for _, e := range ev {
			if e.Kind != Overflow {
				n++
			}
		}
		return uint64(n)+missed == total
	})
	events, missed = small.snapshot()
	n := checkOrder(t, events)
	if s := rSmall.Stats(); s.Delivered != uint64(n) || s.Missed != missed {
		t.Fatalf("stats %+v, saw %d delivered %d missed", s, n, missed)
	}
	t.Logf("small queue: %d delivered, %d missed", n, missed)
}

func TestSlowListenerGetsExactMissedCountAndDelaysNothing(t *testing.T) {
	const total = 100000
	const queueSize = 16
	d := newDispatcher(t)
	slowC := newCollector()
	slow := newGate(slowC)
	rSlow := register(t, d, "reports", slow, Options{QueueSize: queueSize})
	fast := newCollector()
	register(t, d, "reports", fast, Options{QueueSize: total})

	pub := func(seq uint64) { d.Publish(Event{Map: "reports", Kind: Added, Key: []byte("k"), Seq: seq}) }

	// Event 1 puts the slow listener inside OnEvent, where it stays until released.
	pub(1)
	if e := waitChan(t, slow.entered, "slow listener entered"); e.Seq != 1 {
		t.Fatalf("first event seq %d", e.Seq)
	}

	// Publishing the rest must complete while the slow listener is still blocked.
	published := make(chan time.Duration)
	go func() {
		start := time.Now()
		for seq := uint64(2); seq <= total; seq++ {
			pub(seq)
		}
		published <- time.Since(start)
	}()
	took := waitChan(t, published, "publishing 99,999 events while a listener is blocked")
	t.Logf("published %d events in %v (%v/event) while the listener was blocked", total-1, took, took/(total-1))

	// The fast listener got everything although the slow one has not returned once.
	fast.waitFor(t, "fast listener", func(ev []Event, _ uint64) bool { return len(ev) == total })
	if _, missed := fast.snapshot(); missed != 0 {
		t.Fatalf("fast listener missed %d", missed)
	}

	wantMissed := uint64(total - 1 - queueSize)
	if s := rSlow.Stats(); s.Delivered != 0 || s.Queued != queueSize || s.Missed != wantMissed {
		t.Fatalf("slow stats while blocked %+v, want queued %d missed %d", s, queueSize, wantMissed)
	}

	close(slow.release)
	slowC.waitFor(t, "slow listener drained", func(ev []Event, _ uint64) bool { return len(ev) == 1+queueSize+1 })
	events, _ := slowC.snapshot()
	// Expected stream: 1, 2..17, then one notice for the exact number dropped.
	for i, e := range events[:1+queueSize] {
		if e.Kind != Added || e.Seq != uint64(i+1) {
			t.Fatalf("event %d: %v", i, e)
		}
	}
	notice := events[1+queueSize]
	if notice.Kind != Overflow || notice.Missed != wantMissed || notice.Map != "reports" || notice.Member != "m1" || notice.Partition != -1 {
		t.Fatalf("notice %v, want Overflow missed=%d", notice, wantMissed)
	}

	// The listener keeps working after the overflow.
	pub(total + 1)
	slowC.waitFor(t, "event after overflow", func(ev []Event, _ uint64) bool { return len(ev) == 1+queueSize+2 })
	events, _ = slowC.snapshot()
	if e := events[len(events)-1]; e.Seq != total+1 {
		t.Fatalf("after overflow got %v", e)
	}
	if s := rSlow.Stats(); s.Delivered != queueSize+2 || s.Missed != wantMissed || s.Queued != 0 {
		t.Fatalf("final stats %+v", s)
	}
}

// TestOverflowNoticeBeforeNextEvent checks that a notice reaches the listener before the next
// delivered event, at the point of the gap, when publishing resumes before the queue drained.
func TestOverflowNoticeBeforeNextEvent(t *testing.T) {
	d := newDispatcher(t)
	c := newCollector()
	g := newGate(c)
	register(t, d, "m", g, Options{QueueSize: 2})
	pub := func(seq uint64) { d.Publish(Event{Map: "m", Kind: Updated, Key: []byte("k"), Seq: seq}) }
	pub(1)
	waitChan(t, g.entered, "entered")
	for seq := uint64(2); seq <= 10; seq++ { // 2, 3 queued; 4..10 dropped
		pub(seq)
	}
	close(g.release)
	c.waitFor(t, "drain", func(ev []Event, _ uint64) bool { return len(ev) == 4 })
	pub(11)
	c.waitFor(t, "event 11", func(ev []Event, _ uint64) bool { return len(ev) == 5 })
	events, _ := c.snapshot()
	got := ""
	for _, e := range events {
		if e.Kind == Overflow {
			got += fmt.Sprintf("[missed %d] ", e.Missed)
		} else {
			got += fmt.Sprintf("%d ", e.Seq)
		}
	}
	if want := "1 2 3 [missed 7] 11 "; got != want {
		t.Fatalf("stream %q, want %q", got, want)
	}
}

func TestFiltersAndPredicates(t *testing.T) {
	d := newDispatcher(t)
	kinds := []Kind{Added, Updated, Removed, Evicted, Expired, Loaded}
	var all []Event
	for i := range 1200 {
		all = append(all, Event{
			Map: "m", Kind: kinds[i%len(kinds)], Key: fmt.Appendf(nil, "k%d", i%7),
			Partition: partition.ID(i % 7), Seq: uint64(i + 1),
			OldValue: []byte("old"), NewValue: fmt.Appendf(nil, "v%d", i),
		})
	}
	type reg struct {
		name string
		opts Options
		want func(Event) bool
	}
	removedOnly := func(e Event) bool { return e.Kind == Removed }
	cases := []reg{
		{"all", Options{}, func(Event) bool { return true }},
		{"key", Options{Key: []byte("k3")}, func(e Event) bool { return string(e.Key) == "k3" }},
		{"predicate", Options{Predicate: removedOnly}, removedOnly},
		{"key and predicate", Options{Key: []byte("k3"), Predicate: removedOnly}, func(e Event) bool {
			return string(e.Key) == "k3" && e.Kind == Removed
		}},
		{"predicate on values without IncludeValues", Options{Predicate: func(e Event) bool {
			return string(e.NewValue) == "v42" || string(e.NewValue) == "v43"
		}}, func(e Event) bool { return e.Seq == 43 || e.Seq == 44 }},
		{"values", Options{IncludeValues: true, Key: []byte("k0")}, func(e Event) bool { return string(e.Key) == "k0" }},
	}
	cols := make([]*collector, len(cases))
	regs := make([]*Registration, len(cases))
	for i, c := range cases {
		cols[i] = newCollector()
		c.opts.QueueSize = len(all) // no drops: this test is about filters
		regs[i] = register(t, d, "m", cols[i], c.opts)
	}
	other := newCollector()
	register(t, d, "other-map", other, Options{})

	for _, e := range all {
		d.Publish(e)
	}
	for i, c := range cases {
		var want []Event
		for _, e := range all {
			if c.want(e) {
				want = append(want, e)
			}
		}
		cols[i].waitFor(t, c.name, func(ev []Event, _ uint64) bool { return len(ev) >= len(want) })
		got, missed := cols[i].snapshot()
		if len(got) != len(want) || missed != 0 {
			t.Fatalf("%s: got %d events (missed %d), want %d", c.name, len(got), missed, len(want))
		}
		for j := range got {
			if got[j].Seq != want[j].Seq || got[j].Member != "m1" {
				t.Fatalf("%s: event %d is %v, want %v", c.name, j, got[j], want[j])
			}
			if c.opts.IncludeValues {
				if string(got[j].NewValue) != string(want[j].NewValue) || string(got[j].OldValue) != "old" {
					t.Fatalf("%s: values %q %q", c.name, got[j].OldValue, got[j].NewValue)
				}
			} else if got[j].NewValue != nil || got[j].OldValue != nil {
				t.Fatalf("%s: values delivered without IncludeValues", c.name)
			}
		}
		if s := regs[i].Stats(); s.Delivered != uint64(len(want)) || s.Missed != 0 {
			t.Fatalf("%s: stats %+v", c.name, s)
		}
	}
	if ev, _ := other.snapshot(); len(ev) != 0 {
		t.Fatalf("listener of another map got %d events", len(ev))
	}
}

// TestFilteredEventsCostNoQueueSpace blocks a listener with a queue of 1 and publishes many
// events its filters reject: none is counted missed.
func TestFilteredEventsCostNoQueueSpace(t *testing.T) {
	d := newDispatcher(t)
	c := newCollector()
	g := newGate(c)
	r := register(t, d, "m", g, Options{QueueSize: 1, Key: []byte("mine"),
		Predicate: func(e Event) bool { return e.Kind != Evicted }})
	d.Publish(Event{Map: "m", Kind: Added, Key: []byte("mine"), Seq: 1})
	waitChan(t, g.entered, "entered")
	for i := range 10000 {
		d.Publish(Event{Map: "m", Kind: Added, Key: []byte("other"), Seq: uint64(i + 2)})
		d.Publish(Event{Map: "m", Kind: Evicted, Key: []byte("mine"), Seq: uint64(i + 2)})
	}
	if s := r.Stats(); s.Missed != 0 || s.Queued != 0 {
		t.Fatalf("stats %+v", s)
	}
	close(g.release)
	c.waitFor(t, "first event", func(ev []Event, _ uint64) bool { return len(ev) == 1 })
}

func TestRemoveStopsDelivery(t *testing.T) {
	d := newDispatcher(t)
	c := newCollector()
	r := register(t, d, "m", c, Options{})
	keep := newCollector()
	register(t, d, "m", keep, Options{})
	for i := range 10 {
		d.Publish(Event{Map: "m", Kind: Added, Seq: uint64(i + 1)})
	}
	c.waitFor(t, "10 events", func(ev []Event, _ uint64) bool { return len(ev) == 10 })
	r.Remove()
	waitChan(t, r.Done(), "registration goroutine exit")
	r.Remove() // idempotent
	for i := range 10 {
		d.Publish(Event{Map: "m", Kind: Added, Seq: uint64(i + 11)})
	}
	keep.waitFor(t, "other listener", func(ev []Event, _ uint64) bool { return len(ev) == 20 })
	if ev, _ := c.snapshot(); len(ev) != 10 {
		t.Fatalf("removed listener got %d events", len(ev))
	}
	if got := len(d.Registrations()); got != 1 {
		t.Fatalf("%d registrations left", got)
	}
}

func TestRemoveFromInsideOnEvent(t *testing.T) {
	d := newDispatcher(t)
	var r *Registration
	ready := make(chan struct{})
	c := newCollector()
	l := Func(func(e Event) {
		<-ready
		c.OnEvent(e)
		if e.Seq == 5 {
			r.Remove()
		}
	})
	r = register(t, d, "m", l, Options{})
	for i := range 10 {
		d.Publish(Event{Map: "m", Kind: Added, Seq: uint64(i + 1)})
	}
	close(ready)
	waitChan(t, r.Done(), "self-removed registration exit")
	if ev, _ := c.snapshot(); len(ev) != 5 {
		t.Fatalf("got %d events after removing at the 5th", len(ev))
	}
	if d.Listening("m") {
		t.Fatal("still listening")
	}
}

// In a synctest bubble: the dispatcher's goroutines are the bubble's, so synctest.Wait tells
// when those that are going to exit have exited, without polling; and the bubble itself fails
// the test if one of them stays blocked forever.
func TestCloseDrainsAndLeaksNoGoroutine(t *testing.T) {
	synctest.Test(t, testCloseDrainsAndLeaksNoGoroutine)
}

func testCloseDrainsAndLeaksNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	d, err := New(Config{Member: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	g := newGate(c)
	register(t, d, "m", g, Options{})
	var cols []*collector
	for range 20 {
		cc := newCollector()
		cols = append(cols, cc)
		register(t, d, "m", cc, Options{})
	}
	removed := register(t, d, "m", Discard, Options{})
	removed.Remove()
	for i := range 100 {
		d.Publish(Event{Map: "m", Kind: Added, Seq: uint64(i + 1)})
	}
	waitChan(t, g.entered, "entered")

	closed := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		closed <- d.Close(ctx)
	}()
	close(g.release)
	if err := waitChan(t, closed, "close"); err != nil {
		t.Fatal(err)
	}
	// Close drained every queue.
	for _, cc := range append(cols, c) {
		if ev, _ := cc.snapshot(); len(ev) != 100 {
			t.Fatalf("listener got %d of 100 events before close returned", len(ev))
		}
	}
	if _, err := d.Register("m", Discard, Options{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("register after close: %v", err)
	}
	d.Publish(Event{Map: "m", Kind: Added}) // ignored
	if err := d.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
	noGoroutineLeft(t, before)
}

func TestCloseDeadlineWithStuckListener(t *testing.T) {
	synctest.Test(t, testCloseDeadlineWithStuckListener)
}

func testCloseDeadlineWithStuckListener(t *testing.T) {
	before := runtime.NumGoroutine()
	d, err := New(Config{Member: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	g := newGate(c)
	r := register(t, d, "m", g, Options{})
	for i := range 10 {
		d.Publish(Event{Map: "m", Kind: Added, Seq: uint64(i + 1)})
	}
	waitChan(t, g.entered, "entered")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = d.Close(ctx)
	if !errors.Is(err, ErrStillRunning) || !errors.Is(err, context.Canceled) {
		t.Fatalf("close with a stuck listener: %v", err)
	}
	close(g.release)
	waitChan(t, r.Done(), "exit once released")
	if ev, _ := c.snapshot(); len(ev) != 1 {
		t.Fatalf("got %d events; queued events should have been discarded", len(ev))
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	noGoroutineLeft(t, before)
}

// noGoroutineLeft checks, inside a synctest bubble, that no more goroutines than n run once
// every goroutine of the bubble has exited or blocked (synctest.Wait): one still blocked then
// is leaked, however long the test would wait for it.
func noGoroutineLeft(t *testing.T, n int) {
	t.Helper()
	synctest.Wait()
	if got := runtime.NumGoroutine(); got > n {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines, want <= %d\n%s", got, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestListenerPanicIsRecovered(t *testing.T) {
	d := newDispatcher(t)
	c := newCollector()
	register(t, d, "m", Func(func(e Event) {
		if e.Seq == 1 {
			panic("boom")
		}
		c.OnEvent(e)
	}), Options{})
	d.Publish(Event{Map: "m", Kind: Added, Seq: 1})
	d.Publish(Event{Map: "m", Kind: Added, Seq: 2})
	c.waitFor(t, "event after panic", func(ev []Event, _ uint64) bool { return len(ev) == 1 && ev[0].Seq == 2 })
}

func TestPredicatePanicRejectsAndDoesNotUnwindPublish(t *testing.T) {
	d := newDispatcher(t)
	c := newCollector()
	register(t, d, "m", c, Options{Predicate: func(e Event) bool {
		if e.Seq == 1 {
			panic("bad predicate")
		}
		return true
	}})
	d.Publish(Event{Map: "m", Kind: Added, Seq: 1})
	d.Publish(Event{Map: "m", Kind: Added, Seq: 2})
	c.waitFor(t, "event 2", func(ev []Event, _ uint64) bool { return len(ev) == 1 && ev[0].Seq == 2 })
}

func TestValidation(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("empty member: %v", err)
	}
	d := newDispatcher(t)
	_, err := d.Register("m", nil, Options{QueueSize: -1})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("register: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"QueueSize -1", "listener is nil"} {
		if !contains(msg, want) {
			t.Fatalf("error %q does not report %q", msg, want)
		}
	}
	var nilD *Dispatcher
	nilD.Publish(Event{Map: "m"})
	if nilD.Listening("m") || nilD.Registrations() != nil {
		t.Fatal("nil dispatcher listens")
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestPublishKeepsMemberAndFillsEmptyOne(t *testing.T) {
	d := newDispatcher(t)
	c := newCollector()
	register(t, d, "m", c, Options{})
	d.Publish(Event{Map: "m", Kind: Added, Seq: 1})
	d.Publish(Event{Map: "m", Kind: Added, Seq: 2, Member: "remote-owner"})
	c.waitFor(t, "2 events", func(ev []Event, _ uint64) bool { return len(ev) == 2 })
	ev, _ := c.snapshot()
	if ev[0].Member != "m1" || ev[1].Member != "remote-owner" {
		t.Fatalf("members %q %q", ev[0].Member, ev[1].Member)
	}
}

func TestPublishDoesNotAllocate(t *testing.T) {
	d := newDispatcher(t)
	for range 8 {
		register(t, d, "m", Discard, Options{QueueSize: 64})
	}
	key := []byte("k")
	ev := Event{Map: "m", Kind: Updated, Key: key, Partition: 3, Seq: 1}
	for range 200 { // grow every queue to its size
		d.Publish(ev)
	}
	if a := testing.AllocsPerRun(1000, func() { d.Publish(ev) }); a != 0 {
		t.Fatalf("Publish allocates %v times", a)
	}
}

// TestAttachedRegistration: a registration made with Attach gets no published events, only
// what is offered to it; events dropped upstream are reported missed in stream order, together
// with its own queue's drops, and counted in Stats; Remove and Close end it like any other.
func TestAttachedRegistration(t *testing.T) {
	d := newDispatcher(t)
	c := newCollector()
	g := newGate(c)
	r, err := d.Attach("m", g, Options{QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	d.Publish(Event{Map: "m", Kind: Added, Key: []byte("published"), Seq: 100}) // not routed to r
	if d.Listening("m") {
		t.Fatal("an attached registration makes Publish listen")
	}
	offer := func(seq, missedBefore uint64) {
		r.Offer(Event{Map: "m", Kind: Updated, Key: []byte("k"), Seq: seq}, missedBefore)
	}
	offer(1, 0)
	waitChan(t, g.entered, "entered")
	offer(2, 3)                                                 // 3 dropped upstream before 2
	r.Offer(Event{Kind: Overflow, Partition: -1, Missed: 4}, 1) // a notice alone: 5 more
	offer(3, 0)
	offer(4, 0) // the queue holds 2 and 3: dropped here
	close(g.release)
	c.waitFor(t, "drain", func(ev []Event, _ uint64) bool { return len(ev) == 6 })
	r.Offer(Event{Kind: Overflow, Missed: 2}, 0) // upstream drops reported with nothing after them
	c.waitFor(t, "the trailing notice", func(ev []Event, _ uint64) bool { return len(ev) == 7 })
	events, _ := c.snapshot()
	got := ""
	for _, e := range events {
		if e.Kind == Overflow {
			got += fmt.Sprintf("[missed %d] ", e.Missed)
		} else {
			got += fmt.Sprintf("%d ", e.Seq)
		}
		if e.Member != "m1" {
			t.Errorf("event %v has member %q", e, e.Member)
		}
	}
	if want := "1 [missed 3] 2 [missed 5] 3 [missed 1] [missed 2] "; got != want {
		t.Fatalf("stream %q, want %q", got, want)
	}
	if st := r.Stats(); st.Delivered != 3 || st.Missed != 11 || st.Queued != 0 {
		t.Fatalf("stats %+v, want 3 delivered, 11 missed", st)
	}
	r.Remove()
	waitChan(t, r.Done(), "done")
	offer(5, 0) // ignored
}

// Config.Held is told the bytes of every event queued and delivered or discarded, and
// Stats.QueuedBytes agrees with it.
func TestHeldBytes(t *testing.T) {
	var held atomic.Int64
	d, err := New(Config{Member: "m", Held: func(n int64) { held.Add(n) }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	release := make(chan struct{})
	r, err := d.Register("m", Func(func(Event) { <-release }), Options{IncludeValues: true})
	if err != nil {
		t.Fatal(err)
	}
	ev := Event{Map: "m", Kind: Added, Key: []byte("key"), NewValue: make([]byte, 1000)}
	for range 3 {
		d.Publish(ev)
	}
	per := heldBytes(&ev)
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Queued != 2 { // the first event is being delivered
		if time.Now().After(deadline) {
			t.Fatalf("queued %d, want 2", r.Stats().Queued)
		}
		time.Sleep(time.Millisecond)
	}
	if got, st := held.Load(), r.Stats(); got != 2*per || st.QueuedBytes != got {
		t.Fatalf("held %d, QueuedBytes %d; want %d", got, st.QueuedBytes, 2*per)
	}
	d.Publish(ev)
	r.Remove() // discards what is queued
	close(release)
	<-r.Done()
	if got := held.Load(); got != 0 {
		t.Fatalf("held %d after the queue was discarded", got)
	}
}
