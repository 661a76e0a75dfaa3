package gridmap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/partition"
	"github.com/gridmap/gridmap/queue"
)

// The owner of a queue is a member PROCESS killed with SIGKILL while 8 producers and 8 consumers
// (on a member in the test's process, joined to the three member processes) move items through
// the queue: no acknowledged item is lost, and duplicates (possible only for an operation in
// flight at the crash) are counted and reported.
func TestQueueOwnerProcessKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	gossip := []string{freeGossipAddr(t), freeGossipAddr(t), freeGossipAddr(t)}
	children := startChildrenWith(t, gossip, func(int) []string { return nil }, nil)
	waitChildren(t, children, func(s childState) bool { return s.epoch > 0 && s.pending == 0 && s.minReplicas == 2 && s.mem == 3 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := testConfig(freeGossipAddr(t), gossip, 1)
	cfg.OperationTimeout = 30 * time.Second // as the children's
	m, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.kill)
	if err := m.Cluster().WaitSafe(ctx); err != nil {
		t.Fatal(err)
	}
	// A queue whose owner is one of the processes.
	var q *queue.Queue[int]
	var victim *child
	for i := 0; victim == nil; i++ {
		if q, err = queue.New[int](m.Queues(), fmt.Sprint("crash-", i)); err != nil {
			t.Fatal(err)
		}
		owner := m.Cluster().Partition(q.Partition()).Owner
		for _, c := range children {
			if partition.MemberID(c.id) == owner {
				victim = c
			}
		}
	}

	const producers, consumers, total, killAt = 8, 8, 6000, 2000
	var (
		next, offered, takes atomic.Int64
		mu                   sync.Mutex
		acked                = make(map[int]bool)
		failedOffers         = make(map[int]error)
		taken                = make(map[int]int)
		takeErrs             []error
		producing            sync.WaitGroup
		consuming            sync.WaitGroup
		done                 = make(chan struct{})
	)
	for range producers {
		producing.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				err := q.Offer(ctx, i)
				mu.Lock()
				if err != nil {
					failedOffers[i] = err // in flight at the crash: may or may not be in the queue
				} else {
					acked[i] = true
				}
				mu.Unlock()
				offered.Add(1)
			}
		})
	}
	for range consumers {
		consuming.Go(func() {
			for {
				tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				i, err := q.Take(tctx)
				cancel()
				switch {
				case err == nil:
					mu.Lock()
					taken[i]++
					mu.Unlock()
					takes.Add(1)
				case errors.Is(err, queue.ErrTimeout) && ctx.Err() == nil:
					select {
					case <-done:
						return
					default:
					}
				default:
					mu.Lock()
					takeErrs = append(takeErrs, err)
					mu.Unlock()
				}
			}
		})
	}
	waitFor(t, func() bool { return offered.Load() >= killAt && takes.Load() >= killAt/2 })
	if owner := m.Cluster().Partition(q.Partition()).Owner; owner != partition.MemberID(victim.id) {
		t.Fatalf("the queue moved to %s before the kill: the victim does not own it", owner)
	}
	victim.kill()
	killedAt := time.Now()
	offeredAtKill := offered.Load()
	producing.Wait()
	if owner := m.Cluster().Partition(q.Partition()).Owner; owner == partition.MemberID(victim.id) || offered.Load() == offeredAtKill {
		t.Fatalf("after the kill: owner %s, %d offers; want a new owner and the offers going on", owner, offered.Load()-offeredAtKill)
	}
	t.Logf("producers done %v after the kill, %d items offered after it", time.Since(killedAt).Round(time.Millisecond), offered.Load()-offeredAtKill)
	// Consumers go on until the queue is empty.
	waitFor(t, func() bool {
		n, err := q.Size(ctx)
		return err == nil && n == 0
	})
	close(done)
	consuming.Wait()

	mu.Lock()
	defer mu.Unlock()
	lost, dups := 0, 0
	for i := range total {
		switch n := taken[i]; {
		case n == 0 && acked[i]:
			lost++
			t.Errorf("acknowledged item %d was never taken", i)
		case n > 1:
			dups += n - 1
		}
	}
	if len(takeErrs) > 0 {
		t.Errorf("%d takes failed (an item they removed would be lost): first %v", len(takeErrs), takeErrs[0])
	}
	// Only an operation in flight at the crash may repeat: at most one per producer and consumer.
	if dups > producers+consumers {
		t.Errorf("%d duplicates: more than the %d operations that can be in flight at the crash", dups, producers+consumers)
	}
	t.Logf("%d items offered (%d acknowledged, %d offers failed at the crash), %d taken, %d lost, %d duplicates",
		total, len(acked), len(failedOffers), len(taken), lost, dups)
	for i, err := range failedOffers {
		t.Logf("offer %d failed: %v (taken %d times)", i, err, taken[i])
	}
}
