package mapstore

import "context"

// BatchStore is implemented by stores that write many entries in one call. gridmap finds it by
// type assertion on the Store and then sends write-behind batches (at most Config.BatchSize
// entries) through it instead of calling Store and Delete per key.
//
// The rules of Store apply: the keys of one call are distinct and belong to one partition, calls
// covering the same key are never concurrent, and a failed call is retried as a whole, so
// StoreAll and DeleteAll must be idempotent. An error means the whole batch stays dirty, even if
// the store applied part of it, except a *RejectedError: the store applied every entry but the
// keys it lists, which it can never store, and write-behind does not retry them. The slices and
// everything they hold belong to the caller and are only valid during the call.
type BatchStore interface {
	Store
	// StoreAll saves values[i] under keys[i] for every i; len(keys) == len(values).
	StoreAll(ctx context.Context, keys, values [][]byte) error
	// DeleteAll removes every key of keys; missing keys are not an error.
	DeleteAll(ctx context.Context, keys [][]byte) error
}
