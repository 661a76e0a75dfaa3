package queue_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/gridmaptest"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
	"github.com/gridmap/gridmap/queue"
)

var items = flag.Int("queue.items", 100_000, "items of TestProducersConsumers")

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func open[T any](t *testing.T, m *gridmap.Member, name string) *queue.Queue[T] {
	t.Helper()
	q, err := queue.New[T](m.Queues(), name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func withQueues(qs map[string]queue.Config) gridmaptest.Option {
	return gridmaptest.WithConfig(func(_ int, cfg *gridmap.Config) { cfg.Queues = qs })
}

// 8 producers and 8 consumers on 3 members move every item through one queue exactly once.
func TestProducersConsumers(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3, gridmaptest.WithPartitionCount(31))
	ctx := testContext(t)
	n := *items
	const producers, consumers = 8, 8
	var next atomic.Int64 // the next item to offer
	taken := make([]atomic.Int32, n)
	var got atomic.Int64
	start := time.Now()
	var producing, consuming sync.WaitGroup
	errs := make(chan error, producers+consumers)
	stop := make(chan struct{}) // closed when the consumers are to stop
	for p := range producers {
		q := open[int](t, c.Member(p%3), "work")
		producing.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := q.Offer(ctx, int(i)); err != nil {
					errs <- fmt.Errorf("offer %d: %w", i, err)
					return
				}
			}
		})
	}
	for w := range consumers {
		q := open[int](t, c.Member((w+1)%3), "work")
		consuming.Go(func() {
			for got.Load() < int64(n) {
				select {
				case <-stop:
					return
				default:
				}
				tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				i, err := q.Take(tctx)
				cancel()
				if errors.Is(err, queue.ErrTimeout) && ctx.Err() == nil {
					continue // the others took the last items
				}
				if err != nil {
					errs <- fmt.Errorf("take: %w", err)
					return
				}
				taken[i].Add(1)
				got.Add(1)
			}
		})
	}
	producing.Wait()
	// Every item is offered: the consumers have a minute to take the rest (a lost item would
	// keep them waiting for ever).
	deadline := time.Now().Add(time.Minute)
	for got.Load() < int64(n) && time.Now().Before(deadline) && len(errs) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	consuming.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got.Load() != int64(n) {
		t.Fatalf("%d of %d items taken a minute after the last offer", got.Load(), n)
	}
	elapsed := time.Since(start)
	for i := range taken {
		if k := taken[i].Load(); k != 1 {
			t.Fatalf("item %d taken %d times", i, k)
		}
	}
	if size, err := open[int](t, c.Member(0), "work").Size(ctx); err != nil || size != 0 {
		t.Fatalf("size after all were taken: %d, %v", size, err)
	}
	t.Logf("%d items through 8 producers and 8 consumers on 3 members in %v (%.0f items/s)", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
}

func TestTakeOnEmptyQueueReturnsOnCancel(t *testing.T) {
	c := gridmaptest.NewCluster(t, 2, gridmaptest.WithPartitionCount(31))
	q := open[string](t, c.Member(1), "empty")
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() {
		_, err := q.Take(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Take on an empty queue returned at once: %v", err)
	case <-time.After(50 * time.Millisecond): // it is blocked (a return later than this is the bug)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, queue.ErrTimeout) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Take after cancel: %v, want ErrTimeout and context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Take did not return within 10 s of its context's cancellation")
	}
}

// A Take waiting on one member is woken by an Offer on another: the rechecks are switched off,
// so only the wake-up can release it.
func TestTakeWakesOnOfferFromAnotherMember(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3, gridmaptest.WithPartitionCount(31))
	for _, m := range c.Members() {
		queue.SetRecheck(m.Queues(), time.Hour)
	}
	ctx := testContext(t)
	for round := range 3 {
		consumer := open[string](t, c.Member(round), "wake")
		producer := open[string](t, c.Member((round+1)%3), "wake")
		got := make(chan string, 1)
		go func() {
			v, err := consumer.Take(ctx)
			if err != nil {
				v = err.Error()
			}
			got <- v
		}()
		deadline := time.Now().Add(30 * time.Second)
		for queue.Waiting(c.Member(round).Queues(), "wake") == 0 {
			if time.Now().After(deadline) {
				t.Fatal("Take did not start waiting")
			}
			time.Sleep(time.Millisecond)
		}
		if err := producer.Offer(ctx, fmt.Sprint("item", round)); err != nil {
			t.Fatal(err)
		}
		if v := <-got; v != fmt.Sprint("item", round) {
			t.Fatalf("Take = %q", v)
		}
	}
}

