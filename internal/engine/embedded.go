package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/gridmap/gridmap/internal/replicadisk"
	"github.com/gridmap/gridmap/internal/transport"
)

// The data folder (Config.Disk; docs/restart.md has the design and its correctness argument).
//
// Every replica of a partition, owner and backups alike, keeps its copy of the partition's
// entries of embedded maps (user maps with no store or loader of their own) in its member's
// folder: it writes what each applied batch changed, in the partition's order, and in the same
// folder commit the copy's mark (replicadisk.Mark). A member that receives a full copy (a
// migration or a resync) replaces its folder's copy with it once complete, and a member that
// stops holding a partition removes its copy. So each folder holds, for each partition, the copy
// its member had as a replica, and the marks tell which copy is the newest; restore.go loads
// from it when a cluster starts again.

// restoreMap is the internal map recording a partition's restore from the data folders: key
// restoreLife holds the life the partition lives in (8 bytes, set when its restore begins), key
// restoreDone says the restore is complete. Both travel with backups and copies like entries.
const (
	restoreMap  = "\x00restore"
	restoreLife = "life"
	restoreDone = "done"
)

// maxDiskMapName is the longest map name the folder's layout takes (a 2-byte length).
const maxDiskMapName = 1<<16 - 1

// embedded reports whether a map persists to this member's data folder: a user map (not an
// internal or structure map) with no store or loader of its own, on a member with a folder.
func (s *Service) embedded(mapName string) bool {
	return s.cfg.Disk != nil && mapName != "" && mapName[0] != 0 && len(mapName) <= maxDiskMapName && s.stores[mapName] == nil
}

// restoreState returns the life the partition lives in (0: its restore has not begun) and
// whether its restore is complete.
func (rs *recordStore) restoreState() (life uint64, done bool) {
	if r := rs.lookup(restoreMap, restoreLife); r.ok && len(r.value) == 8 {
		life = binary.BigEndian.Uint64(r.value)
	}
	return life, rs.lookup(restoreMap, restoreDone).ok
}

// persist writes to the data folder what muts, just applied to partition p, changed in
// embedded maps, with the copy's mark (epoch: the table epoch the batch was sent with; owner:
// this member applied it as the owner). muts must hold only mutations that changed the
// partition. The caller holds p.mu. A copy being received (syncing) is written whole at its end.
func (s *Service) persist(p *part, muts []mutation, epoch uint64, owner bool) {
	if p.disk == nil || p.rs.syncing {
		return
	}
	var b *replicadisk.Batch
	finishing := false
	for _, m := range muts {
		if m.Map != restoreMap && !s.embedded(m.Map) {
			continue
		}
		if b == nil {
			life, _ := p.rs.restoreState()
			if life == 0 {
				return // nothing of embedded maps is written before the restore begins
			}
			if p.diskLife != life {
				s.pageInAll(p) // their values are in the copy about to go
				p.clearDiskCopy(s)
			}
			b = p.disk.Batch(uint32(p.id), life)
			if p.diskLife != life {
				// This process's first write of the copy: whatever an earlier process of this
				// member left under the same life (an interrupted restore) goes.
				b.ClearLife()
				p.diskLife = life
			}
		}
		if m.Map == restoreMap {
			finishing = finishing || (m.Kind == mutSet && string(m.Key) == restoreDone)
			continue
		}
		switch m.Kind {
		case mutSet:
			b.Set(replicadisk.Entry{Map: m.Map, Key: m.Key, Value: m.Value, ExpireAt: m.ExpireAt})
		case mutDelete:
			b.Delete(m.Map, m.Key)
		case mutClear:
			// A clear removes the records older than it: on a replica receiving a copy, newer
			// ones may stay.
			b.ClearMap(m.Map)
			for r := range p.rs.all(m.Map) {
				// A paged-out value is read from the folder before the batch removes it.
				full, err := p.rs.fill(m.Map, r)
				if err != nil {
					b.Discard()
					s.diskFailed(p, err)
					return
				}
				b.Set(replicadisk.Entry{Map: m.Map, Key: []byte(r.key), Value: full.value, ExpireAt: r.expireAt})
			}
		}
	}
	if b == nil {
		return
	}
	if _, done := p.rs.restoreState(); done {
		b.SetMark(replicadisk.Mark{Epoch: epoch, Seq: p.rs.seq, Owner: owner})
	}
	if finishing {
		b.ClearOlder() // the restored copy replaces those it was restored from
	}
	if err := b.Commit(); err != nil {
		s.diskFailed(p, err)
	}
}

