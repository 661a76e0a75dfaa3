package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/gridmap/gridmap/mapstore"
)

// Errors returned by maps. Check them with errors.Is.
var (
	// ErrNotFound: the key has no live entry.
	ErrNotFound = errors.New("dmap: key not found")
	// ErrClosed: the member's map service has been closed.
	ErrClosed = errors.New("dmap: closed")
	// ErrTimeout: the operation did not complete before its deadline (the caller's context or
	// Config.OperationTimeout), which travels with it to the partition's owner: the owner stops
	// waiting (for its table, its store, its backups) when it passes, and a write still queued
	// for its partition then is not applied. A write that times out may or may not have been
	// applied. The error also wraps the context's error, so errors.Is matches it with
	// context.Canceled when the caller's context was cancelled and with
	// context.DeadlineExceeded when a deadline passed (the context's, OperationTimeout, or the
	// owner's copy of the deadline).
	ErrTimeout = errors.New("dmap: operation timed out")
	// ErrValueTooLarge: a key or value is larger than Config.MaxValueSize.
	ErrValueTooLarge = errors.New("dmap: value too large")
	// ErrInvalidConfig: a Config or Option is wrong; the message lists every problem.
	ErrInvalidConfig = errors.New("dmap: invalid configuration")
	// ErrCodec: a key or value could not be encoded or decoded.
	ErrCodec = errors.New("dmap: codec error")
	// ErrBadRequest: a peer sent a request this member cannot decode or does not understand.
	ErrBadRequest = errors.New("dmap: bad request")
	// ErrNotLockOwner: Unlock by someone who does not hold the lock.
	ErrNotLockOwner = errors.New("dmap: lock not held by the caller")
	// ErrLocked: the key is locked by another holder. TryLock returns it at once; Lock and
	// writes to a locked key wait for the lock instead, as long as their context allows, and
	// then end with ErrTimeout.
	ErrLocked = errors.New("dmap: key locked by another holder")
	// ErrConflict: a transaction read an entry that another write changed before the commit;
	// nothing of the transaction was applied. Retry the transaction.
	ErrConflict = errors.New("dmap: transaction conflict")
	// ErrCrossPartition: a transaction touched keys of different partitions. Give the keys a
	// common partition key (PartitionAware) to make them co-keyed.
	ErrCrossPartition = errors.New("dmap: transaction spans partitions")
	// ErrTxDone: the transaction was already committed or rolled back.
	ErrTxDone = errors.New("dmap: transaction already finished")
	// ErrNoProcessor: no entry processor is registered under that name on the owner.
	ErrNoProcessor = errors.New("dmap: no such entry processor")
	// ErrNoPredicate: no event predicate is registered under that name on this member.
	ErrNoPredicate = errors.New("dmap: no such event predicate")
	// ErrAlreadyRegistered: an entry processor or event predicate is already registered under
	// that name on this member (RegisterProcessor, RegisterPredicate and their Map and Service
	// forms); the first stays. Registration is local, so no remote owner answers with it, but
	// it has a wire status like every sentinel.
	ErrAlreadyRegistered = errors.New("dmap: name already registered")
	// ErrProcessor: an entry processor returned an error; the message carries it.
	ErrProcessor = errors.New("dmap: entry processor failed")
	// ErrStore: a write-through map's store failed; the write was not applied.
	ErrStore = errors.New("dmap: store failed")
	// ErrDirtyLimit: a write-behind map's dirty data reached its limit on the owner and the
	// writer's context ended while it waited; the write was not applied. It wraps
	// mapstore.ErrDirtyLimit.
	ErrDirtyLimit = fmt.Errorf("dmap: %w", mapstore.ErrDirtyLimit)
	// ErrMemoryLimit: the write would grow the memory of the key's owner past its budget
	// (Config.MemoryBudget), or one of the partition's backups is at its own, and nothing could
	// be evicted to make room before the write's deadline or context ended: the write waited
	// for room (back-pressure), then was refused. It was not applied. Reads, deletes and
	// overwrites that do not grow an entry always pass; once they (or eviction, or consumers
	// taking queue items) free memory, growing writes succeed again.
	ErrMemoryLimit = errors.New("dmap: memory budget exhausted")
	// ErrPartitionLost: every replica of the key's partition died before its data could be
	// copied elsewhere, so its entries are gone. Operations on the partition fail with it until
	// the application resets it (Member.ResetLostPartitions), unless the cluster is configured
	// to re-create lost partitions empty. A PartitionLost event tells every member.
	ErrPartitionLost = errors.New("dmap: partition lost")
	// ErrRestoreIncomplete: the key's partition is not restored from the data folders of a
	// restarted cluster because folders that may hold its newest copy are absent (the message
	// names them) and Config.RestoreTimeout passed. Start the members of those folders, or allow
	// a partial restore from the newest copies present (Config.PartialRestore,
	// Service.AllowPartialRestore). Operations on the partition fail with it until then.
	ErrRestoreIncomplete = errors.New("dmap: restore incomplete: data folders absent")
	// ErrOutcomeUnknown: a write sent again after an attempt whose answer did not come (a lost
	// connection, a timeout) may or may not have been applied, and the owner cannot tell: it
	// has forgotten the answers of writes as old as the first attempt (it keeps them at least
	// MaxRetryWindow, longer than its routing retries take, unless the partition is written
	// very fast or its copy on this owner is younger than the attempt), or an earlier attempt
	// was applied but not acknowledged by every backup. The write was not applied again.
	// Read the data to learn what happened; a queue's Poll, Take or Drain that returns it may
	// have removed items that reached no caller.
	ErrOutcomeUnknown = errors.New("dmap: outcome unknown")
	// ErrWrongOwner is internal and retryable: the member that received an operation does not own
	// the partition at the epoch the operation was routed with. Callers re-route; users never see it.
	ErrWrongOwner = errors.New("dmap: member does not own the partition")
	// ErrNoLease is internal and retryable: the owner is cut off from the raft majority and refuses
	// operations until it is back in contact or its partitions are reassigned.
	ErrNoLease = errors.New("dmap: owner lease expired")
)

