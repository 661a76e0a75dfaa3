package dmap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
)

// KeyLock is a held lock on one key of a map. It belongs to the Lock call that returned it:
// another KeyLock on the same key, even on the same member, waits. Writes to a locked key from
// anyone but the holder wait until it is released; the holder writes through Context. The lock
// is backed up like an entry, survives the owner's failure, and is released when its lease ends
// or when the holder's member leaves or dies.
type KeyLock[K comparable, V any] struct {
	m      *Map[K, V]
	key    K
	holder string
}

// Context returns ctx carrying the lock, so that writes made with it may pass the lock.
func (l *KeyLock[K, V]) Context(ctx context.Context) context.Context {
	return engine.WithHolder(ctx, l.holder)
}

// Lock acquires the lock of key, waiting while another holder has it, until ctx ends (then
// ErrTimeout). lease bounds how long the lock is held if never released (0: until Unlock or
// the holder's member goes away).
func (m *Map[K, V]) Lock(ctx context.Context, key K, lease time.Duration) (*KeyLock[K, V], error) {
	holder, err := m.svc.e.NewHolder()
	if err != nil {
		return nil, err
	}
	if _, err := m.lockOp(ctx, engine.OpLock, key, holder, lease); err != nil {
		return nil, err
	}
	return &KeyLock[K, V]{m: m, key: key, holder: holder}, nil
}

// TryLock is Lock that gives up after timeout: it then returns ErrLocked, which also wraps the
// ErrTimeout (and context.DeadlineExceeded) that ended the wait. The lock was then not acquired,
// most often because another holder has it (a partition owner that cannot be reached within
// timeout ends the same way). When ctx itself ends first, TryLock returns Lock's ErrTimeout.
func (m *Map[K, V]) TryLock(ctx context.Context, key K, lease, timeout time.Duration) (*KeyLock[K, V], error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	l, err := m.Lock(tctx, key, lease)
	if errors.Is(err, ErrTimeout) && ctx.Err() == nil {
		return nil, fmt.Errorf("%w: not acquired within %v: %w", ErrLocked, timeout, err)
	}
	return l, err
}

// Unlock releases the lock. It returns ErrNotLockOwner if the lock is no longer held by l (its
// lease ended, or its member was declared dead).
func (l *KeyLock[K, V]) Unlock(ctx context.Context) error {
	resp, err := l.m.lockOp(ctx, engine.OpUnlock, l.key, l.holder, 0)
	if err == nil && !resp.Done {
		err = ErrNotLockOwner
	}
	return err
}

// IsLocked reports whether key is locked by anyone.
func (m *Map[K, V]) IsLocked(ctx context.Context, key K) (bool, error) {
	resp, err := m.lockOp(ctx, engine.OpIsLocked, key, "", 0)
	return resp.Done, err
}

func (m *Map[K, V]) lockOp(ctx context.Context, kind engine.OpKind, key K, holder string, lease time.Duration) (engine.Response, error) {
	kb, p, err := m.encodeKey(key)
	if err != nil {
		return engine.Response{}, err
	}
	return m.raw.LockOp(ctx, kind, kb, p, holder, lease)
}
