package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/partition"
)

// Bounds of one call to the queue's owner.
const (
	// pollBatchBytes bounds the items one Drain call to the owner takes (at least one item is
	// always taken); Drain calls again for more.
	pollBatchBytes = 1 << 20
	// clearBatch is the most items one Clear call to the owner removes.
	clearBatch = 4096
	// takeRecovery bounds how long a removal whose answer did not arrive (a timeout) is sent
	// again, as the same operation, to get its items (see take) while its caller waits: long
	// enough for a lossy link or a failover, short enough that a caller cut off from the
	// owner hears of it (giveBack then goes on in the background). It is the engine's MaxRetryWindow, which owners keep
	// answers for (so that such a retry gets the first answer).
	takeRecovery = engine.MaxRetryWindow
)

// Queue is a typed view of one distributed FIFO queue. Its items live on the owner of the
// partition of the queue's name, with the member's synchronous backups. It is safe for
// concurrent use. Every method that talks to the cluster takes a context; when it has no
// deadline, gridmap.Config.OperationTimeout bounds each call to the owner.
//
// Items are handed out once: an item a Poll, Take or Drain returned is gone from the queue,
// on every replica. A call that removes items and whose answer is lost or late is sent again
// as the same operation, which the owner answers with the items it removed the first time.
// Every call returns when its context ends; when a removal's outcome is unknown then (sent,
// not answered), the member gets its items in the background and puts them back at the head
// of the queue (trying for as long as the member runs; Service.GiveBacks counts what it could
// not settle), so that no item is removed without reaching a caller. A removal sent again so late, or after so many writes of the queue's
// partition, that the owner no longer remembers the first call's answer is not run again: it
// fails with ErrOutcomeUnknown, which says that items may have been removed for nobody.
type Queue[T any] struct {
	svc   *Service
	name  string
	raw   *engine.Map
	part  partition.ID
	codec dmap.Codec[T]
}

// Option configures a Queue.
type Option[T any] func(*Queue[T])

// WithCodec sets the codec for items. Default: dmap.DefaultCodec[T]() ([]byte and string as they
// are, anything else with msgpack). Every member must use compatible codecs for a queue.
func WithCodec[T any](c dmap.Codec[T]) Option[T] { return func(q *Queue[T]) { q.codec = c } }

// New returns the queue called name on the member whose service is svc. Queues are cheap
// views: every member that opens the same name sees the same items. A queue and a map of the
// same name are unrelated.
func New[T any](svc *Service, name string, opts ...Option[T]) (*Queue[T], error) {
	if svc == nil {
		return nil, fmt.Errorf("%w: nil service", ErrInvalidConfig)
	}
	if name == "" {
		return nil, fmt.Errorf("%w: empty queue name", ErrInvalidConfig)
	}
	q := &Queue[T]{svc: svc, name: name, part: svc.e.PartitionOf([]byte(name)), codec: dmap.DefaultCodec[T]()}
	for _, o := range opts {
		o(q)
	}
	if q.codec == nil {
		return nil, fmt.Errorf("%w: nil codec", ErrInvalidConfig)
	}
	raw, err := svc.e.OpenStructureMap(kind, name, func([]byte) (partition.ID, error) { return q.part, nil })
	if err != nil {
		return nil, err
	}
	q.raw = raw
	return q, nil
}

// Name returns the queue's name.
func (q *Queue[T]) Name() string { return q.name }

// Partition returns the partition that holds the queue: the partition of its name. Its owner
// serves every operation on the queue (see the package documentation on sharding).
func (q *Queue[T]) Partition() partition.ID { return q.part }

// Offer adds item at the tail if the queue has room, and returns once the owner added it and
// every synchronous backup acknowledged it. On a full queue it fails at once with ErrQueueFull.
// When the owner's memory budget (or a backup's) is used up, it waits for memory to be freed
// as long as ctx allows, then fails with ErrMemoryLimit (as do OfferWait and Put).
func (q *Queue[T]) Offer(ctx context.Context, item T) error {
	b, err := q.codec.Encode(item)
	if err != nil {
		return err
	}
	ok, err := q.offer(ctx, b)
	if err == nil && !ok {
		err = ErrQueueFull
	}
	return err
}

