package engine

import (
	"fmt"

	"github.com/gridmap/gridmap/internal/replicadisk"
)

// Paging: entries of embedded maps held beyond the memory budget (docs/restart.md, "Maps larger
// than memory").
//
// Every replica of a partition, owner and backups alike, commits each write of an embedded map
// to its member's data folder as it applies it (embedded.go), so the folder's copy of the
// partition is always as current as the member's memory. Under Config.MemoryBudget the evictor
// (evict.go) may therefore drop the value of an embedded map's entry from memory, least recently
// used first, keeping the entry itself: its key, sequence number, expiry and access time. The
// entry is then "paged out". Size, key iteration, contains, misses, expiry and every decision
// that needs only the key stay exact and read no disk; what needs the value (a get, a
// conditional replace, an entry processor, a scan with values, a listener's old value, a copy
// sent to another member) reads it back from the folder (recordStore.fill, a pebble point read).
// A write replaces a paged-out entry like any other, a delete or a clear removes it, so a value
// is never served stale. Paging out is not an eviction for users: no Evicted event, the entry is
// still in the map.
//
// The invariant that makes it correct: while a partition's store holds paged-out entries
// (rs.paged > 0), the member's folder holds, in the copy of life rs.folder.life, which is the
// partition's p.diskLife, each such entry's value as of the entry's sequence number. It holds
// because
//   - an entry is paged out only while the folder's copy is current: the partition's restore has
//     begun (its life is the folder copy's), it is not receiving a copy (syncing: the folder
//     gets the copy only at its end), and no folder write of the partition has failed since its
//     copy was last written whole (pageSource);
//   - every later change of the entry is applied to memory and committed to the folder under
//     the partition's lock in one step (applyWrite, handleBackup): the change replaces or
//     removes the paged-out entry in memory, and a failed folder commit stops further paging
//     without touching what the folder held;
//   - before the folder's copy of the partition is removed while paged-out entries remain (a
//     new life), their values are read back into memory (pageInAll); a store emptied for a copy
//     (beginSync) or dropped (forget) takes its paged-out entries with it.
//
// A paged-out entry still costs its key and recordOverhead in the memory account.

// folderCopy names the copy of a partition in the member's data folder that holds the values of
// its paged-out entries.
type folderCopy struct {
	disk *replicadisk.Disk
	part uint32
	life uint64
}

// pageSource returns the folder copy that entries of p's embedded maps may be paged out to, and
// whether they may be now (see the invariant above). The caller holds p.mu.
func (s *Service) pageSource(p *part) (folderCopy, bool) {
	if p.disk == nil || p.diskLife == 0 || p.rs.syncing || p.noPaging {
		return folderCopy{}, false
	}
	if life, _ := p.rs.restoreState(); life != p.diskLife {
		return folderCopy{}, false
	}
	return folderCopy{disk: p.disk, part: uint32(p.id), life: p.diskLife}, true
}

// pageOut drops the value of r, an entry of mapName held in memory with a value, from memory,
// and returns the bytes freed. from is pageSource's answer. The caller holds the partition's lock.
func (rs *recordStore) pageOut(mapName string, r record, from folderCopy) int64 {
	rs.maps[mapName].pageOut(r)
	rs.paged++
	rs.folder = from
	freed := int64(len(r.value))
	rs.addBytes(-freed)
	return freed
}

// fill returns r, an entry of mapName, with its value: r itself unless it is paged out, else
// with the value read from the data folder (a copy the caller may keep; the record stays paged
// out, and recordSize does not count the value read). The caller holds the partition's lock
// (read or write), so that the folder's copy is as current as r.
func (rs *recordStore) fill(mapName string, r record) (record, error) {
	if !r.paged || r.value != nil {
		return r, nil
	}
	f := rs.folder
	v, _, found, err := f.disk.Value(f.part, f.life, mapName, []byte(r.key))
	if err != nil {
		return r, fmt.Errorf("%w: reading a paged-out value of map %q, partition %d, from the data folder: %w", ErrStore, mapName, f.part, err)
	}
	if !found {
		return r, fmt.Errorf("%w: the data folder lacks a paged-out value of map %q, partition %d", ErrStore, mapName, f.part)
	}
	r.value = v
	return r, nil
}

// fillAll is fill for each of recs, records of mapName, in place; it stops at the first error.
func (rs *recordStore) fillAll(mapName string, recs []record) error {
	for i := range recs {
		r, err := rs.fill(mapName, recs[i])
		if err != nil {
			return err
		}
		recs[i] = r
	}
	return nil
}

// pageInAll reads every paged-out value of p back into memory: the folder copy holding them is
// about to be removed (the partition enters a new life). It may exceed the memory budget, like a
// copy received. The caller holds p.mu.
func (s *Service) pageInAll(p *part) {
	rs := p.rs
	if rs.paged == 0 {
		return
	}
	for name, t := range rs.maps {
		for r := range t.all() {
			if !r.paged {
				continue
			}
			full, err := rs.fill(name, r)
			if err != nil {
				// The invariant above says it cannot happen; the entry cannot be kept.
				s.log.Error("paged-out entry lost: its value could not be read back from the data folder", "map", name, "partition", p.id, "err", err)
				rs.remove(name, r)
				continue
			}
			t.set(r, r.key, full.value, r.seq, r.expireAt, r.access)
			rs.paged--
			rs.addBytes(int64(len(full.value)))
		}
	}
}
