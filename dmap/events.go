package dmap

import (
	"context"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// This file holds entry events: the observer that turns an owner's applied mutations (and its
// expiry sweep) into listener.Events, the local entry listeners, and the predicate registry
// shared with the cluster-wide listeners (cluster_listener.go).

// EntryEvent is one change of one entry as a listener receives it, typed with the map's codecs,
// or (Kind listener.Overflow) a notice that events were missed.
type EntryEvent[K comparable, V any] struct {
	// Kind says what happened (see listener.Kind).
	Kind listener.Kind
	// Map is the map's name.
	Map string
	// Key is the entry's key (zero for an Overflow notice).
	Key K
	// OldValue is the value before the change (Updated, Removed, Expired) when the listener was
	// registered with IncludeValues; the zero value otherwise.
	OldValue V
	// NewValue is the value after the change (Added, Updated) when the listener was registered
	// with IncludeValues; the zero value otherwise.
	NewValue V
	// Partition is the key's partition (-1 for an Overflow notice).
	Partition partition.ID
	// Member is the member that owned the entry when it changed (for an Overflow notice: the
	// member whose queue overflowed).
	Member partition.MemberID
	// Seq is the partition's sequence number of the change: it orders the events of a key. An
	// Expired event carries the partition's sequence number at the time of the sweep.
	Seq uint64
	// Missed is, for an Overflow notice, the exact number of events this listener missed at
	// this point of its stream.
	Missed uint64
	// Err is set when the key or a value could not be decoded; the other fields are then
	// partly filled.
	Err error
}

// ListenerOptions configure an entry listener. The zero value delivers every event of the map,
// without values, through a queue of listener.DefaultQueueSize events.
type ListenerOptions[K comparable] struct {
	// IncludeValues delivers OldValue and NewValue (decoded for the listener). Default false.
	IncludeValues bool
	// QueueSize is the number of events the listener may have waiting while it is busy; beyond
	// it events are dropped and counted, and the listener gets an Overflow notice with the
	// exact count. Default listener.DefaultQueueSize (when 0).
	QueueSize int
	// Key, when not nil, restricts the listener to the events of that one key. The filter runs
	// on the entry's owner.
	Key *K
	// Predicate, when not empty, names a predicate registered with RegisterPredicate or
	// RegisterMapPredicate (for a map with its own codecs) on every member; only events it accepts are delivered. It runs on the entry's owner, before
	// the event is queued, so a rejected event costs nothing downstream (for a cluster-wide
	// listener: it never crosses the network).
	Predicate string
	// PredicateArg is the predicate's argument: []byte and string are passed as they are,
	// anything else is encoded with msgpack (so it decodes with DefaultCodec of the
	// predicate's argument type, as entry processors' arguments do).
	PredicateArg any
}

func (o ListenerOptions[K]) validate() error {
	if o.QueueSize < 0 {
		return fmt.Errorf("%w: QueueSize %d is negative", ErrInvalidConfig, o.QueueSize)
	}
	return nil
}

// ListenerHandle is a registered listener: an entry listener (AddEntryListener,
// AddLocalEntryListener) or a partition listener (Service.AddPartitionListener). Remove ends
// it; Stats counts what it received and missed.
type ListenerHandle struct {
	remove func()
	stats  func() listener.Stats
}

// Remove ends the listener: no event is queued for it any more and queued ones are discarded.
// A call of the listener in progress completes. Remove may be called more than once, and from
// within the listener.
func (h *ListenerHandle) Remove() { h.remove() }

// Stats returns the listener's counters: events delivered, events missed (all of them, wherever
// they were dropped: on this member or, for a cluster-wide listener, on the owners), and events
// queued on this member now.
func (h *ListenerHandle) Stats() listener.Stats { return h.stats() }

// RegisterPredicate installs a typed event predicate under name on the member of svc: it
// receives each event of a map with keys K and values V (both values decoded, whatever the
// listener's IncludeValues says) and the listener's argument decoded as A with DefaultCodec, and
// returns whether to deliver the event. It runs on the owner of each event's entry, on the
// publishing goroutine with the partition's writes held back: it must be fast, must not block
// or call a map, and must not keep the event's values. An event whose key
// or values do not decode is rejected. Register it on every member. A name already taken on
// this member is refused with ErrAlreadyRegistered.
//
// Keys and values are decoded with DefaultCodec whatever codecs the map was opened with, so
// for a map opened with WithKeyCodec or WithValueCodec the predicate would see wrong keys or
// values (or reject every event): use RegisterMapPredicate for such a map.
func RegisterPredicate[K comparable, V any, A any](svc *Service, name string, fn func(e EntryEvent[K, V], arg A) bool) error {
	return registerPredicate(svc, name, DefaultCodec[K](), DefaultCodec[V](), fn)
}

// RegisterMapPredicate installs a typed event predicate under name on the member of m, decoding
// the events' keys and values with m's key and value codecs (those given to New with
// WithKeyCodec and WithValueCodec); the listener's argument is decoded with DefaultCodec, as
// for RegisterPredicate, which it otherwise matches. Register it on every member, each with its
// own member's Map. Predicates are registered per member, not per map: use it in listeners of
// m's map, or of maps with the same codecs. A name already taken on this member is refused
// with ErrAlreadyRegistered.
func RegisterMapPredicate[K comparable, V any, A any](m *Map[K, V], name string, fn func(e EntryEvent[K, V], arg A) bool) error {
	return registerPredicate(m.svc, name, m.keys, m.vals, fn)
}

// registerPredicate wraps a typed predicate in an engine predicate that decodes events with keys and
// vals, and the argument with DefaultCodec.
func registerPredicate[K comparable, V any, A any](svc *Service, name string, keys Codec[K], vals Codec[V], fn func(e EntryEvent[K, V], arg A) bool) error {
	if fn == nil {
		return fmt.Errorf("%w: nil predicate", ErrInvalidConfig)
	}
	args := DefaultCodec[A]()
	return svc.e.RegisterPredicate(name, func(argb []byte) (func(listener.Event) bool, error) {
		arg, err := args.Decode(argb)
		if err != nil {
			return nil, err
		}
		return func(ev listener.Event) bool {
			e := typedEvent(ev, keys, vals)
			return e.Err == nil && fn(e, arg)
		}, nil
	})
}

// encodeArg encodes a predicate argument the way DefaultCodec would for its dynamic type.
func encodeArg(v any) ([]byte, error) {
	switch a := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return a, nil
	case string:
		return []byte(a), nil
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode predicate argument %T: %v", ErrCodec, v, err)
	}
	return b, nil
}

