package dmap

import (
	"context"
	"fmt"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/partition"
)

// PartitionAware is implemented by keys that choose their partition explicitly: entries whose
// keys return the same PartitionKey live in the same partition, on the same member, in every
// map ("co-keyed" entries), which is what co-keyed transactions and local processing rely on. A
// string key k and a PartitionAware key whose PartitionKey is k also land together.
type PartitionAware interface {
	PartitionKey() string
}

// Map is a typed view of one distributed map. It is safe for concurrent use. Every method that
// talks to the cluster takes a context; when it has no deadline, gridmap.Config.OperationTimeout
// applies.
type Map[K comparable, V any] struct {
	svc  *Service
	raw  *engine.Map
	keys Codec[K]
	vals Codec[V]
	// lendValues is set when V is []byte with the passthrough codec: a value is then sent to a
	// remote owner as it is, without a copy (see opRequest.borrowed).
	lendValues bool
}

// Option configures a Map.
type Option[K comparable, V any] func(*Map[K, V])

// WithKeyCodec sets the codec for keys. Default: DefaultCodec[K]().
//
// The value type V comes first because a call cannot infer it (K comes from c), so a call
// names V alone: WithKeyCodec[int](c) for a map of int values.
func WithKeyCodec[V any, K comparable](c Codec[K]) Option[K, V] {
	return func(m *Map[K, V]) { m.keys = c }
}

// WithValueCodec sets the codec for values. Default: DefaultCodec[V]().
//
// The key type K comes first because a call cannot infer it (V comes from c), so a call names
// K alone: WithValueCodec[string](c) for a map with string keys.
func WithValueCodec[K comparable, V any](c Codec[V]) Option[K, V] {
	return func(m *Map[K, V]) { m.vals = c }
}

// New returns the map called name on the member whose service is svc. Maps are cheap views:
// the entries live in the service's partitions, and every member that opens the same name sees
// the same entries. Both sides must use compatible codecs.
func New[K comparable, V any](svc *Service, name string, opts ...Option[K, V]) (*Map[K, V], error) {
	if svc == nil {
		return nil, fmt.Errorf("%w: nil service", ErrInvalidConfig)
	}
	if err := engine.CheckMapName(name); err != nil {
		return nil, err
	}
	m := &Map[K, V]{svc: svc, keys: DefaultCodec[K](), vals: DefaultCodec[V]()}
	for _, o := range opts {
		o(m)
	}
	if m.keys == nil || m.vals == nil {
		return nil, fmt.Errorf("%w: nil codec", ErrInvalidConfig)
	}
	_, m.lendValues = any(m.vals).(bytesCodec)
	raw, err := svc.e.OpenMap(name, m.partitionOfStored)
	if err != nil {
		return nil, err
	}
	m.raw = raw
	return m, nil
}

// partitionOfStored partitions a key as stored (encoded) the way the map does.
func (m *Map[K, V]) partitionOfStored(key []byte) (partition.ID, error) {
	k, err := m.keys.Decode(key)
	if err != nil {
		return 0, err
	}
	_, p, err := m.encodeKey(k)
	return p, err
}

// Name returns the map's name.
func (m *Map[K, V]) Name() string { return m.raw.Name() }

// Partition returns the partition a key belongs to.
func (m *Map[K, V]) Partition(key K) (partition.ID, error) {
	_, p, err := m.encodeKey(key)
	return p, err
}

func (m *Map[K, V]) encodeKey(key K) ([]byte, partition.ID, error) {
	b, err := m.keys.Encode(key)
	if err != nil {
		return nil, 0, err
	}
	pk := b
	// The first conversion only tests the type, so it does not escape and costs no allocation;
	// the second, which does, runs for PartitionAware keys only.
	if _, ok := any(key).(PartitionAware); ok {
		pk = []byte(any(key).(PartitionAware).PartitionKey())
	}
	return b, m.svc.e.PartitionOf(pk), nil
}

// keyOp encodes key and runs a single-key operation on it. value may be borrowed (still the
// caller's): it is copied only if this member serves the operation itself.
func (m *Map[K, V]) keyOp(ctx context.Context, kind engine.OpKind, key K, value []byte, borrowed bool, ttl time.Duration, expect []byte) (engine.Response, error) {
	kb, p, err := m.encodeKey(key)
	if err != nil {
		return engine.Response{}, err
	}
	return m.raw.KeyOp(ctx, kind, kb, p, value, borrowed, ttl, expect)
}

