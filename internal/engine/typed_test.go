package engine

import (
	"context"
	"fmt"
	"iter"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// The engine's tests drive it through tmap, a small typed view over its untyped Map: keys and
// values are encoded as dmap's default codecs do ([]byte and string as they are, anything else
// with msgpack), so that tests read like the façade's callers while exercising only the engine
// (the façade's own behaviour is tested in dmap).

// testCodec encodes and decodes T as dmap.DefaultCodec does.
type testCodec[T any] struct{}

func (testCodec[T]) Encode(v T) ([]byte, error) {
	switch x := any(v).(type) {
	case []byte:
		return append([]byte(nil), x...), nil
	case string:
		return []byte(x), nil
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCodec, err)
	}
	return b, nil
}

func (testCodec[T]) Decode(b []byte) (T, error) {
	var v T
	switch p := any(&v).(type) {
	case *[]byte:
		*p = append([]byte(nil), b...)
		return v, nil
	case *string:
		*p = string(b)
		return v, nil
	}
	if err := msgpack.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%w: %v", ErrCodec, err)
	}
	return v, nil
}

// tmap is a typed test view of one map on a member.
type tmap[K comparable, V any] struct {
	s   *Service
	raw *Map
}

func newTMap[K comparable, V any](s *Service, name string) (*tmap[K, V], error) {
	m := &tmap[K, V]{s: s}
	raw, err := s.OpenMap(name, func(key []byte) (partition.ID, error) {
		k, err := testCodec[K]{}.Decode(key)
		if err != nil {
			return 0, err
		}
		return m.Partition(k)
	})
	if err != nil {
		return nil, err
	}
	m.raw = raw
	return m, nil
}

func (m *tmap[K, V]) encodeKey(key K) ([]byte, partition.ID, error) {
	b, err := testCodec[K]{}.Encode(key)
	if err != nil {
		return nil, 0, err
	}
	pk := b
	if pa, ok := any(key).(interface{ PartitionKey() string }); ok {
		pk = []byte(pa.PartitionKey())
	}
	return b, m.s.PartitionOf(pk), nil
}

func (m *tmap[K, V]) Partition(key K) (partition.ID, error) {
	_, p, err := m.encodeKey(key)
	return p, err
}

type putOpt struct{ ttl time.Duration }

func WithTTL(d time.Duration) putOpt { return putOpt{ttl: d} }

func (m *tmap[K, V]) op(ctx context.Context, kind OpKind, key K, value []byte, expect []byte, opts []putOpt) (Response, error) {
	kb, p, err := m.encodeKey(key)
	if err != nil {
		return Response{}, err
	}
	var ttl time.Duration
	for _, o := range opts {
		ttl = o.ttl
	}
	return m.raw.KeyOp(ctx, kind, kb, p, value, false, ttl, expect)
}

func (m *tmap[K, V]) write(ctx context.Context, kind OpKind, key K, value V, expect []byte, opts []putOpt) (bool, error) {
	vb, err := testCodec[V]{}.Encode(value)
	if err != nil {
		return false, err
	}
	resp, err := m.op(ctx, kind, key, vb, expect, opts)
	return resp.Done, err
}

func (m *tmap[K, V]) Put(ctx context.Context, key K, value V, opts ...putOpt) error {
	_, err := m.write(ctx, OpPut, key, value, nil, opts)
	return err
}

func (m *tmap[K, V]) PutIfAbsent(ctx context.Context, key K, value V, opts ...putOpt) (bool, error) {
	return m.write(ctx, OpPutIfAbsent, key, value, nil, opts)
}

func (m *tmap[K, V]) Replace(ctx context.Context, key K, value V, opts ...putOpt) (bool, error) {
	return m.write(ctx, OpReplace, key, value, nil, opts)
}

func (m *tmap[K, V]) ReplaceIfSame(ctx context.Context, key K, old, value V, opts ...putOpt) (bool, error) {
	ob, err := testCodec[V]{}.Encode(old)
	if err != nil {
		return false, err
	}
	if ob == nil {
		ob = []byte{}
	}
	return m.write(ctx, OpReplaceIfSame, key, value, ob, opts)
}

func (m *tmap[K, V]) Get(ctx context.Context, key K) (V, error) {
	var zero V
	resp, err := m.op(ctx, OpGet, key, nil, nil, nil)
	if err != nil {
		return zero, err
	}
	if resp.NotFound() {
		return zero, ErrNotFound
	}
	return testCodec[V]{}.Decode(resp.Value)
}

func (m *tmap[K, V]) ContainsKey(ctx context.Context, key K) (bool, error) {
	resp, err := m.op(ctx, OpContains, key, nil, nil, nil)
	return resp.Done, err
}

