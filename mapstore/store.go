package mapstore

import "context"

// Store writes a map's changes to the database.
//
// With write-through (Config.WriteDelay 0) the owner of the key's partition calls Store or Delete
// on the writer's goroutine before acknowledging the write, and the writer sees the error. With
// write-behind a flusher goroutine of the owner calls them, after the delay; an error keeps the
// entry dirty and the call is retried with backoff for as long as it takes, unless it is a
// *RejectedError (the database can never take that entry): that is counted, logged and not
// retried.
//
// Calls for one key are never concurrent and arrive in the order the writes were applied. Calls
// for different keys may be concurrent. A call may be repeated (retries, failover, migration), so
// both methods must be idempotent. Both may block and must honour ctx. key and value belong to
// the caller and are only valid during the call: a store that keeps them must copy them, and it
// must never modify them.
type Store interface {
	// Store saves value under key, replacing any earlier value.
	Store(ctx context.Context, key, value []byte) error
	// Delete removes key. Deleting a key the store does not hold is not an error.
	Delete(ctx context.Context, key []byte) error
}
