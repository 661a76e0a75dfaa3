package dmap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// Lock operations, routed to the key's owner like any other.
const (
	opLock opKind = iota + 40
	opUnlock
	opIsLocked
	// opTryLock acquires the lock if no other holder has it, and otherwise answers at once
	// (Done false) instead of waiting as opLock does.
	opTryLock
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

type lockHolderKey struct{}

// Context returns ctx carrying the lock, so that writes made with it may pass the lock.
func (l *KeyLock[K, V]) Context(ctx context.Context) context.Context {
	return context.WithValue(ctx, lockHolderKey{}, l.holder)
}

func holderFrom(ctx context.Context) string {
	h, _ := ctx.Value(lockHolderKey{}).(string)
	return h
}

func (s *Service) newHolder() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("dmap: lock token: %w", err)
	}
	return string(s.self) + "/" + hex.EncodeToString(b[:]), nil
}

// holderMember returns the member part of a lock holder.
func holderMember(holder string) partition.MemberID {
	m, _, _ := strings.Cut(holder, "/")
	return partition.MemberID(m)
}

// Lock acquires the lock of key, waiting while another holder has it, until ctx ends (then
// ErrTimeout wrapping ctx.Err(): the lock was not acquired, because another holder kept it or
// the key's owner could not be reached). The wait is ctx's: give it a deadline to wait a
// bounded time, or use TryLock not to wait. lease bounds how long the lock is held if never
// released (0: until Unlock or the holder's member goes away).
func (m *Map[K, V]) Lock(ctx context.Context, key K, lease time.Duration) (*KeyLock[K, V], error) {
	holder, err := m.svc.newHolder()
	if err != nil {
		return nil, err
	}
	if _, err := m.lockOp(ctx, opLock, key, holder, lease); err != nil {
		return nil, err
	}
	return &KeyLock[K, V]{m: m, key: key, holder: holder}, nil
}

// TryLock acquires the lock of key if no other holder has it, and returns ErrLocked at once
// otherwise, as sync.Mutex.TryLock does: it does not wait for the holder (Lock does, as long as
// its ctx allows). ctx bounds the trip to the key's owner, which may include waiting for a
// partition to get a new owner (ErrTimeout when ctx ends first). lease is Lock's.
func (m *Map[K, V]) TryLock(ctx context.Context, key K, lease time.Duration) (*KeyLock[K, V], error) {
	holder, err := m.svc.newHolder()
	if err != nil {
		return nil, err
	}
	resp, err := m.lockOp(ctx, opTryLock, key, holder, lease)
	if err != nil {
		return nil, err
	}
	if !resp.Done {
		return nil, fmt.Errorf("%w (map %s)", ErrLocked, m.name)
	}
	return &KeyLock[K, V]{m: m, key: key, holder: holder}, nil
}

// Unlock releases the lock. It returns ErrNotLockOwner if the lock is no longer held by l (its
// lease ended, or its member was declared dead).
func (l *KeyLock[K, V]) Unlock(ctx context.Context) error {
	resp, err := l.m.lockOp(ctx, opUnlock, l.key, l.holder, 0)
	if err == nil && !resp.Done {
		err = ErrNotLockOwner
	}
	return err
}

// IsLocked reports whether key is locked by anyone.
func (m *Map[K, V]) IsLocked(ctx context.Context, key K) (bool, error) {
	resp, err := m.lockOp(ctx, opIsLocked, key, "", 0)
	return resp.Done, err
}

func (m *Map[K, V]) lockOp(ctx context.Context, kind opKind, key K, holder string, lease time.Duration) (opResponse, error) {
	kb, p, err := m.encodeKey(key)
	if err != nil {
		return opResponse{}, err
	}
	resp, err := m.svc.do(ctx, &opRequest{Map: m.name, Kind: kind, Part: int32(p), Key: kb, Holder: holder, TTL: int64(lease)})
	if err == nil && resp.Status != statusOK {
		err = resp.Status.err(resp.Msg)
	}
	return resp, err
}

// executeLock runs a lock operation on the owner (inside ownerWrite for opLock, opTryLock and
// opUnlock).
func executeLock(w *writeBatch, req *opRequest) opResponse {
	key := string(req.Key)
	cur := w.rs.lock(req.Map, key, w.now)
	switch req.Kind {
	case opIsLocked:
		return opResponse{Done: cur != nil}
	case opLock, opTryLock:
		if cur != nil && cur.holder != req.Holder {
			if req.Kind == opTryLock {
				return opResponse{} // not acquired, and no waiting: Done false
			}
			return opResponse{Status: statusLocked}
		}
		count := 1
		if cur != nil {
			count = cur.count + 1
		}
		var expire int64
		if req.TTL > 0 {
			expire = w.now + req.TTL
		}
		w.emit(mutation{Map: req.Map, Kind: mutLock, Key: req.Key, Holder: req.Holder, Count: count, ExpireAt: expire})
		return opResponse{Done: true}
	case opUnlock:
		if cur == nil || cur.holder != req.Holder {
			return opResponse{}
		}
		if cur.count > 1 {
			w.emit(mutation{Map: req.Map, Kind: mutLock, Key: req.Key, Holder: cur.holder, Count: cur.count - 1, ExpireAt: cur.expire})
		} else {
			w.emit(mutation{Map: req.Map, Kind: mutUnlock, Key: req.Key})
		}
		return opResponse{Done: true}
	}
	return opResponse{Status: statusBadRequest, Msg: "unknown lock operation"}
}

// releaseOrphanLocks releases, on the partitions this member owns, the locks whose holder's
// member is no longer in the cluster (left or declared dead), and forgets expired ones.
func (s *Service) releaseOrphanLocks() {
	t := s.cluster.Table()
	for _, p := range s.parts {
		if t.Owner(p.id) != s.self {
			continue
		}
		p.mu.RLock()
		var orphans []mutation
		for name, locks := range p.rs.locks {
			for k, l := range locks {
				if _, known := s.cluster.MemberAddr(holderMember(l.holder)); !known || !l.held(s.now()) {
					orphans = append(orphans, mutation{Map: name, Kind: mutUnlock, Key: []byte(k), Holder: l.holder})
				}
			}
		}
		p.mu.RUnlock()
		if len(orphans) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OperationTimeout)
		s.ownerWrite(ctx, p, t.Epoch, time.Time{}, nil, func(w *writeBatch) opResponse {
			for _, o := range orphans {
				// Release only if the same holder still has it (it may have been unlocked and
				// taken again meanwhile).
				if l := w.rs.locks[o.Map][string(o.Key)]; l != nil && l.holder == o.Holder {
					o.Holder = ""
					w.emit(o)
				}
			}
			return opResponse{}
		})
		cancel()
	}
}