func TestOfferOnFullQueue(t *testing.T) {
	c := gridmaptest.NewCluster(t, 2, gridmaptest.WithPartitionCount(31),
		withQueues(map[string]queue.Config{"small": {Capacity: 3}}))
	ctx := testContext(t)
	q := open[int](t, c.Member(0), "small")
	for i := range 3 {
		if err := q.Offer(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Offer(ctx, 3); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("Offer on a full queue: %v, want ErrQueueFull", err)
	}
	start := time.Now()
	if err := q.OfferWait(ctx, 3, 100*time.Millisecond); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("OfferWait on a full queue: %v, want ErrQueueFull", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("OfferWait gave up after %v, before its timeout", d)
	}
	pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := q.Put(pctx, 3)
	cancel()
	if !errors.Is(err, queue.ErrTimeout) || !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("Put on a full queue: %v, want ErrTimeout and ErrQueueFull", err)
	}

	// Put waits for room, and gets it when another member takes an item.
	put := make(chan error, 1)
	go func() { put <- q.Put(ctx, 3) }()
	other := open[int](t, c.Member(1), "small")
	if v, ok, err := other.Poll(ctx); err != nil || !ok || v != 0 {
		t.Fatalf("Poll = %d %v %v", v, ok, err)
	}
	if err := <-put; err != nil {
		t.Fatalf("Put after room was made: %v", err)
	}
	all, err := other.Drain(ctx, 10)
	if err != nil || !slices.Equal(all, []int{1, 2, 3}) {
		t.Fatalf("Drain = %v, %v", all, err)
	}
}

