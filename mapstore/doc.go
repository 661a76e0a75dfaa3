// Package mapstore is the contract between a gridmap map and the database behind it, and the
// configuration of write-through and write-behind persistence.
//
// # The contract
//
// A map may have a [Loader] (read-through: a missing key is loaded on read), a [KeyLoader] and an
// [AllLoader] (the initial load of every key), and a [Store] (write-through or write-behind). A
// store that can write many entries in one call implements [BatchStore] as well; gridmap finds it
// by type assertion. Keys and values are []byte here: typed codecs live in package dmap.
//
// Every call for one key comes from the member that owns the key's partition, one at a time and
// in the order the writes were applied: calls for one key are never concurrent. Calls for
// different keys may run concurrently (different partitions flush in parallel). After a failover
// or a migration a call may be repeated, and a failed call is retried until it succeeds, so
// every method must be idempotent: storing a value twice, or deleting a missing key, is not an
// error. The one error that is not retried is a [RejectedError] (matching [ErrRejected]): the
// store applied the call except for the keys it lists, which it can never store (a document its
// schema refuses); write-behind counts and logs them and goes on.
//
// # Write-behind
//
// With [Config.WriteDelay] 0 a write calls Store before it is acknowledged (write-through) and
// fails if the store fails. With a delay, the member keeps dirty entries in a per-partition
// queue (one pending entry per key when coalescing: the latest value wins; every value in order
// otherwise), replicated to the partition's backups and moved with it, and stores them in
// batches of [Config.BatchSize] once their delay has elapsed. A failed batch stays dirty and is
// retried with exponential backoff ([Config.RetryInitial], [Config.RetryMax]) for as long as it
// takes. [Config.MaxDirtyBytes] and [Config.MaxDirtyEntries] bound a map's dirty data on a
// member: writers then wait, and get [ErrDirtyLimit] if their context ends first.
//
// # Backends
//
// Package mapstore/memstore is an in-memory store with fault injection for tests and examples;
// package mapstore/pebblestore is a store on cockroachdb/pebble in one local folder. (A cluster's
// embedded default is gridmap.Config.DataDir, which keeps every replica's copy: docs/restart.md.)
//
// # Tests
//
// The tests are fast and deterministic (they poll for conditions with deadlines). The only long
// variant is pebblestore's crash test, which kills its child 20 times instead of 2 with the build
// tag "long": go test -race -tags long ./mapstore/...
package mapstore
