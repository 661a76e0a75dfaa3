package mapstore

import "context"

// Loader reads one key from the store when a map misses it (read-through).
//
// The owner of the key's partition calls Load on the goroutine of the reader that missed, at
// most once at a time per key: concurrent readers of a missing key share one call. Load may
// block; it must honour ctx. Load must not modify key, which belongs to the caller for the
// duration of the call; the returned value belongs to the map afterwards (the store must not
// keep or modify it).
type Loader interface {
	// Load returns the value stored under key. found is false (and err nil) when the store has no
	// such key; err reports a failure to read, which the reader sees.
	Load(ctx context.Context, key []byte) (value []byte, found bool, err error)
}

// LoaderFunc adapts a function to a Loader.
type LoaderFunc func(ctx context.Context, key []byte) (value []byte, found bool, err error)

// Load calls f.
func (f LoaderFunc) Load(ctx context.Context, key []byte) ([]byte, bool, error) {
	return f(ctx, key)
}
