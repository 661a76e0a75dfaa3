package queue

import (
	"context"
	"fmt"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// ItemKind says what an ItemEvent reports.
type ItemKind uint8

const (
	// ItemAdded: an item was added at the tail (Offer, Put).
	ItemAdded ItemKind = iota + 1
	// ItemRemoved: an item was removed (Poll, Take, Drain, Clear).
	ItemRemoved
	// ItemsMissed is not about an item: the listener's queue was full and Missed events were
	// dropped at this point of the stream.
	ItemsMissed
)

func (k ItemKind) String() string {
	switch k {
	case ItemAdded:
		return "ItemAdded"
	case ItemRemoved:
		return "ItemRemoved"
	case ItemsMissed:
		return "ItemsMissed"
	}
	return fmt.Sprintf("ItemKind(%d)", uint8(k))
}

// ItemEvent is an item added to or removed from a queue, as its owner applied it.
type ItemEvent[T any] struct {
	Kind ItemKind
	// Item is the item, when the listener asked for values (ItemListenerOptions.IncludeItem)
	// and it decoded; else the zero T.
	Item T
	// Err is set when the item did not decode.
	Err error
	// Member is the owner that applied the change.
	Member partition.MemberID
	// Missed is the number of events dropped (ItemsMissed only).
	Missed uint64
}

// ItemListenerOptions configure an item listener.
type ItemListenerOptions struct {
	// IncludeItem delivers each event's item (it travels from the owner to the listener's
	// member). Default false: kinds only.
	IncludeItem bool
	// QueueSize is the number of events the listener may have waiting while it is busy; beyond
	// it events are dropped and reported by an ItemsMissed event with the exact count. Default
	// listener.DefaultQueueSize.
	QueueSize int
}

// ListenerHandle is a registered item listener.
type ListenerHandle struct{ reg engine.ListenerReg }

// Remove ends the listener. It may be called more than once, and from within the listener.
func (h *ListenerHandle) Remove() { h.reg.Remove() }

// Stats returns the listener's counters (events delivered, missed, queued).
func (h *ListenerHandle) Stats() listener.Stats { return h.reg.Stats() }

// AddItemListener calls fn, on this member, for every item added to or removed from the queue
// from now on, wherever it happened, in the order the owner applied them, one call at a time.
// It returns once every member has the registration (ErrTimeout if ctx ends first). After a
// failover, events in flight may be delivered again.
func (q *Queue[T]) AddItemListener(ctx context.Context, fn func(ItemEvent[T]), opts ItemListenerOptions) (*ListenerHandle, error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil item listener", ErrInvalidConfig)
	}
	if opts.QueueSize < 0 {
		return nil, fmt.Errorf("%w: negative QueueSize %d", ErrInvalidConfig, opts.QueueSize)
	}
	codec := q.codec
	deliver := func(ev listener.Event) {
		ie := ItemEvent[T]{Member: ev.Member, Missed: ev.Missed}
		var value []byte
		switch ev.Kind {
		case listener.Added:
			ie.Kind, value = ItemAdded, ev.NewValue
		case listener.Removed:
			ie.Kind, value = ItemRemoved, ev.OldValue
		case listener.Overflow:
			ie.Kind = ItemsMissed
		default:
			return
		}
		if opts.IncludeItem && value != nil {
			ie.Item, ie.Err = codec.Decode(value)
		}
		fn(ie)
	}
	reg, err := q.raw.AddClusterListener(ctx, deliver,
		listener.Options{IncludeValues: opts.IncludeItem, QueueSize: opts.QueueSize}, predItems, nil)
	if err != nil {
		return nil, err
	}
	return &ListenerHandle{reg: reg}, nil
}
