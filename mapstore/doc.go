// Package mapstore is the contract between a gridmap map and the database behind it, and the
// clock-free bookkeeping of write-behind.
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
// fails if the store fails. With a delay, writes are recorded in a per-partition [Queue]: one
// pending entry per key when coalescing (the latest value wins), every value in order otherwise.
// [Queue.Ready] hands out batches whose delay has elapsed, [Queue.Ack] forgets what was stored
// (unless the key was written again meanwhile) and [Queue.Fail] keeps everything and backs off
// exponentially, with no limit on the number of tries. The queue is plain data, driven with the
// time as an argument; [Queue.Snapshot] and [Queue.Restore] copy it to backups and migration
// targets. A shared [Budget] bounds the dirty bytes and entries of a map on a member: writers
// wait in [Budget.Wait] and get [ErrDirtyLimit] when their context ends. [Flusher] is a small
// driver that flushes one queue on a timer with the real clock.
//
// # Backends
//
// Package mapstore/memstore is an in-memory store with fault injection for tests and examples;
// package mapstore/pebblestore is the embedded default store on cockroachdb/pebble.
//
// # Tests
//
// The tests are fast and deterministic (they poll for conditions with deadlines). The only long
// variant is pebblestore's crash test, which kills its child 20 times instead of 2 with the build
// tag "long": go test -race -tags long ./mapstore/...
package mapstore