// persistCopy writes partition p's complete copy, just received (a migration or a resync), to
// the data folder in place of the one it held. The caller holds p.mu.
func (s *Service) persistCopy(p *part, epoch uint64) {
	if p.disk == nil {
		return
	}
	life, done := p.rs.restoreState()
	if p.diskLife != life {
		s.pageInAll(p) // their values are in the copy about to go
		p.clearDiskCopy(s)
	}
	if life == 0 {
		return
	}
	b := p.disk.Batch(uint32(p.id), life)
	b.ClearLife()
	for name := range p.rs.maps {
		if !s.embedded(name) {
			continue
		}
		for r := range p.rs.all(name) {
			// A copy just received holds no paged-out entry; should one be there, its value is
			// read from the copy before the batch replaces it.
			full, err := p.rs.fill(name, r)
			if err != nil {
				b.Discard()
				s.diskFailed(p, err)
				return
			}
			b.Set(replicadisk.Entry{Map: name, Key: []byte(r.key), Value: full.value, ExpireAt: r.expireAt})
		}
	}
	if done {
		b.SetMark(replicadisk.Mark{Epoch: epoch, Seq: p.rs.seq})
		b.ClearOlder()
	}
	if err := b.Commit(); err != nil {
		s.diskFailed(p, err)
		return
	}
	p.diskLife = life
	p.noPaging = false // the folder's copy is whole and current again
}

// unpersistExpired removes from the data folder the entries of embedded maps that an expiry
// sweep just removed from partition p (gone), so that expired entries do not hold disk space
// for ever: a map written with TTLs keeps a folder of about its live entries' size. Expiry is
// not a write of the partition (each replica expires by its own clock, as in memory), so the
// copy's mark does not change; a restore skips expired entries whether they are there or not.
// The caller holds p.mu.
func (s *Service) unpersistExpired(p *part, gone []expiredEntry) {
	if p.disk == nil || p.rs.syncing || p.diskLife == 0 || len(gone) == 0 {
		return
	}
	if life, _ := p.rs.restoreState(); life != p.diskLife {
		return // the copy in the folder is an earlier life's: persist replaces it at the next write
	}
	var b *replicadisk.Batch
	for _, e := range gone {
		if !s.embedded(e.mapName) {
			continue
		}
		if b == nil {
			b = p.disk.Batch(uint32(p.id), p.diskLife)
		}
		b.Delete(e.mapName, []byte(e.key))
	}
	if b == nil {
		return
	}
	if err := b.Commit(); err != nil {
		s.diskFailed(p, err)
	}
}

// persistTakeover marks this member's copy of p as the owner's at epoch, the table epoch at
// which it took p over: a copy of an earlier owner, which may hold writes that died with it
// unacknowledged, is older than it even before this owner writes. The caller holds p.mu.
func (s *Service) persistTakeover(p *part, epoch uint64) {
	if p.disk == nil || p.rs.syncing || p.diskLife == 0 {
		return
	}
	if life, done := p.rs.restoreState(); !done || life != p.diskLife {
		return
	}
	b := p.disk.Batch(uint32(p.id), p.diskLife)
	b.SetMark(replicadisk.Mark{Epoch: epoch, Seq: p.rs.seq, Owner: true})
	if err := b.Commit(); err != nil {
		s.diskFailed(p, err)
	}
}

// clearDiskCopy removes the copy of p this process wrote to the data folder (the member no
// longer holds p, or is about to receive it afresh). The caller holds p.mu.
func (p *part) clearDiskCopy(s *Service) {
	if p.disk == nil || p.diskLife == 0 {
		return
	}
	b := p.disk.Batch(uint32(p.id), p.diskLife)
	b.ClearLife()
	if err := b.Commit(); err != nil {
		s.diskFailed(p, err)
	}
	p.diskLife = 0
}

// diskFailed logs a failed write to the data folder. The map keeps serving from memory and its
// replicas; the folder's copy of the partition is then not trusted by this member's restore
// (its mark is dropped, best effort).
func (s *Service) diskFailed(p *part, err error) {
	s.log.Error("data folder write failed: this member's copy of the partition will not be restored from", "partition", p.id, "err", err)
	p.noPaging = true // the folder may now lack what memory holds (paging.go)
	if p.diskLife != 0 {
		b := p.disk.Batch(uint32(p.id), p.diskLife)
		b.DropMark()
		_ = b.Commit()
	}
}

// BeginLeave tells the service that its member is leaving the cluster gracefully: the
// partitions it hands off keep their copies in its data folder (see part.forget).
func (s *Service) BeginLeave() { s.leaving.Store(true) }

// SyncDisks makes every write acknowledged before the call durable in the data folders of every
// member (Map.Flush of an embedded map): each member syncs its folder's log.
func (s *Service) SyncDisks(ctx context.Context) error {
	if s.cfg.Disk == nil {
		return nil
	}
	t := s.cluster.Table()
	var wg sync.WaitGroup
	members := t.Members()
	errs := make([]error, len(members))
	for i, m := range members {
		wg.Go(func() {
			if m == s.self {
				errs[i] = s.cfg.Disk.Sync()
				return
			}
			addr, ok := s.cluster.MemberAddr(m)
			if !ok {
				errs[i] = fmt.Errorf("dmap: no address for member %s", m)
				return
			}
			_, errs[i] = s.caller.Call(ctx, addr, transport.Message{Type: msgDiskSync})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%w: syncing the data folder of %s: %w", ErrStore, members[i], err)
		}
	}
	return nil
}

// handleDiskSync serves msgDiskSync.
func (s *Service) handleDiskSync(ctx context.Context, msg transport.Message) (transport.Message, error) {
	if s.cfg.Disk == nil {
		return transport.Message{}, nil
	}
	return transport.Message{}, s.cfg.Disk.Sync()
}
