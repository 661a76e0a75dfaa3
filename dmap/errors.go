package dmap

import (
	"errors"
	"strconv"
)

// Errors returned by maps. Check them with errors.Is.
var (
	// ErrNotFound: the key has no live entry.
	ErrNotFound = errors.New("dmap: key not found")
	// ErrClosed: the member's map service has been closed.
	ErrClosed = errors.New("dmap: closed")
	// ErrTimeout: the operation did not complete before its deadline (the caller's context or
	// Config.OperationTimeout). A write that times out may or may not have been applied.
	ErrTimeout = errors.New("dmap: operation timed out")
	// ErrValueTooLarge: a key or value is larger than Config.MaxValueSize.
	ErrValueTooLarge = errors.New("dmap: value too large")
	// ErrInvalidConfig: a Config or Option is wrong; the message lists every problem.
	ErrInvalidConfig = errors.New("dmap: invalid configuration")
	// ErrCodec: a key or value could not be encoded or decoded.
	ErrCodec = errors.New("dmap: codec error")
	// ErrBadRequest: a peer sent a request this member cannot decode or does not understand.
	ErrBadRequest = errors.New("dmap: bad request")
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
)

func (s status) err(msg string) error {
	var base error
	switch s {
	case statusOK:
		return nil
	case statusNotFound:
		base = ErrNotFound
	case statusWrongOwner:
		base = ErrWrongOwner
	case statusNoLease:
		base = ErrNoLease
	case statusTooLarge:
		base = ErrValueTooLarge
	case statusBadRequest:
		base = ErrBadRequest
	case statusClosed:
		base = ErrClosed
	default:
		return errors.New("dmap: remote failure: " + msg)
	}
	if msg == "" {
		return base
	}
	return &remoteErr{base: base, msg: msg}
}

func statusOf(err error) status {
	switch {
	case err == nil:
		return statusOK
	case errors.Is(err, ErrNotFound):
		return statusNotFound
	case errors.Is(err, ErrWrongOwner):
		return statusWrongOwner
	case errors.Is(err, ErrNoLease):
		return statusNoLease
	case errors.Is(err, ErrValueTooLarge):
		return statusTooLarge
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrCodec):
		return statusBadRequest
	case errors.Is(err, ErrClosed):
		return statusClosed
	}
	return statusFailed
}

// retryable reports whether a status asks the caller to route the operation again.
func (s status) retryable() bool {
	return s == statusWrongOwner || s == statusNoLease || s == statusClosed
}

type remoteErr struct {
	base error
	msg  string
}

func (e *remoteErr) Error() string { return e.base.Error() + ": " + e.msg }
func (e *remoteErr) Unwrap() error { return e.base }

func epochString(e uint64) string { return "epoch " + strconv.FormatUint(e, 10) }