// OfferWait is Offer waiting up to timeout for room in a full queue; ErrQueueFull when the
// queue is still full then (ErrTimeout when ctx ended first).
func (q *Queue[T]) OfferWait(ctx context.Context, item T, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := q.put(ctx, wctx, item)
	if errors.Is(err, ErrTimeout) && ctx.Err() == nil {
		return fmt.Errorf("%w: no room within %v", ErrQueueFull, timeout)
	}
	return err
}

// Put adds item at the tail, waiting for room while the queue is full, as long as ctx allows
// (then ErrTimeout, with ErrQueueFull when the queue was full).
func (q *Queue[T]) Put(ctx context.Context, item T) error { return q.put(ctx, ctx, item) }

// put offers item with ctx until it is accepted, waiting for room as long as wctx allows.
func (q *Queue[T]) put(ctx, wctx context.Context, item T) error {
	b, err := q.codec.Encode(item)
	if err != nil {
		return err
	}
	err = q.svc.waits.until(wctx, q.raw, forRoom, func() (bool, error) { return q.offer(ctx, b) })
	if err != nil && wctx.Err() != nil && !errors.Is(err, ErrTimeout) {
		return fmt.Errorf("%w: %w: %w", ErrQueueFull, ErrTimeout, err)
	}
	return err
}

// offer offers b once: true when added, false when the queue is full.
func (q *Queue[T]) offer(ctx context.Context, b []byte) (bool, error) {
	res, err := q.raw.ExecutePartition(ctx, procOffer, q.part, encodeItems([][]byte{b}))
	if err != nil {
		return false, q.opErr(err)
	}
	if len(res) != 1 {
		return false, fmt.Errorf("%w: queue %s: offer answered %d bytes", ErrCorrupt, q.name, len(res))
	}
	switch res[0] {
	case offerAccepted:
		return true, nil
	case offerNoMemory:
		return false, fmt.Errorf("%w: queue %s", ErrMemoryLimit, q.name)
	}
	return false, nil
}

// opErr turns a processor's failure into the queue's error.
func (q *Queue[T]) opErr(err error) error {
	if errors.Is(err, engine.ErrProcessor) {
		return fmt.Errorf("%w: queue %s: %w", ErrCorrupt, q.name, err)
	}
	return err
}

// Poll removes and returns the head item; false when the queue is empty.
func (q *Queue[T]) Poll(ctx context.Context) (T, bool, error) {
	items, err := q.take(ctx, 1)
	if err != nil || len(items) == 0 {
		var zero T
		return zero, false, err
	}
	return items[0], true, nil
}

// Take removes and returns the head item, waiting while the queue is empty as long as ctx
// allows (then ErrTimeout, wrapping ctx's error).
func (q *Queue[T]) Take(ctx context.Context) (T, error) {
	var item T
	err := q.svc.waits.until(ctx, q.raw, forItem, func() (bool, error) {
		items, err := q.take(ctx, 1)
		if len(items) > 0 {
			item = items[0]
		}
		return len(items) > 0, err
	})
	if err != nil && !errors.Is(err, ErrTimeout) && ctx.Err() != nil {
		err = fmt.Errorf("%w: waiting for an item: %w", ErrTimeout, err)
	}
	return item, err
}

// Drain removes and returns up to max items from the head (fewer when the queue holds fewer),
// oldest first, in calls of about 1 MiB to the owner.
func (q *Queue[T]) Drain(ctx context.Context, max int) ([]T, error) {
	var out []T
	for len(out) < max {
		items, err := q.take(ctx, max-len(out))
		out = append(out, items...)
		if err != nil || len(items) == 0 {
			return out, err
		}
	}
	return out, nil
}

