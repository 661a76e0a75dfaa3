package dmap

import (
	"context"
	"fmt"
	"iter"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/partition"
)

// Entry processor operations.
// MutableEntry is the typed entry a Processor works on.
type MutableEntry[K comparable, V any] struct {
	Key    K
	Value  V // the zero value when the entry does not exist
	Exists bool

	raw  *engine.RawEntry
	vals Codec[V]
	err  error
}

// SetValue replaces (or creates) the entry's value.
func (e *MutableEntry[K, V]) SetValue(v V) {
	b, err := e.vals.Encode(v)
	if err != nil {
		e.err = err
		return
	}
	e.raw.SetValue(b)
}

// Delete removes the entry.
func (e *MutableEntry[K, V]) Delete() { e.raw.Delete() }

// RegisterProcessorError registers err under name as an error value entry processors may
// return. When a processor's error matches err (errors.Is), on whichever member the processor
// ran, the caller of Execute, ExecuteOnKeys or ExecuteOnEntries gets an error that matches both
// ErrProcessor and err, with the processor's message: errors.Is(err, ErrOutOfStock) works as if
// the processor had run locally. The name travels between members, not the value, so register
// the same values under the same names on every member, as the processors themselves. An error
// that matches no registered value arrives as ErrProcessor with its message alone; one that
// matches several is carried as the first registered. A name or a value already registered on
// this member is refused with ErrAlreadyRegistered.
func (s *Service) RegisterProcessorError(name string, err error) error {
	return s.e.RegisterProcessorError(name, err)
}

// Processor is a typed entry processor: it receives the entry and the caller's argument and
// returns a result for the caller. It runs on the owner of the entry, with the partition's
// writes held back for its duration, so it is atomic with respect to the key (and its
// partition): it must be quick and must not call a map itself. Its changes are replicated to
// the backups like any write. An error it returns reaches the caller as ErrProcessor with its
// message.
type Processor[K comparable, V any, A any, R any] func(ctx context.Context, e *MutableEntry[K, V], arg A) (R, error)

// RegisterProcessor installs a typed processor under name on the member of svc, using the
// default codecs for keys, values, arguments and results. Register it on every member. A name
// already taken on this member is refused with ErrAlreadyRegistered.
//
// Keys and values are decoded with DefaultCodec whatever codecs the map was opened with, so
// for a map opened with WithKeyCodec or WithValueCodec the processor would see wrong keys or
// values and write values the map cannot read: use RegisterMapProcessor for such a map.
func RegisterProcessor[K comparable, V any, A any, R any](svc *Service, name string, fn Processor[K, V, A, R]) error {
	return registerProcessor(svc, name, DefaultCodec[K](), DefaultCodec[V](), fn)
}

// RegisterMapProcessor installs a typed processor under name on the member of m, decoding keys
// and values and encoding the values it sets with m's key and value codecs (those given to New
// with WithKeyCodec and WithValueCodec); arguments and results use DefaultCodec, as Execute
// does. Register it on every member, each with its own member's Map. Processors are
// registered per member, not per map: run it on m's map, or on maps with the same codecs. A
// name already taken on this member is refused with ErrAlreadyRegistered.
func RegisterMapProcessor[K comparable, V any, A any, R any](m *Map[K, V], name string, fn Processor[K, V, A, R]) error {
	return registerProcessor(m.svc, name, m.keys, m.vals, fn)
}

