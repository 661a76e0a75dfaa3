package engine

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

func (s *Service) NewHolder() (string, error) {
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