// typedEvent decodes a raw event. Values are decoded only when present.
func typedEvent[K comparable, V any](ev listener.Event, keys Codec[K], vals Codec[V]) EntryEvent[K, V] {
	e := EntryEvent[K, V]{Kind: ev.Kind, Map: ev.Map, Partition: ev.Partition, Member: ev.Member, Seq: ev.Seq, Missed: ev.Missed}
	if ev.Kind == listener.Overflow {
		return e
	}
	var err error
	if e.Key, err = keys.Decode(ev.Key); err != nil {
		e.Err = err
		return e
	}
	if ev.OldValue != nil {
		if e.OldValue, err = vals.Decode(ev.OldValue); err != nil {
			e.Err = err
		}
	}
	if ev.NewValue != nil {
		if e.NewValue, err = vals.Decode(ev.NewValue); err != nil {
			e.Err = err
		}
	}
	return e
}

// listenerOptions turns typed options into the dispatcher's (and the cluster registration's)
// raw form: encoded key, compiled predicate and its encoded argument.
func (m *Map[K, V]) rawListenerOptions(opts ListenerOptions[K]) (lo listener.Options, arg []byte, err error) {
	if err := opts.validate(); err != nil {
		return lo, nil, err
	}
	lo = listener.Options{IncludeValues: opts.IncludeValues, QueueSize: opts.QueueSize}
	if opts.Key != nil {
		if lo.Key, err = m.keys.Encode(*opts.Key); err != nil {
			return lo, nil, err
		}
		if lo.Key == nil {
			lo.Key = []byte{}
		}
	}
	if opts.Predicate != "" {
		if arg, err = encodeArg(opts.PredicateArg); err != nil {
			return lo, nil, err
		}
		if lo.Predicate, err = m.svc.e.CompilePredicate(opts.Predicate, arg); err != nil {
			return lo, nil, err
		}
	}
	return lo, arg, nil
}