// registerProcessor wraps a typed processor in an engine processor that decodes keys and values
// with keys and vals, and arguments and results with DefaultCodec.
func registerProcessor[K comparable, V any, A any, R any](svc *Service, name string, keys Codec[K], vals Codec[V], fn Processor[K, V, A, R]) error {
	if fn == nil {
		return fmt.Errorf("%w: nil processor", ErrInvalidConfig)
	}
	args, results := DefaultCodec[A](), DefaultCodec[R]()
	return svc.e.RegisterProcessor(name, func(ctx context.Context, raw *engine.RawEntry, argb []byte) ([]byte, error) {
		k, err := keys.Decode(raw.Key)
		if err != nil {
			return nil, err
		}
		e := &MutableEntry[K, V]{Key: k, Exists: raw.Exists, raw: raw, vals: vals}
		if raw.Exists {
			if e.Value, err = vals.Decode(raw.Value); err != nil {
				return nil, err
			}
		}
		arg, err := args.Decode(argb)
		if err != nil {
			return nil, err
		}
		r, err := fn(ctx, e, arg)
		if err != nil {
			return nil, err
		}
		if e.err != nil {
			return nil, e.err
		}
		return results.Encode(r)
	})
}

// Execute runs the processor registered as name on key's owner and returns its result.
//
// The result type R comes first among the type parameters because it is the only one the
// arguments do not tell: K and V come from m, A from arg, so a call names R alone, as in
// Execute[int](ctx, m, "incr", key, 5).
func Execute[R any, K comparable, V any, A any](ctx context.Context, m *Map[K, V], name string, key K, arg A) (R, error) {
	var zero R
	ab, err := DefaultCodec[A]().Encode(arg)
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
	return DefaultCodec[R]().Decode(res)
}

// Result is one key's result of ExecuteOnKeys or ExecuteOnEntries.
type Result[K comparable, R any] struct {
	Key   K
	Value R
}

// ExecuteOnKeys runs the processor on every key, in parallel across the owners, and yields the
// results as they arrive (in no particular order). On failure it yields one error and stops.
//
// As with Execute, a call names the result type alone: ExecuteOnKeys[int](ctx, m, name, keys, arg).
func ExecuteOnKeys[R any, K comparable, V any, A any](ctx context.Context, m *Map[K, V], name string, keys []K, arg A) iter.Seq2[Result[K, R], error] {
	return engine.ParallelStream(ctx, len(keys), func(ctx context.Context, i int) ([]Result[K, R], error) {
		r, err := Execute[R](ctx, m, name, keys[i], arg)
		return []Result[K, R]{{Key: keys[i], Value: r}}, err
	})
}

// ExecuteOnEntries runs the processor on every entry of the map, each partition atomically on
// its owner, partitions in parallel, and yields the results as they arrive.
//
// Each partition's run happens at least once, not exactly once as with Execute: the run
// carries no operation ID, because its answer (a result per entry) is too large for the owner
// to remember (see answers.go). When the call to a partition's owner fails after the owner may
// have applied the run (the connection or the reply is lost, or the owner dies after its
// backups received the run's changes), the call is sent again, to the same or the new owner,
// and the processor runs a second time on every entry of that partition, on the values the
// first run left; the results yielded for that partition are those of the last run. A
// partition whose run was answered is never run again by this call, and a run the owner
// refused (it did not own the partition, had lost its lease, or a key was locked by another
// holder) was not applied. When a repeat matters, make the processor idempotent (set values
// rather than add to them) or use ExecuteOnKeys, whose Execute calls are exactly once.
//
// As with Execute, a call names the result type alone: ExecuteOnEntries[int](ctx, m, name, arg).
func ExecuteOnEntries[R any, K comparable, V any, A any](ctx context.Context, m *Map[K, V], name string, arg A) iter.Seq2[Result[K, R], error] {
	return engine.ParallelStream(ctx, m.svc.e.PartitionCount(), func(ctx context.Context, i int) ([]Result[K, R], error) {
		ab, err := DefaultCodec[A]().Encode(arg)
		if err != nil {
			return nil, err
		}
		entries, err := m.raw.ExecuteAll(ctx, name, partition.ID(i), ab)
		if err != nil {
			return nil, err
		}
		out := make([]Result[K, R], 0, len(entries))
		for _, e := range entries {
			k, err := m.keys.Decode(e.Key)
			if err != nil {
				return nil, err
			}
			r, err := DefaultCodec[R]().Decode(e.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, Result[K, R]{Key: k, Value: r})
		}
		return out, nil
	})
}
