package dmap

import (
	"context"
	"iter"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/partition"
)

// Entry is a key and its value.
type Entry[K comparable, V any] struct {
	Key   K
	Value V
}

// Entries iterates over every entry of the map, cluster-wide, one partition at a time: only one
// partition's entries are held in memory at once. Each partition is read atomically from its
// owner; writes concurrent with the iteration may or may not be seen. On failure the iterator
// yields one error (with a zero entry) and stops.
func (m *Map[K, V]) Entries(ctx context.Context) iter.Seq2[Entry[K, V], error] {
	return func(yield func(Entry[K, V], error) bool) {
		for p := range m.svc.e.PartitionCount() {
			entries, err := m.raw.Scan(ctx, partition.ID(p), true)
			if err != nil {
				yield(Entry[K, V]{}, err)
				return
			}
			if !m.yieldEntries(entries, yield) {
				return
			}
		}
	}
}

// Keys iterates over every key of the map, cluster-wide, one partition at a time (see Entries).
func (m *Map[K, V]) Keys(ctx context.Context) iter.Seq2[K, error] {
	return func(yield func(K, error) bool) {
		var zero K
		for p := range m.svc.e.PartitionCount() {
			entries, err := m.raw.Scan(ctx, partition.ID(p), false)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, e := range entries {
				k, err := m.keys.Decode(e.Key)
				if !yield(k, err) || err != nil {
					return
				}
			}
		}
	}
}

// LocalEntries iterates over the entries of the partitions this member owns, read from its own
// memory (values paged out under the memory budget from its own data folder) without network
// calls. It is how an application finishes lingering work on the data it
// owns (for example after a failover). Unlike Get and the cluster-wide scans, it may yield a
// write whose backups have not acknowledged it yet.
func (m *Map[K, V]) LocalEntries() iter.Seq2[Entry[K, V], error] {
	return func(yield func(Entry[K, V], error) bool) {
		for _, p := range m.raw.LocalPartitions() {
			entries, err := m.raw.LocalScan(p, true)
			if err != nil {
				yield(Entry[K, V]{}, err)
				return
			}
			if !m.yieldEntries(entries, yield) {
				return
			}
		}
	}
}

// LocalKeys iterates over the keys of the partitions this member owns (see LocalEntries).
func (m *Map[K, V]) LocalKeys() iter.Seq2[K, error] {
	return func(yield func(K, error) bool) {
		for _, p := range m.raw.LocalPartitions() {
			entries, err := m.raw.LocalScan(p, false)
			if err != nil {
				var zero K
				yield(zero, err)
				return
			}
			for _, e := range entries {
				k, err := m.keys.Decode(e.Key)
				if !yield(k, err) || err != nil {
					return
				}
			}
		}
	}
}

func (m *Map[K, V]) yieldEntries(entries []engine.KV, yield func(Entry[K, V], error) bool) bool {
	for _, e := range entries {
		k, err := m.keys.Decode(e.Key)
		if err != nil {
			yield(Entry[K, V]{}, err)
			return false
		}
		v, err := m.vals.Decode(e.Value)
		if err != nil {
			yield(Entry[K, V]{}, err)
			return false
		}
		if !yield(Entry[K, V]{Key: k, Value: v}, nil) {
			return false
		}
	}
	return true
}
