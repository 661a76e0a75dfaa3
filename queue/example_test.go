package queue_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/queue"
)

// A queue hands each item to one consumer, whichever member it runs on: producers Offer,
// consumers Take (waiting while the queue is empty, as long as their context allows).
func Example() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	crashes, err := queue.New[string](member.Queues(), "crash-ids")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, id := range []string{"a1", "b2", "c3"} {
		if err := crashes.Offer(ctx, id); err != nil {
			fmt.Println(err)
			return
		}
	}
	for range 3 {
		id, err := crashes.Take(ctx)
		fmt.Println(id, err)
	}
	// A Take on the empty queue waits until its context ends.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err = crashes.Take(wctx)
	fmt.Println(errors.Is(err, queue.ErrTimeout))
	// Output:
	// a1 <nil>
	// b2 <nil>
	// c3 <nil>
	// true
}

// A queue with a capacity refuses items beyond it: Offer at once, OfferWait after waiting for
// room, both with ErrQueueFull. Put would wait as long as its context allows.
func ExampleQueue_OfferWait() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{
		Queues: map[string]queue.Config{"uploads": {Capacity: 2}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	uploads, _ := queue.New[int](member.Queues(), "uploads")
	fmt.Println(uploads.Offer(ctx, 1), uploads.Offer(ctx, 2))
	err = uploads.OfferWait(ctx, 3, 20*time.Millisecond)
	fmt.Println(errors.Is(err, queue.ErrQueueFull))
	n, _ := uploads.Size(ctx)
	fmt.Println(n)
	// Output:
	// <nil> <nil>
	// true
	// 2
}

// Item listeners see every item added and removed, cluster-wide, in the owner's order.
func ExampleQueue_AddItemListener() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	jobs, _ := queue.New[string](member.Queues(), "jobs")
	events := make(chan string, 4)
	h, err := jobs.AddItemListener(ctx, func(ev queue.ItemEvent[string]) {
		events <- ev.Kind.String() + " " + ev.Item
	}, queue.ItemListenerOptions{IncludeItem: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Remove()
	jobs.Offer(ctx, "resize")
	jobs.Poll(ctx)
	fmt.Println(<-events)
	fmt.Println(<-events)
	// Output:
	// ItemAdded resize
	// ItemRemoved resize
}

// Job is an example item.
type Job struct {
	Report string
	Step   int
}

// One queue is served by one member; several queues ("shards") spread over the members. A
// producer picks a shard round robin (or by a hash of the item's key, to keep one key's items
// in order); a consumer polls the shards in turn and waits only when a whole round found nothing.
func Example_sharded() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{
		Queues: map[string]queue.Config{
			"uploads": {Capacity: 10_000}, // Offer refuses beyond it
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)

	const shards = 4
	queues := make([]*queue.Queue[Job], shards)
	for i := range queues {
		queues[i], _ = queue.New[Job](member.Queues(), fmt.Sprintf("jobs-%d", i))
	}
	// Producers: round robin, or a hash of the item's key when one key's items must stay in order.
	var next atomic.Uint64
	for i := range 6 {
		shard := queues[next.Add(1)%shards]
		if err := shard.Offer(ctx, Job{Report: fmt.Sprint("r", i)}); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Consumers: poll the shards in turn from a shard of their own; wait only after an empty round.
	taken, start := 0, 1
	for taken < 6 {
		found := false
		for i := range shards {
			job, ok, err := queues[(start+i)%shards].Poll(ctx)
			if err != nil {
				fmt.Println(err)
				return
			}
			if ok {
				found = true
				taken++
				_ = job // process it
			}
		}
		if !found {
			wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			if job, err := queues[start].Take(wctx); err == nil {
				taken++
				_ = job // process it
			}
			cancel()
		}
	}
	fmt.Println(taken)
	// Output: 6
}

// A health check reads the member's give-backs: the items of takes whose callers gave up
// before the owner's answer came are put back at the head of their queue by the member, which
// keeps trying while it runs. Lost or Unknown above zero means items may have been removed
// without reaching a caller (the member closed holding them, or an owner forgot a removal).
func ExampleService_GiveBacks() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	st := member.Queues().GiveBacks()
	if st.Lost+st.Unknown > 0 {
		fmt.Printf("queue items may be lost: %d items, %d removals\n", st.Lost, st.Unknown)
	}
	fmt.Printf("returned %d, holding %d\n", st.Returned, st.Holding)
	// Output:
	// returned 0, holding 0
}
