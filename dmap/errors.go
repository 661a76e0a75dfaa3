package dmap

import "github.com/gridmap/gridmap/internal/engine"

// Errors returned by maps. Check them with errors.Is. They are the engine's own values, so an
// error from any member's map service, local or remote, matches them.
var (
	// ErrNotFound: the key has no live entry.
	ErrNotFound = engine.ErrNotFound
	// ErrClosed: the member's map service has been closed.
	ErrClosed = engine.ErrClosed
	// ErrTimeout: the operation did not complete before its deadline (the caller's context or
	// gridmap.Config.OperationTimeout), which travels with it to the partition's owner: the owner stops
	// waiting (for its table, its store, its backups) when it passes, and a write still queued
	// for its partition then is not applied. A write that times out may or may not have been
	// applied. The error also wraps the context's error, so errors.Is matches it with
	// context.Canceled when the caller's context was cancelled and with
	// context.DeadlineExceeded when a deadline passed (the context's, OperationTimeout, or the
	// owner's copy of the deadline).
	ErrTimeout = engine.ErrTimeout
	// ErrValueTooLarge: a key or value is larger than Config.MaxValueSize.
	ErrValueTooLarge = engine.ErrValueTooLarge
	// ErrInvalidConfig: a Config or Option is wrong; the message lists every problem.
	ErrInvalidConfig = engine.ErrInvalidConfig
	// ErrCodec: a key or value could not be encoded or decoded.
	ErrCodec = engine.ErrCodec
	// ErrBadRequest: a peer sent a request this member cannot decode or does not understand.
	ErrBadRequest = engine.ErrBadRequest
	// ErrNotLockOwner: Unlock by someone who does not hold the lock.
	ErrNotLockOwner = engine.ErrNotLockOwner
	// ErrLocked: the key is locked by another holder. TryLock returns it at once; Lock and
	// writes to a locked key wait for the lock instead, as long as their context allows, and
	// then end with ErrTimeout.
	ErrLocked = engine.ErrLocked
	// ErrConflict: a transaction read an entry that another write changed before the commit;
	// nothing of the transaction was applied. Retry the transaction.
	ErrConflict = engine.ErrConflict
	// ErrCrossPartition: a transaction touched keys of different partitions. Give the keys a
	// common partition key (PartitionAware) to make them co-keyed.
	ErrCrossPartition = engine.ErrCrossPartition
	// ErrTxDone: the transaction was already committed or rolled back.
	ErrTxDone = engine.ErrTxDone
	// ErrNoProcessor: no entry processor is registered under that name on the owner.
	ErrNoProcessor = engine.ErrNoProcessor
	// ErrNoPredicate: no event predicate is registered under that name on this member.
	ErrNoPredicate = engine.ErrNoPredicate
	// ErrAlreadyRegistered: an entry processor or event predicate is already registered under
	// that name on this member (RegisterProcessor, RegisterPredicate and their Map and Service
	// forms); the first stays. Registration is local, so no remote owner answers with it, but
	// it has a wire status like every sentinel.
	ErrAlreadyRegistered = engine.ErrAlreadyRegistered
	// ErrProcessor: an entry processor returned an error; the message carries it.
	ErrProcessor = engine.ErrProcessor
	// ErrStore: a write-through map's store failed; the write was not applied.
	ErrStore = engine.ErrStore
	// ErrDirtyLimit: a write-behind map's dirty data reached its limit on the owner and the
	// writer's context ended while it waited; the write was not applied. It wraps
	// mapstore.ErrDirtyLimit.
	ErrDirtyLimit = engine.ErrDirtyLimit
	// ErrMemoryLimit: the write would grow the memory of the key's owner past its budget
	// (gridmap.Config.MemoryBudget), or one of the partition's backups is at its own, and
	// nothing could be evicted to make room before the write's deadline or context ended: the
	// write waited for room (back-pressure), then was refused, applied nowhere. Reads, deletes
	// and overwrites that do not grow an entry always pass; once memory is freed, growing
	// writes succeed again.
	ErrMemoryLimit = engine.ErrMemoryLimit
	// ErrPartitionLost: every replica of the key's partition died before its data could be
	// copied elsewhere, so its entries are gone. Operations on the partition fail with it until
	// the application resets it (Member.ResetLostPartitions), unless the cluster is configured
	// to re-create lost partitions empty. A PartitionLost event tells every member.
	ErrPartitionLost = engine.ErrPartitionLost
	// ErrRestoreIncomplete: the key's partition is not restored from the data folders of a
	// restarted cluster, because folders that may hold its newest copy are absent (the message
	// names them) and gridmap.Config.RestoreTimeout passed. Start their members, or allow a
	// partial restore (gridmap.Config.RestorePolicy, Cluster.AllowPartialRestore).
	ErrRestoreIncomplete = engine.ErrRestoreIncomplete
	// ErrOutcomeUnknown: a write sent again after an attempt whose answer never came (a lost
	// connection, a timeout) may or may not have been applied, and its owner cannot tell: it
	// no longer remembers answers as old as the first attempt (it keeps them at least
	// engine.MaxRetryWindow, 30 s, unless the partition is written thousands of times in that
	// time or its copy on that member is younger than the attempt), or an earlier attempt was
	// applied but not acknowledged by every backup. The write was not applied again: read the
	// entry to learn what happened.
	ErrOutcomeUnknown = engine.ErrOutcomeUnknown
)