func (m *tmap[K, V]) Delete(ctx context.Context, key K) (bool, error) {
	resp, err := m.op(ctx, OpDelete, key, nil, nil, nil)
	return resp.Done, err
}

func (m *tmap[K, V]) Size(ctx context.Context) (int, error) { return m.raw.Size(ctx) }
func (m *tmap[K, V]) Clear(ctx context.Context) error       { return m.raw.Clear(ctx) }
func (m *tmap[K, V]) Flush(ctx context.Context) error       { return m.raw.Flush(ctx) }

// entry is a decoded key and value.
type entry[K comparable, V any] struct {
	Key   K
	Value V
}

func decodeKV[K comparable, V any](e KV) (entry[K, V], error) {
	k, err := testCodec[K]{}.Decode(e.Key)
	if err != nil {
		return entry[K, V]{}, err
	}
	var v V
	if e.Value != nil {
		if v, err = (testCodec[V]{}).Decode(e.Value); err != nil {
			return entry[K, V]{}, err
		}
	}
	return entry[K, V]{k, v}, nil
}

func (m *tmap[K, V]) Entries(ctx context.Context) iter.Seq2[entry[K, V], error] {
	return func(yield func(entry[K, V], error) bool) {
		for p := range m.s.PartitionCount() {
			entries, err := m.raw.Scan(ctx, partition.ID(p), true)
			if err != nil {
				yield(entry[K, V]{}, err)
				return
			}
			for _, e := range entries {
				if !yield(decodeKV[K, V](e)) {
					return
				}
			}
		}
	}
}

func (m *tmap[K, V]) Keys(ctx context.Context) iter.Seq2[K, error] {
	return func(yield func(K, error) bool) {
		for p := range m.s.PartitionCount() {
			entries, err := m.raw.Scan(ctx, partition.ID(p), false)
			if err != nil {
				var zero K
				yield(zero, err)
				return
			}
			for _, e := range entries {
				if !yield(testCodec[K]{}.Decode(e.Key)) {
					return
				}
			}
		}
	}
}

func (m *tmap[K, V]) LocalKeys() iter.Seq2[K, error] {
	return func(yield func(K, error) bool) {
		for _, p := range m.raw.LocalPartitions() {
			entries, err := m.raw.LocalScan(p, false)
			if err != nil {
				var zero K
				yield(zero, err)
				return
			}
			for _, e := range entries {
				if !yield(testCodec[K]{}.Decode(e.Key)) {
					return
				}
			}
		}
	}
}

// keyLock is a held lock.
type keyLock[K comparable, V any] struct {
	m      *tmap[K, V]
	key    K
	holder string
}

func (m *tmap[K, V]) Lock(ctx context.Context, key K, lease time.Duration) (*keyLock[K, V], error) {
	holder, err := m.s.NewHolder()
	if err != nil {
		return nil, err
	}
	kb, p, err := m.encodeKey(key)
	if err != nil {
		return nil, err
	}
	if _, err := m.raw.LockOp(ctx, OpLock, kb, p, holder, lease); err != nil {
		return nil, err
	}
	return &keyLock[K, V]{m: m, key: key, holder: holder}, nil
}

func (l *keyLock[K, V]) Unlock(ctx context.Context) error {
	kb, p, err := l.m.encodeKey(l.key)
	if err != nil {
		return err
	}
	resp, err := l.m.raw.LockOp(ctx, OpUnlock, kb, p, l.holder, 0)
	if err == nil && !resp.Done {
		err = ErrNotLockOwner
	}
	return err
}

// txMap is a map seen through a transaction.
type txMap[K comparable, V any] struct {
	tx *Tx
	m  *tmap[K, V]
}

func inTx[K comparable, V any](tx *Tx, m *tmap[K, V]) txMap[K, V] { return txMap[K, V]{tx, m} }

func (t txMap[K, V]) Put(ctx context.Context, key K, value V) error {
	kb, p, err := t.m.encodeKey(key)
	if err != nil {
		return err
	}
	vb, err := testCodec[V]{}.Encode(value)
	if err != nil {
		return err
	}
	return t.tx.Put(t.m.raw, kb, p, vb, 0)
}

// Execute runs the processor name on key with arg and decodes its result as R.
func Execute[R any, K comparable, V any, A any](ctx context.Context, m *tmap[K, V], name string, key K, arg A) (R, error) {
	var zero R
	ab, err := testCodec[A]{}.Encode(arg)
	if err != nil {
		return zero, err
	}
	kb, p, err := m.encodeKey(key)
	if err != nil {
		return zero, err
	}
	res, err := m.raw.Execute(ctx, name, kb, p, ab)
	if err != nil {
		return zero, err
	}
	return testCodec[R]{}.Decode(res)
}