// AddLocalEntryListener registers fn for the events of this map's entries that this member
// owns: it runs only on the owner of an entry, once per event, in order per key (indeed per
// partition), from its own bounded queue on a goroutine of its own, so a slow fn delays nothing
// but its own queue. When the queue overflows, writes go on and fn receives an Overflow notice
// with the exact number of events it missed. When a partition moves, this member's listeners
// stop receiving its events and the new owner's listeners receive its later ones; events in
// flight during a failover or migration may be delivered again on the new owner. Combine it with
// a sweep over LocalEntries to handle every entry at least once.
//
// An event is published once the write is visible to reads: after its synchronous backups
// acknowledged it. So fn may read the entry it is told of, or a co-keyed entry written by the
// same transaction, and find it; a write that dies with its owner before its backups
// acknowledged it is never announced.
//
// Events: Added, Updated and Removed for writes (Put and the like, Delete, Clear, entry
// processors, transactions), Expired from the owner's expiry sweep (an expired entry overwritten
// before the sweep found it produces an Added event only). Locks produce no events.
//
// Its shape is AddEntryListener's, so switching between the two changes only the name. A
// local registration involves no other member and blocks on nothing: ctx only refuses a
// context that has already ended (ErrTimeout wrapping ctx.Err(); nothing is registered).
// The listener outlives ctx: Remove on the returned handle ends it.
func (m *Map[K, V]) AddLocalEntryListener(ctx context.Context, fn func(EntryEvent[K, V]), opts ListenerOptions[K]) (*ListenerHandle, error) {
	if err := m.svc.e.CheckRegistration(ctx, fn == nil); err != nil {
		return nil, err
	}
	lo, _, err := m.rawListenerOptions(opts)
	if err != nil {
		return nil, err
	}
	keys, vals := m.keys, m.vals
	reg, err := m.raw.AddLocalListener(func(ev listener.Event) { fn(typedEvent(ev, keys, vals)) }, lo)
	if err != nil {
		return nil, err
	}
	return &ListenerHandle{remove: reg.Remove, stats: reg.Stats}, nil
}

// AddEntryListener registers fn for the events of this map's entries on every member: each
// owner runs the key filter and the predicate of opts (see ListenerOptions) on its own events
// and sends the accepted ones to this member in batches, so unwanted events never cross the
// network. fn runs on this member, on a goroutine of its own, from a bounded queue: events of
// one partition arrive in the order of their writes. When events are dropped (this member's
// queue or an owner's outgoing queue was full), fn gets an Overflow notice with the exact number
// missed; nothing is dropped silently. After a failover or a migration, events in flight may be
// delivered again.
//
// The registration is cluster state: it returns once every member of the cluster has it
// (ErrTimeout if ctx ends first; nothing is registered then), members that join later receive
// it, and it is dropped everywhere when this member leaves or dies. A named predicate must be
// registered on every member; an owner that lacks it counts the events as missed.
func (m *Map[K, V]) AddEntryListener(ctx context.Context, fn func(EntryEvent[K, V]), opts ListenerOptions[K]) (*ListenerHandle, error) {
	if err := m.svc.e.CheckRegistration(ctx, fn == nil); err != nil {
		return nil, err
	}
	lo, arg, err := m.rawListenerOptions(opts)
	if err != nil {
		return nil, err
	}
	keys, vals := m.keys, m.vals
	reg, err := m.raw.AddClusterListener(ctx, func(ev listener.Event) { fn(typedEvent(ev, keys, vals)) }, lo, opts.Predicate, arg)
	if err != nil {
		return nil, err
	}
	return &ListenerHandle{remove: reg.Remove, stats: reg.Stats}, nil
}
