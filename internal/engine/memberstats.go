package engine

import "sort"

// MapStats describes one map on this member at one moment: what it holds as owner and as
// backup, and its local listeners. It is computed on demand (a scrape, a console request) by
// walking the partitions, never on the operations' path.
type MapStats struct {
	Name string
	// OwnedEntries and OwnedBytes count the entries of the partitions this member owns;
	// BackupEntries and BackupBytes those of the partitions it backs up. Bytes are the keys'
	// and values' lengths plus a fixed overhead per entry (what MemoryBudget counts). Expired
	// entries not yet swept are included.
	OwnedEntries, BackupEntries int
	OwnedBytes, BackupBytes     int64
	// OwnedPaged and BackupPaged count the entries among them whose value is paged out to the
	// data folder (paging.go): their bytes count only the key and the overhead.
	OwnedPaged, BackupPaged int
	// Listeners is the number of local entry listeners on the map; ListenerQueued the events
	// waiting in their queues, ListenerMissed the events they missed because a queue was full,
	// ListenerDelivered the events passed to them.
	Listeners                         int
	ListenerQueued                    int
	ListenerMissed, ListenerDelivered uint64
}

// MemberStats describes this member's share of the cluster at one moment.
type MemberStats struct {
	// PartitionsOwned and PartitionsBackedUp count the partitions the table assigns this member
	// as owner and as backup; MigrationsIn counts the partitions it is receiving a copy of,
	// MigrationsOut those it owns and is copying to another member; CopiesDone counts the
	// copies it completed as a source since it started, CopyBytes the bytes of entries it sent
	// in copies (completed or not: a full copy costs them whether it ends or is cut short),
	// ResyncsDone the full copies it completed to backups that may have missed writes.
	PartitionsOwned, PartitionsBackedUp int
	MigrationsIn, MigrationsOut         int
	CopiesDone, CopyBytes, ResyncsDone  uint64
	// TableEpoch is the epoch of the table the figures come from.
	TableEpoch uint64
	// Maps lists every map this member holds entries of, opened, or listens to, by name, the
	// structure maps of queues and topics (StructureMapName) included.
	Maps []MapStats
}

// Stats returns this member's statistics.
func (s *Service) Stats() MemberStats {
	t := s.cluster.Table()
	st := MemberStats{TableEpoch: t.Epoch, CopiesDone: s.copiesDone.Load(), CopyBytes: s.copyBytes.Load(),
		ResyncsDone: s.resyncsDone.Load()}
	maps := map[string]*MapStats{}
	get := func(name string) *MapStats {
		ms := maps[name]
		if ms == nil {
			ms = &MapStats{Name: name}
			maps[name] = ms
		}
		return ms
	}
	for _, p := range s.parts {
		owner, backup := false, false
		if int(p.id) < len(t.Partitions) {
			a := t.Partitions[p.id]
			for i, r := range a.Replicas {
				if r == s.self {
					owner, backup = i == 0, i > 0
				}
			}
			for _, pd := range a.Pending {
				if pd.Member == s.self {
					st.MigrationsIn++
				}
				if owner {
					st.MigrationsOut++
				}
			}
		}
		switch {
		case owner:
			st.PartitionsOwned++
		case backup:
			st.PartitionsBackedUp++
		default:
			continue
		}
		p.mu.RLock()
		for name, et := range p.rs.maps {
			if name == "" || (name[0] == 0 && !IsStructureMapName(name)) {
				continue // reserved (internal) maps; a queue's or topic's are shown
			}
			ms := get(name)
			n := et.len()
			b := int64(et.live) + int64(n)*recordOverhead
			if owner {
				ms.OwnedEntries += n
				ms.OwnedBytes += b
				ms.OwnedPaged += et.paged
			} else {
				ms.BackupEntries += n
				ms.BackupBytes += b
				ms.BackupPaged += et.paged
			}
		}
		p.mu.RUnlock()
	}
	s.ops.m.Range(func(k, _ any) bool {
		get(k.(string))
		return true
	})
	for _, r := range s.events.local.Registrations() {
		ms := get(r.Map())
		rs := r.Stats()
		ms.Listeners++
		ms.ListenerQueued += rs.Queued
		ms.ListenerMissed += rs.Missed
		ms.ListenerDelivered += rs.Delivered
	}
	for _, ms := range maps {
		st.Maps = append(st.Maps, *ms)
	}
	sort.Slice(st.Maps, func(i, j int) bool { return st.Maps[i].Name < st.Maps[j].Name })
	return st
}

// StoredMaps lists the maps configured with a store or loader, sorted.
func (s *Service) StoredMaps() []string {
	names := make([]string, 0, len(s.stores))
	for name := range s.stores {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
