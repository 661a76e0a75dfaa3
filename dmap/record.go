package dmap

// record is one entry's stored form. Records are immutable once stored: a write replaces the
// pointer, so readers and migration snapshots can hold a *record without locks.
type record struct {
	value []byte
	// seq is the partition sequence number of the write that produced the record. Replicas apply
	// a mutation only when it is newer than what they hold, which makes replication and migration
	// copies idempotent and order-insensitive.
	seq uint64
	// expireAt is the owner's wall-clock expiry in Unix nanoseconds; 0 means never.
	expireAt int64
}

func (r *record) expired(now int64) bool { return r.expireAt != 0 && now >= r.expireAt }

// mutKind says what a mutation does to its key.
type mutKind uint8

const (
	mutSet    mutKind = iota + 1 // store Value under Key
	mutDelete                    // remove Key
	mutClear                     // remove every entry of Map in this partition
)

// mutation is the unit of replication: what an owner applied, sent to every backup and to members
// receiving a copy. It is also what a write-behind queue and listeners will observe.
type mutation struct {
	Map      string  `msgpack:"m"`
	Kind     mutKind `msgpack:"k"`
	Key      []byte  `msgpack:"y,omitempty"`
	ExpireAt int64   `msgpack:"x,omitempty"`
	Seq      uint64  `msgpack:"s"`
	// Value travels in the message body, not the msgpack header.
	Value []byte `msgpack:"-"`
}

// recordStore holds one partition's entries for every map. It is plain data with no locking:
// the partition that owns it serialises access.
type recordStore struct {
	maps map[string]map[string]*record
	// seq is the highest sequence number applied; an owner numbers its next write seq+1.
	seq uint64
	// While a copy is being received (syncing), deletes and clears leave tombstones so that an
	// older copy of an entry arriving later in the copy does not resurrect it.
	syncing  bool
	tombs    map[string]map[string]uint64
	clearSeq map[string]uint64
}

func newRecordStore() *recordStore {
	return &recordStore{maps: make(map[string]map[string]*record)}
}

// get returns the live record of key, or nil.
func (rs *recordStore) get(mapName string, key string, now int64) *record {
	r := rs.maps[mapName][key]
	if r == nil || r.expired(now) {
		return nil
	}
	return r
}

// apply applies a mutation if it is newer than what the store holds for that key. It reports
// whether the store changed.
func (rs *recordStore) apply(m mutation) bool {
	if m.Seq > rs.seq {
		rs.seq = m.Seq
	}
	switch m.Kind {
	case mutSet:
		if rs.shadowed(m.Map, string(m.Key), m.Seq) {
			return false
		}
		entries := rs.maps[m.Map]
		if entries == nil {
			entries = make(map[string]*record)
			rs.maps[m.Map] = entries
		}
		entries[string(m.Key)] = &record{value: m.Value, seq: m.Seq, expireAt: m.ExpireAt}
		return true
	case mutDelete:
		key := string(m.Key)
		if rs.syncing {
			t := rs.tombs[m.Map]
			if t == nil {
				t = make(map[string]uint64)
				rs.tombs[m.Map] = t
			}
			if m.Seq > t[key] {
				t[key] = m.Seq
			}
		}
		entries := rs.maps[m.Map]
		if r := entries[key]; r != nil && r.seq < m.Seq {
			delete(entries, key)
			return true
		}
		return false
	case mutClear:
		if rs.syncing && m.Seq > rs.clearSeq[m.Map] {
			rs.clearSeq[m.Map] = m.Seq
		}
		changed := false
		entries := rs.maps[m.Map]
		for k, r := range entries {
			if r.seq < m.Seq {
				delete(entries, k)
				changed = true
			}
		}
		return changed
	}
	return false
}

// shadowed reports whether a set at seq is older than what the store holds or has deleted.
func (rs *recordStore) shadowed(mapName, key string, seq uint64) bool {
	if r := rs.maps[mapName][key]; r != nil && r.seq >= seq {
		return true
	}
	if rs.syncing {
		if rs.clearSeq[mapName] >= seq && rs.clearSeq[mapName] != 0 {
			return true
		}
		if t, ok := rs.tombs[mapName][key]; ok && t >= seq {
			return true
		}
	}
	return false
}

// beginSync empties the store and starts keeping tombstones: a full copy follows.
func (rs *recordStore) beginSync() {
	rs.maps = make(map[string]map[string]*record)
	rs.seq = 0
	rs.syncing = true
	rs.tombs = make(map[string]map[string]uint64)
	rs.clearSeq = make(map[string]uint64)
}

// endSync drops the tombstones: the copy is complete.
func (rs *recordStore) endSync() {
	rs.syncing = false
	rs.tombs = nil
	rs.clearSeq = nil
}

// size counts the live entries of one map.
func (rs *recordStore) size(mapName string, now int64) int {
	n := 0
	for _, r := range rs.maps[mapName] {
		if !r.expired(now) {
			n++
		}
	}
	return n
}

// expire removes every expired record and returns how many it removed.
func (rs *recordStore) expire(now int64) int {
	n := 0
	for _, entries := range rs.maps {
		for k, r := range entries {
			if r.expired(now) {
				delete(entries, k)
				n++
			}
		}
	}
	return n
}

// snapshot returns every record as a mutation, for a copy to another member. Values are shared,
// not copied: records are immutable.
func (rs *recordStore) snapshot() []mutation {
	var out []mutation
	for name, entries := range rs.maps {
		for k, r := range entries {
			out = append(out, mutation{Map: name, Kind: mutSet, Key: []byte(k), Value: r.value, ExpireAt: r.expireAt, Seq: r.seq})
		}
	}
	return out
}
