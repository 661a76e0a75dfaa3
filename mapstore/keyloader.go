package mapstore

import "context"

// KeyLoader lists every key of the store for a map's initial load.
//
// The initial load runs once for the whole cluster: one member calls LoadAllKeys, and each key is
// then loaded by the owner of its partition (with AllLoader or Loader). LoadAllKeys is called on a
// goroutine of the map service, never concurrently with itself for the same map; it may block and
// must honour ctx.
type KeyLoader interface {
	// LoadAllKeys calls fn for every key in the store, in any order, without buffering them all.
	// The key slice is only valid during fn (fn copies what it keeps). If fn returns an error,
	// LoadAllKeys stops and returns that error.
	LoadAllKeys(ctx context.Context, fn func(key []byte) error) error
}