// status is the outcome of an operation as it travels in a response header. Retryable statuses
// (wrong owner, no lease) are how an owner tells a caller to re-route.
type status uint8

const (
	statusOK status = iota
	statusNotFound
	statusWrongOwner
	statusNoLease
	statusTooLarge
	statusBadRequest
	statusClosed
	statusFailed
	statusLocked
	statusNotLockOwner
	statusConflict
	statusNoProcessor
	statusProcessor
	statusStore
	statusDirtyLimit
	// Appended: the numbers above travel between members and must not change.
	statusTimeout
	statusPartitionLost
	statusCodec
	statusInvalidConfig
	statusCrossPartition
	statusTxDone
	statusNoPredicate
	statusDuplicateName
	statusMemoryLimit
	statusRestoreIncomplete
	statusOutcomeUnknown
)

// statusErrs maps each status that stands for one of the package's sentinel errors to it, both
// ways (statusOf, status.err): a remote owner's error is one the caller can check with
// errors.Is.
var statusErrs = [...]error{
	statusNotFound:          ErrNotFound,
	statusLocked:            ErrLocked,
	statusWrongOwner:        ErrWrongOwner,
	statusNoLease:           ErrNoLease,
	statusTooLarge:          ErrValueTooLarge,
	statusBadRequest:        ErrBadRequest,
	statusClosed:            ErrClosed,
	statusNotLockOwner:      ErrNotLockOwner,
	statusConflict:          ErrConflict,
	statusNoProcessor:       ErrNoProcessor,
	statusProcessor:         ErrProcessor,
	statusStore:             ErrStore,
	statusDirtyLimit:        ErrDirtyLimit,
	statusTimeout:           ErrTimeout,
	statusPartitionLost:     ErrPartitionLost,
	statusCodec:             ErrCodec,
	statusInvalidConfig:     ErrInvalidConfig,
	statusCrossPartition:    ErrCrossPartition,
	statusTxDone:            ErrTxDone,
	statusNoPredicate:       ErrNoPredicate,
	statusDuplicateName:     ErrAlreadyRegistered,
	statusMemoryLimit:       ErrMemoryLimit,
	statusRestoreIncomplete: ErrRestoreIncomplete,
	statusOutcomeUnknown:    ErrOutcomeUnknown,
}

func (s status) err(msg string) error {
	var base error
	switch {
	case s == statusOK:
		return nil
	case int(s) < len(statusErrs) && statusErrs[s] != nil:
		base = statusErrs[s]
	default:
		return errors.New("dmap: remote failure: " + msg)
	}
	if s == statusTimeout {
		// Only a deadline travels to the owner, never a cancellation: an owner's timeout is a
		// deadline that passed.
		return &remoteErr{base: base, msg: msg, cause: context.DeadlineExceeded}
	}
	if msg == "" {
		return base
	}
	return &remoteErr{base: base, msg: msg}
}

// statusOf is the status that carries err to a remote caller. An error that wraps several
// sentinels gets the first of statusErrs's order (ErrDirtyLimit before ErrTimeout, for one
// that also wraps a deadline).
func statusOf(err error) status {
	if err == nil {
		return statusOK
	}
	for st, base := range statusErrs {
		if base != nil && errors.Is(err, base) {
			return status(st)
		}
	}
	if errors.Is(err, mapstore.ErrDirtyLimit) {
		return statusDirtyLimit
	}
	return statusFailed
}

// retryable reports whether a status asks the caller to route the operation again.
func (s status) retryable() bool {
	// statusLocked: a write waits for another holder's lock to be released.
	return s == statusWrongOwner || s == statusNoLease || s == statusClosed || s == statusLocked
}

// remoteErr is an error a remote owner answered with: base is the status's sentinel, msg the
// owner's message, cause (if not nil) a further error the status implies.
type remoteErr struct {
	base  error
	msg   string
	cause error
}

func (e *remoteErr) Error() string {
	if e.msg == "" {
		return e.base.Error()
	}
	return e.base.Error() + ": " + e.msg
}

func (e *remoteErr) Unwrap() []error {
	if e.cause == nil {
		return []error{e.base}
	}
	return []error{e.base, e.cause}
}

func epochString(e uint64) string { return "epoch " + strconv.FormatUint(e, 10) }