// Get returns the value stored under key, or ErrNotFound.
func (m *Map[K, V]) Get(ctx context.Context, key K) (V, error) {
	var zero V
	resp, err := m.keyOp(ctx, engine.OpGet, key, nil, false, 0, nil)
	if err != nil {
		return zero, err
	}
	if resp.NotFound() {
		return zero, ErrNotFound
	}
	if m.lendValues && resp.Owned() && len(resp.Value) > 0 {
		// A remote owner's answer is already the caller's copy: no second one.
		if v, ok := any(resp.Value).(V); ok {
			return v, nil
		}
	}
	return m.vals.Decode(resp.Value)
}

// ContainsKey reports whether key has a live entry.
func (m *Map[K, V]) ContainsKey(ctx context.Context, key K) (bool, error) {
	resp, err := m.keyOp(ctx, engine.OpContains, key, nil, false, 0, nil)
	return resp.Done, err
}

// PutOption modifies a write.
type PutOption func(*putOptions)

type putOptions struct{ ttl time.Duration }

// WithTTL makes the entry expire d after the write (measured by the owner's clock). Zero means
// never, which is the default.
func WithTTL(d time.Duration) PutOption { return func(o *putOptions) { o.ttl = d } }

func (m *Map[K, V]) write(ctx context.Context, kind engine.OpKind, key K, value V, expect []byte, opts []PutOption) (bool, error) {
	var o putOptions
	for _, f := range opts {
		f(&o)
	}
	var vb []byte
	borrowed := false
	if b, ok := any(value).([]byte); ok && m.lendValues {
		vb, borrowed = b, true
	} else {
		var err error
		if vb, err = m.vals.Encode(value); err != nil {
			return false, err
		}
	}
	resp, err := m.keyOp(ctx, kind, key, vb, borrowed, o.ttl, expect)
	return resp.Done, err
}

// Put stores value under key. It returns once the owner applied the write and every
// synchronous backup acknowledged it.
func (m *Map[K, V]) Put(ctx context.Context, key K, value V, opts ...PutOption) error {
	_, err := m.write(ctx, engine.OpPut, key, value, nil, opts)
	return err
}

// PutIfAbsent stores value only if key has no live entry, and reports whether it did.
func (m *Map[K, V]) PutIfAbsent(ctx context.Context, key K, value V, opts ...PutOption) (bool, error) {
	return m.write(ctx, engine.OpPutIfAbsent, key, value, nil, opts)
}

// Replace stores value only if key has a live entry, and reports whether it did.
func (m *Map[K, V]) Replace(ctx context.Context, key K, value V, opts ...PutOption) (bool, error) {
	return m.write(ctx, engine.OpReplace, key, value, nil, opts)
}

// ReplaceIfSame stores value only if key's current value encodes to the same bytes as old
// (compare-and-swap), and reports whether it did.
func (m *Map[K, V]) ReplaceIfSame(ctx context.Context, key K, old, value V, opts ...PutOption) (bool, error) {
	ob, err := m.vals.Encode(old)
	if err != nil {
		return false, err
	}
	if ob == nil {
		ob = []byte{}
	}
	return m.write(ctx, engine.OpReplaceIfSame, key, value, ob, opts)
}

// Delete removes key and reports whether it had a live entry.
func (m *Map[K, V]) Delete(ctx context.Context, key K) (bool, error) {
	resp, err := m.keyOp(ctx, engine.OpDelete, key, nil, false, 0, nil)
	return resp.Done, err
}

// Size returns the number of live entries in the map, summed over every partition's owner.
// Concurrent writes may or may not be counted. Each partition is counted between two of its
// writes: a write whose backups have not acknowledged it yet is waited for, never counted
// before (the same holds for Entries and Keys).
func (m *Map[K, V]) Size(ctx context.Context) (int, error) {
	return m.raw.Size(ctx)
}

// Clear removes every entry of the map, partition by partition (each partition atomically).
func (m *Map[K, V]) Clear(ctx context.Context) error {
	return m.raw.Clear(ctx)
}

// Flush returns once every write made to the map before the call is in its store (a no-op for
// maps without write-behind). Entries whose store keeps failing keep Flush waiting until ctx
// ends.
func (m *Map[K, V]) Flush(ctx context.Context) error {
	return m.raw.Flush(ctx)
}
