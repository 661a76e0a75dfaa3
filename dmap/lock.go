package dmap

import (
	"context"
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
// ErrTimeout wrapping ctx.Err(): the lock was not acquired, because another holder kept it or
// the key's owner could not be reached). The wait is ctx's: give it a deadline to wait a
// bounded time, or use TryLock not to wait. lease bounds how long the lock is held if never
// released (0: until Unlock or the holder's member goes away).
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

// TryLock acquires the lock of key if no other holder has it, and returns ErrLocked at once
// otherwise, as sync.Mutex.TryLock does: it does not wait for the holder (Lock does, as long as
// its ctx allows). ctx bounds the trip to the key's owner, which may include waiting for a
// partition to get a new owner (ErrTimeout when ctx ends first). lease is Lock's.
func (m *Map[K, V]) TryLock(ctx context.Context, key K, lease time.Duration) (*KeyLock[K, V], error) {
	holder, err := m.svc.e.NewHolder()
	if err != nil {
		return nil, err
	}
	resp, err := m.lockOp(ctx, engine.OpTryLock, key, holder, lease)
	if err != nil {
		return nil, err
	}
	if !resp.Done {
		return nil, fmt.Errorf("%w (map %s)", ErrLocked, m.raw.Name())
	}
	return &KeyLock[K, V]{m: m, key: key, holder: holder}, nil
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