func TestPeekSizeDrainClear(t *testing.T) {
	c := gridmaptest.NewCluster(t, 2, gridmaptest.WithPartitionCount(31))
	ctx := testContext(t)
	q := open[[]byte](t, c.Member(0), "misc")
	if _, ok, err := q.Peek(ctx); ok || err != nil {
		t.Fatalf("Peek on an empty queue: %v %v", ok, err)
	}
	big := make([]byte, 300<<10)
	for i := range 10 { // 3 MB: Drain needs several calls to the owner
		big[0] = byte(i)
		if err := q.Offer(ctx, big); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok, err := q.Peek(ctx); !ok || err != nil || v[0] != 0 {
		t.Fatalf("Peek: %v %v", ok, err)
	}
	if n, err := q.Size(ctx); n != 10 || err != nil {
		t.Fatalf("Size = %d, %v", n, err)
	}
	got, err := q.Drain(ctx, 7)
	if err != nil || len(got) != 7 {
		t.Fatalf("Drain(7) = %d items, %v", len(got), err)
	}
	for i, v := range got {
		if v[0] != byte(i) || len(v) != len(big) {
			t.Fatalf("item %d out of order or cut: %d, %d bytes", i, v[0], len(v))
		}
	}
	for i := range 5000 {
		if err := q.Offer(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Size(ctx); n != 0 || err != nil {
		t.Fatalf("Size after Clear = %d, %v", n, err)
	}
}

// A member that leaves gracefully hands its queue over: nothing lost, order kept.
func TestGracefulLeaveHandsQueueOver(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3, gridmaptest.WithPartitionCount(31))
	ctx := testContext(t)
	q := open[int](t, c.Member(0), "handover")
	owner := -1
	for i, m := range c.Members() {
		if m.Cluster().Partition(q.Partition()).Owner == m.ID() {
			owner = i
		}
	}
	if owner < 0 {
		t.Fatal("no member owns the queue's partition")
	}
	survivor := c.Member((owner + 1) % 3)
	sq := open[int](t, survivor, "handover")
	const n = 2000
	for i := range n {
		if err := sq.Offer(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	// Keep offering while the owner leaves: every acknowledged offer must be there.
	var acked atomic.Int64
	acked.Store(n)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := n; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := sq.Offer(ctx, i); err != nil {
				t.Errorf("offer %d during the leave: %v", i, err)
				return
			}
			acked.Store(int64(i + 1))
		}
	})
	c.Leave(owner)
	close(stop)
	wg.Wait()
	c.WaitSafe()
	got, err := sq.Drain(ctx, int(acked.Load())+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != int(acked.Load()) {
		t.Fatalf("after the owner left: %d items, want %d", len(got), acked.Load())
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("item %d is %d: order broken", i, v)
		}
	}
}

func TestItemListener(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3, gridmaptest.WithPartitionCount(31))
	ctx := testContext(t)
	q := open[string](t, c.Member(2), "events")
	var mu sync.Mutex
	var seen []string
	h, err := q.AddItemListener(ctx, func(ev queue.ItemEvent[string]) {
		mu.Lock()
		seen = append(seen, ev.Kind.String()+":"+ev.Item)
		mu.Unlock()
	}, queue.ItemListenerOptions{IncludeItem: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	p := open[string](t, c.Member(0), "events")
	for _, s := range []string{"a", "b"} {
		if err := p.Offer(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"ItemAdded:a", "ItemAdded:b", "ItemRemoved:a"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(seen)
		mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("events %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A queue with a store outlives a full cluster restart: write-behind, the members leaving one by
// one (handing the write-behind queue over, the last one storing it).
func TestQueueStoreSurvivesRestart(t *testing.T) {
	store := memstore.New()
	qs := map[string]queue.Config{"durable": {Store: store, Persistence: mapstore.Config{WriteDelay: 50 * time.Millisecond}}}
	ctx := testContext(t)
	first := gridmaptest.NewCluster(t, 3, gridmaptest.WithPartitionCount(31), withQueues(qs))
	q := open[string](t, first.Member(0), "durable")
	for i := range 300 {
		if err := q.Offer(ctx, fmt.Sprint("job", i)); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		if _, _, err := q.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		first.Leave(i)
	}

	second := gridmaptest.NewCluster(t, 3, gridmaptest.WithPartitionCount(31), withQueues(qs))
	q2 := open[string](t, second.Member(1), "durable")
	if n, err := q2.Size(ctx); err != nil || n != 200 {
		t.Fatalf("after the restart the queue holds %d items (%v), want 200", n, err)
	}
	got, err := q2.Drain(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != fmt.Sprint("job", i+100) {
			t.Fatalf("item %d after the restart: %q", i, v)
		}
	}
	if err := q2.Offer(ctx, "next"); err != nil {
		t.Fatal(err)
	}
	if v, _, err := q2.Poll(ctx); v != "next" || err != nil {
		t.Fatalf("Poll after the restart: %q, %v", v, err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (queue.Config{Capacity: -1}).Validate(); !errors.Is(err, queue.ErrInvalidConfig) {
		t.Fatalf("negative capacity: %v", err)
	}
	if err := (queue.Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := gridmap.Config{Queues: map[string]queue.Config{"q": {Capacity: -1}}}
	if err := cfg.Validate(); !errors.Is(err, gridmap.ErrInvalidConfig) {
		t.Fatalf("member config with a bad queue: %v", err)
	}
}

// A queue that outgrows its owner's memory budget refuses offers (ErrMemoryLimit), keeps every
// item it acknowledged, and accepts offers again once items were taken.
func TestOfferRefusedOverMemoryBudget(t *testing.T) {
	const budget = 2 << 20
	c := gridmaptest.NewCluster(t, 2, gridmaptest.WithPartitionCount(31),
		gridmaptest.WithConfig(func(_ int, cfg *gridmap.Config) { cfg.MemoryBudget = budget }))
	ctx := testContext(t)
	q := open[[]byte](t, c.Member(0), "big")
	item := make([]byte, 8<<10)
	acked := 0
	deadline := time.Now().Add(time.Minute)
	// An offer without room waits for memory as long as its context allows: keep that short.
	offer := func() error {
		octx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		return q.Offer(octx, item)
	}
	for {
		err := offer()
		if errors.Is(err, queue.ErrMemoryLimit) {
			if !errors.Is(err, dmap.ErrMemoryLimit) {
				t.Fatalf("%v is not dmap.ErrMemoryLimit", err)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		acked++
		if time.Now().After(deadline) {
			t.Fatalf("%d items (%d KiB) offered within a %d KiB budget, none refused", acked, acked*8, budget>>10)
		}
	}
	if acked*len(item) < budget*3/4 || acked*len(item) > budget {
		t.Fatalf("refused after %d KiB, the budget is %d KiB", acked*8, budget>>10)
	}
	for i := range len(c.Members()) {
		if used, _ := c.Member(i).MemoryUsed(); used > budget {
			t.Fatalf("member %d counts %d bytes, over its budget of %d", i, used, budget)
		}
	}
	// An offer waiting for memory succeeds once a consumer frees some within its deadline.
	waited := make(chan error, 1)
	go func() { waited <- q.Offer(ctx, item) }()
	if _, ok, err := q.Poll(ctx); err != nil || !ok {
		t.Fatalf("poll: %v, %v", ok, err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("the offer waiting for memory: %v", err)
	}
	got, err := q.Drain(ctx, acked+10)
	if err != nil || len(got) != acked {
		t.Fatalf("drained %d items (%v), want the %d acknowledged", len(got), err, acked)
	}
	for {
		err := offer()
		if err == nil {
			break
		}
		if !errors.Is(err, queue.ErrMemoryLimit) || time.Now().After(deadline) {
			t.Fatalf("offer after the queue was drained: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("refused after %d items of %d KiB (budget %d KiB)", acked, len(item)>>10, budget>>10)
}
