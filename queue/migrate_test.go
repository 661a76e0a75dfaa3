package queue_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/gridmaptest"
	"github.com/gridmap/gridmap/queue"
)

// Producers offer and consumers poll on many queues, which hold a backlog, while a member joins
// and the queues' partitions move to it (copied while the processors run, then handed off): no
// call fails, and every acknowledged item is taken exactly once, by a consumer during the join
// or by the final drain, wherever its queue ended up.
func TestOfferPollWhileAMemberJoins(t *testing.T) {
	c := gridmaptest.NewCluster(t, 2, gridmaptest.WithPartitionCount(31))
	ctx := testContext(t)
	const queues, producers, consumers = 24, 4, 4
	names := make([]string, queues)
	for i := range names {
		names[i] = fmt.Sprint("join-", i)
	}
	openAll := func(i int) []*queue.Queue[int] {
		qs := make([]*queue.Queue[int], queues)
		for j, name := range names {
			qs[j] = open[int](t, c.Member(i), name)
		}
		return qs
	}

	var mu sync.Mutex
	offered := map[int]bool{}
	taken := map[int]int{}
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range producers {
		qs := openAll(p % 2)
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				item := i*producers + p
				if err := qs[i%queues].Offer(ctx, item); err != nil {
					fail(fmt.Errorf("offer %d: %w", item, err))
					return
				}
				mu.Lock()
				offered[item] = true
				mu.Unlock()
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(offered)
	}
	// A backlog first, so that the copies carry items, then consumers during the join.
	waitUntil(t, "1000 offers before the join", func() bool { return count() >= 1000 })
	for w := range consumers {
		qs := openAll((w + 1) % 2)
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				item, ok, err := qs[i%queues].Poll(ctx)
				if err != nil {
					fail(fmt.Errorf("poll: %w", err))
					return
				}
				if ok {
					mu.Lock()
					taken[item]++
					mu.Unlock()
				}
			}
		})
	}
	owners := map[string]string{}
	probe := openAll(0)
	for j, q := range probe {
		owners[names[j]] = string(c.Member(0).Cluster().Partition(q.Partition()).Owner)
	}
	joiner := c.Join() // returns once the partitions moved
	n := count()
	waitUntil(t, "200 offers after the join", func() bool { return count() >= n+200 })
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d calls failed while a member joined, first: %v", len(errs), errs[0])
	}

	moved := 0
	jid := c.Member(joiner).ID()
	for j, q := range probe {
		if now := c.Member(0).Cluster().Partition(q.Partition()).Owner; now == jid && owners[names[j]] != string(jid) {
			moved++
		}
	}
	if moved == 0 {
		t.Fatalf("none of the %d queues moved to the joining member: the test tested nothing", queues)
	}
	for _, q := range openAll(joiner) {
		rest, err := q.Drain(ctx, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range rest {
			taken[item]++
		}
	}
	for item := range offered {
		if taken[item] != 1 {
			t.Fatalf("item %d acknowledged by Offer was taken %d times", item, taken[item])
		}
	}
	for item, k := range taken {
		if !offered[item] {
			t.Fatalf("item %d taken %d times, never acknowledged", item, k)
		}
	}
	t.Logf("%d items offered and taken once each, %d of %d queues moved to the joiner", len(offered), moved, queues)
}

// waitUntil polls ok until it holds, failing the test after 30 s.
func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
