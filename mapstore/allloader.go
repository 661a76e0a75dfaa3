package mapstore

import "context"

// AllLoader loads many keys in one call: the partition owners use it during the initial load,
// in chunks of at most Config.BatchSize keys, instead of calling Loader.Load once per key.
//
// The owner of the keys' partition calls LoadAll on a goroutine of the map service; all keys of
// one call belong to one partition and are distinct. It may block and must honour ctx. The keys
// belong to the caller and must not be modified.
type AllLoader interface {
	// LoadAll calls fn once for every key of keys that the store holds, in any order; keys the
	// store does not hold are skipped. The value passed to fn belongs to the map afterwards; the
	// key is one of the slices of keys. If fn returns an error, LoadAll stops and returns it.
	LoadAll(ctx context.Context, keys [][]byte, fn func(key, value []byte) error) error
}