// registerIncr registers on every member "incr", a processor that adds its int argument to an
// int entry and returns the new value.
func registerIncr(t *testing.T, c *cluster) {
	t.Helper()
	for _, s := range c.Svcs {
		err := s.RegisterProcessor("incr", func(ctx context.Context, e *RawEntry, arg []byte) ([]byte, error) {
			by, err := testCodec[int]{}.Decode(arg)
			if err != nil {
				return nil, err
			}
			var v int
			if e.Exists {
				if v, err = (testCodec[int]{}).Decode(e.Value); err != nil {
					return nil, err
				}
			}
			nb, err := testCodec[int]{}.Encode(v + by)
			if err != nil {
				return nil, err
			}
			e.SetValue(nb)
			return nb, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// EntryEvent is a decoded listener event.
type EntryEvent[K comparable, V any] struct {
	Kind               listener.Kind
	Map                string
	Key                K
	OldValue, NewValue V
	Partition          partition.ID
	Member             partition.MemberID
	Seq, Missed        uint64
	Err                error
}

func typedEvent[K comparable, V any](ev listener.Event) EntryEvent[K, V] {
	e := EntryEvent[K, V]{Kind: ev.Kind, Map: ev.Map, Partition: ev.Partition, Member: ev.Member, Seq: ev.Seq, Missed: ev.Missed}
	if ev.Kind == listener.Overflow {
		return e
	}
	var err error
	if e.Key, err = (testCodec[K]{}).Decode(ev.Key); err != nil {
		e.Err = err
		return e
	}
	if ev.OldValue != nil {
		if e.OldValue, err = (testCodec[V]{}).Decode(ev.OldValue); err != nil {
			e.Err = err
		}
	}
	if ev.NewValue != nil {
		if e.NewValue, err = (testCodec[V]{}).Decode(ev.NewValue); err != nil {
			e.Err = err
		}
	}
	return e
}

// ListenerOptions are a test listener's options (see dmap.ListenerOptions).
type ListenerOptions[K comparable] struct {
	IncludeValues bool
	QueueSize     int
	Key           *K
	Predicate     string
	PredicateArg  any
}

func (m *tmap[K, V]) rawOptions(opts ListenerOptions[K]) (lo listener.Options, arg []byte, err error) {
	lo = listener.Options{IncludeValues: opts.IncludeValues, QueueSize: opts.QueueSize}
	if opts.Key != nil {
		if lo.Key, err = (testCodec[K]{}).Encode(*opts.Key); err != nil {
			return lo, nil, err
		}
		if lo.Key == nil {
			lo.Key = []byte{}
		}
	}
	if opts.Predicate != "" {
		if arg, err = msgpack.Marshal(opts.PredicateArg); err != nil {
			return lo, nil, err
		}
		if lo.Predicate, err = m.s.CompilePredicate(opts.Predicate, arg); err != nil {
			return lo, nil, err
		}
	}
	return lo, arg, nil
}

func (m *tmap[K, V]) AddLocalEntryListener(ctx context.Context, fn func(EntryEvent[K, V]), opts ListenerOptions[K]) (ListenerReg, error) {
	if err := m.s.CheckRegistration(ctx, fn == nil); err != nil {
		return ListenerReg{}, err
	}
	lo, _, err := m.rawOptions(opts)
	if err != nil {
		return ListenerReg{}, err
	}
	return m.raw.AddLocalListener(func(ev listener.Event) { fn(typedEvent[K, V](ev)) }, lo)
}

func (m *tmap[K, V]) AddEntryListener(ctx context.Context, fn func(EntryEvent[K, V]), opts ListenerOptions[K]) (ListenerReg, error) {
	lo, arg, err := m.rawOptions(opts)
	if err != nil {
		return ListenerReg{}, err
	}
	return m.raw.AddClusterListener(ctx, func(ev listener.Event) { fn(typedEvent[K, V](ev)) }, lo, opts.Predicate, arg)
}

// RegisterPredicate registers a typed event predicate on s, its argument decoded as A.
func RegisterPredicate[K comparable, V any, A any](s *Service, name string, fn func(e EntryEvent[K, V], arg A) bool) error {
	return s.RegisterPredicate(name, func(argb []byte) (func(listener.Event) bool, error) {
		var arg A
		if err := msgpack.Unmarshal(argb, &arg); err != nil {
			return nil, err
		}
		return func(ev listener.Event) bool {
			e := typedEvent[K, V](ev)
			return e.Err == nil && fn(e, arg)
		}, nil
	})
}