// take runs one poll of up to max items on the owner and returns its items, or ErrTimeout
// once ctx ends. The poll runs apart from ctx (only ctx's values reach it), on a goroutine of
// the member's engine (handOff), so that an answer that comes after the caller gave up is not
// thrown away: the items go back to the head of the queue (giveBack). An attempt that ends
// without an answer (a timeout: the poll may have been applied, its answer lost or late) is sent
// again at once as the same operation, which the owner answers with the items it removed the
// first time (or polls afresh when the first never arrived). An owner that applied the poll but
// whose backups did not acknowledge it answers with the items and an error: they are returned
// (a failover to a backup that missed the poll would hand them out again: a duplicate, never a
// loss). An owner that no longer remembers whether the first attempt removed items answers
// ErrOutcomeUnknown, returned as such: never an empty answer, since items may be gone.
func (q *Queue[T]) take(ctx context.Context, max int) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	arg := uvarintArgs(uint64(max), pollBatchBytes)
	h := &handOff{done: make(chan struct{})}
	started := q.svc.e.Go(func(ectx context.Context) {
		// The engine's context ends the poll only when the member closes.
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(ectx, cancel)
		defer func() { stop(); cancel() }()
		var a engine.Attempt
		res, err := retryAttempt(pctx, q.raw, &a, procPoll, q.part, arg, q.svc.recovery)
		unanswered := err != nil && len(res) == 0 && errors.Is(err, engine.ErrTimeout)
		if !h.deliver(res, err) || unanswered {
			// The caller gave up, or hears of a timeout: the removal, which may have
			// been applied, is this goroutine's to settle.
			q.svc.giveBack(ectx, q.raw, q.part, &a, arg, res, err)
		}
	})
	if !started {
		return nil, fmt.Errorf("queue %s: %w", q.name, engine.ErrClosed)
	}
	select {
	case <-h.done:
	case <-ctx.Done():
		if h.abandon() {
			return nil, fmt.Errorf("%w: queue %s: %w", ErrTimeout, q.name, ctx.Err())
		}
		<-h.done // delivered meanwhile
	}
	if h.err == nil || len(h.res) > 0 {
		return q.decode(h.res)
	}
	if errors.Is(h.err, ErrOutcomeUnknown) {
		return nil, fmt.Errorf("queue %s: a removal sent again after its answer was lost may have taken items that reached no caller: %w", q.name, h.err)
	}
	return nil, q.opErr(h.err)
}

func (q *Queue[T]) decode(res []byte) ([]T, error) {
	raw, err := decodeItems(res)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(raw))
	for _, b := range raw {
		v, err := q.codec.Decode(b)
		if err != nil {
			// The items are gone from the queue: return those decoded with the error.
			return out, fmt.Errorf("queue %s: item %d of %d: %w", q.name, len(out), len(raw), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Peek returns the head item without removing it; false when the queue is empty.
func (q *Queue[T]) Peek(ctx context.Context) (T, bool, error) {
	var zero T
	res, err := q.raw.ExecutePartition(ctx, procPeek, q.part, nil)
	if err != nil {
		return zero, false, q.opErr(err)
	}
	items, err := q.decode(res)
	if err != nil || len(items) == 0 {
		return zero, false, err
	}
	return items[0], true, nil
}

// Size returns the number of items in the queue.
func (q *Queue[T]) Size(ctx context.Context) (int, error) {
	res, err := q.raw.ExecutePartition(ctx, procSize, q.part, nil)
	if err != nil {
		return 0, q.opErr(err)
	}
	n, err := uvarints(res, 1)
	if err != nil {
		return 0, err
	}
	return int(n[0]), nil
}

// Clear removes the items the queue holds when Clear starts, in batches of up to 4096 items
// (each batch atomic); items offered meanwhile stay.
func (q *Queue[T]) Clear(ctx context.Context) error {
	var upTo uint64
	for {
		res, err := q.raw.ExecutePartition(ctx, procClear, q.part, uvarintArgs(upTo))
		if err != nil {
			return q.opErr(err)
		}
		n, err := uvarints(res, 2)
		if err != nil {
			return err
		}
		if n[0] >= n[1] {
			return nil
		}
		upTo = n[1]
	}
}
