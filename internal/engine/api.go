package engine

import "context"

// This file names, for the typed façades (dmap), the engine's request vocabulary: operation
// kinds, the owner's answer, scanned entries, and the lock holder a context carries.

// OpKind names an operation routed to a partition's owner.
type OpKind = opKind

// Operations a façade runs through Map.KeyOp and Map.LockOp.
const (
	OpGet           = opGet
	OpContains      = opContains
	OpPut           = opPut
	OpPutIfAbsent   = opPutIfAbsent
	OpReplace       = opReplace
	OpReplaceIfSame = opReplaceIfSame
	OpDelete        = opDelete
	OpLock          = opLock
	OpUnlock        = opUnlock
	OpIsLocked      = opIsLocked
	OpTryLock       = opTryLock
)

// Response is an owner's answer to an operation.
type Response = opResponse

// NotFound reports whether the key had no live entry.
func (r *opResponse) NotFound() bool { return r.Status == statusNotFound }

// Owned reports whether Value belongs to the caller alone (it arrived from a remote owner), so
// that it may be handed out without a copy.
func (r *opResponse) Owned() bool { return r.owned }

// KV is one entry of a scan or one key's result of ExecuteAll.
type KV = kv

type lockHolderKey struct{}

// WithHolder returns ctx carrying a lock holder's identity (Service.NewHolder): writes made
// with it may pass the holder's locks.
func WithHolder(ctx context.Context, holder string) context.Context {
	return context.WithValue(ctx, lockHolderKey{}, holder)
}

// HolderFrom returns the lock holder ctx carries ("" if none).
func HolderFrom(ctx context.Context) string {
	h, _ := ctx.Value(lockHolderKey{}).(string)
	return h
}

// MsgOp is the transport message type that carries operations to a partition's owner (tests
// count them).
const MsgOp = msgOp
