package engine

import (
	"bytes"
	"encoding/binary"
	"iter"
	"strings"
	"unsafe"
)

// record is a view of one stored entry. Its key and value alias the table's memory, which is
// never overwritten: a view stays valid after the lock it was taken under is released. The zero
// record (ok false) stands for "no entry".
type record struct {
	key      string
	value    []byte
	seq      uint64
	expireAt int64
	access   int64 // when the view was taken
	slot     uint32
	ok       bool
	// paged: the entry's value is not in memory, only in the data folder (paging.go); value is
	// nil unless recordStore.fill read it.
	paged bool
}

func (r record) expired(now int64) bool { return r.expireAt != 0 && now >= r.expireAt }

// recordOverhead approximates the memory of an entry beyond its key and value bytes (its slot,
// index entry and record header), for the memory budget.
const recordOverhead = 80

// recordSize is the memory the budget counts for r: its key, its value unless it is paged out
// (a value read back from the folder is not the table's), and recordOverhead.
func recordSize(r record) int64 {
	n := len(r.key) + recordOverhead
	if !r.paged {
		n += len(r.value)
	}
	return int64(n)
}

// mutKind says what a mutation does to its key.
type mutKind uint8

const (
	mutSet    mutKind = iota + 1 // store Value under Key
	mutDelete                    // remove Key
	mutClear                     // remove every entry of Map in this partition
	mutLock                      // set Key's lock to (Holder, Count, ExpireAt)
	mutUnlock                    // release Key's lock
	mutStored                    // the owner stored Key's writes up to Seq (write-behind ack)
	mutAnswer                    // remember Op's answer Ans and result Value (answers.go); no entry changes
)

// valid reports whether k is a kind this version knows.
func (k mutKind) valid() bool { return k >= mutSet && k <= mutAnswer }

// mutation is the unit of replication: what an owner applied, sent to every backup and to members
// receiving a copy. It is also what a write-behind queue and listeners will observe.
type mutation struct {
	Map      string
	Kind     mutKind
	Key      []byte
	ExpireAt int64
	Seq      uint64
	// Holder and Count describe a lock (mutLock).
	Holder string
	Count  int
	// Clean marks a set that is already in the store (loaded from it): nothing to write behind.
	Clean bool
	// Stash, in a backup message only, names the copy of the value the receiving backup holds
	// already (it sent the write to the owner; see callercopy.go): the value is not in the body.
	Stash uint64
	// Op, when not zero, is the ID of the write this mutation ends, and Ans the answer its owner
	// gave: whoever applies the mutation remembers it (answers.go). One mutation of a write's
	// batch carries it.
	Op  opID
	Ans answer
	// Value travels in the message body, not the msgpack header.
	Value []byte
	// cleared holds, on the owner only, the records a clear removed (for Removed events); it
	// is not replicated.
	cleared []record
	// paged, in a copy's snapshot only, marks an entry whose value is paged out (paging.go):
	// the sender reads it from its data folder before sending (copyValue).
	paged bool
}

// recordStore holds one partition's entries for every map. It is plain data with no locking:
// the partition that owns it serialises access.
type recordStore struct {
	maps map[string]*entryTable
	// seq is the highest sequence number applied; an owner numbers its next write seq+1.
	seq uint64
	// While a copy is being received (syncing), deletes and clears leave tombstones so that an
	// older copy of an entry arriving later in the copy does not resurrect it.
	syncing  bool
	tombs    map[string]map[string]uint64
	clearSeq map[string]uint64
	// locks holds the per-key locks of each map; they are replicated like entries.
	locks map[string]map[string]*lockState
	// bytes approximates the memory of the records (recordSize summed).
	bytes int64
	// mem is the member's memory account (nil: no budget), which every change of bytes is
	// added to (addBytes), at once: the budget's count is exact.
	mem *memAccount
	// ttls counts the records with an expiry, so that the expiry sweep skips partitions
	// without any.
	ttls int
	// answers remembers the answers of the partition's last writes, for retries (answers.go).
	answers answerTable
	// paged counts the entries whose value is paged out, and folder is the copy in the data
	// folder that holds their values (paging.go).
	paged  int
	folder folderCopy
}

// lockState is a held lock. A lock belongs to a holder: a member and a token naming one Lock
// call's owner on it ("member/token").
type lockState struct {
	holder string
	count  int   // re-entrant acquisitions
	expire int64 // owner wall clock, Unix ns; 0 = no lease
	seq    uint64
}

func (l *lockState) held(now int64) bool { return l != nil && (l.expire == 0 || now < l.expire) }

// lock returns the live lock of key, or nil.
func (rs *recordStore) lock(mapName, key string, now int64) *lockState {
	if l := rs.locks[mapName][key]; l.held(now) {
		return l
	}
	return nil
}

// lockedAgainst reports statusLocked when key is locked by someone other than holder.
func (rs *recordStore) lockedAgainst(mapName string, key []byte, holder string, now int64) status {
	if l := rs.lock(mapName, string(key), now); l != nil && l.holder != holder {
		return statusLocked
	}
	return statusOK
}

func newRecordStore() *recordStore {
	rs := &recordStore{maps: make(map[string]*entryTable)}
	rs.answers.resetFresh() // nothing was remembered in it: it has forgotten nothing (answers.go)
	return rs
}

// get returns the live record of key, or the zero record.
func (rs *recordStore) get(mapName string, key string, now int64) record {
	r := rs.lookup(mapName, key)
	if r.expired(now) {
		return record{}
	}
	return r
}

// lookup returns the record of key, expired or not, or the zero record.
func (rs *recordStore) lookup(mapName string, key string) record {
	if t := rs.maps[mapName]; t != nil {
		return t.lookup(key)
	}
	return record{}
}

// touch marks r, a record of mapName, as read at now. It may run under a read lock.
func (rs *recordStore) touch(mapName string, r record, now int64) { rs.maps[mapName].touch(r, now) }

// count counts the records of a map, expired ones included.
func (rs *recordStore) count(mapName string) int {
	if t := rs.maps[mapName]; t != nil {
		return t.len()
	}
	return 0
}

// all yields the records of a map, expired ones included; the loop body may remove the record
// it is given.
func (rs *recordStore) all(mapName string) iter.Seq[record] {
	if t := rs.maps[mapName]; t != nil {
		return t.all()
	}
	return func(func(record) bool) {}
}

// apply applies a mutation if it is newer than what the store holds for that key. It reports
// whether the store changed.
func (rs *recordStore) apply(m mutation) bool { return rs.applyTouch(m, 0, false) }

// applyAt is apply that also marks the record a set leaves under its key with sequence number
// m.Seq (the one it stored, or an identical one already there) as accessed at now, for LRU
// eviction, with a single lookup of the key.
func (rs *recordStore) applyAt(m mutation, now int64) bool { return rs.applyTouch(m, now, true) }

// detach points the key and value of m, just applied by applyAt, at the copies the store keeps
// (the entry it wrote, found again: the lookup hits the cache), or at copies of their own, so
// that m no longer refers to the buffer it was decoded from, which can then be reused (an
// owner's request, see tryServeOp). Stored bytes are never rewritten, so the stored copies stay
// valid for whoever keeps m.
func (rs *recordStore) detach(m *mutation) {
	if t := rs.maps[m.Map]; m.Kind == mutSet && t != nil {
		if r := t.lookup(string(m.Key)); r.ok && r.seq == m.Seq {
			m.Key, m.Value = unsafe.Slice(unsafe.StringData(r.key), len(r.key)), r.value
			return
		}
	}
	m.Key, m.Value = bytes.Clone(m.Key), bytes.Clone(m.Value)
}

func (rs *recordStore) applyTouch(m mutation, now int64, touch bool) bool {
	if m.Kind == mutStored {
		return false // write-behind bookkeeping only; its Seq is an older write's
	}
	fresh := m.Seq > rs.seq
	if fresh {
		rs.seq = m.Seq
	}
	if isReachMark(&m) {
		rs.answers.reachFrom(binary.BigEndian.Uint64(m.Value))
	} else if !m.Op.zero() {
		var result []byte
		if m.Kind == mutAnswer {
			result = m.Value
		}
		// A mutation newer than any applied is new here: its answer cannot be remembered yet.
		rs.answers.remember(m.Op, m.Ans, result, false, !fresh)
	}
	switch m.Kind {
	case mutSet:
		t := rs.maps[m.Map]
		var old record
		if t != nil {
			old = t.lookup(string(m.Key))
		}
		if old.ok && old.seq >= m.Seq {
			if old.seq == m.Seq && touch {
				t.touch(old, now)
			}
			return false
		}
		if rs.syncing && rs.shadowedSync(m.Map, string(m.Key), m.Seq) {
			return false
		}
		if t == nil {
			t = newEntryTable()
			rs.maps[m.Map] = t
		}
		grow := int64(len(m.Key) + len(m.Value) + recordOverhead)
		if old.ok {
			grow -= recordSize(old)
			if old.expireAt != 0 {
				rs.ttls--
			}
			if old.paged {
				rs.paged--
			}
		}
		if m.ExpireAt != 0 {
			rs.ttls++
		}
		if !touch {
			now = 0
		}
		t.set(old, string(m.Key), m.Value, m.Seq, m.ExpireAt, now)
		rs.addBytes(grow)
		return true
	case mutDelete:
		if rs.syncing {
			key := string(m.Key)
			t := rs.tombs[m.Map]
			if t == nil {
				t = make(map[string]uint64)
				rs.tombs[m.Map] = t
			}
			if m.Seq > t[key] {
				t[key] = m.Seq
			}
		}
		if r := rs.lookup(m.Map, string(m.Key)); r.ok && r.seq < m.Seq {
			rs.remove(m.Map, r)
			return true
		}
		return false
	case mutLock, mutUnlock:
		key := string(m.Key)
		tombMap := "\x00lock\x00" + m.Map // lock tombstones live beside the entries' ones
		if l := rs.locks[m.Map][key]; l != nil && l.seq >= m.Seq {
			return false
		}
		if m.Kind == mutUnlock {
			if rs.syncing {
				if rs.tombs[tombMap] == nil {
					rs.tombs[tombMap] = make(map[string]uint64)
				}
				rs.tombs[tombMap][key] = max(rs.tombs[tombMap][key], m.Seq)
			}
			delete(rs.locks[m.Map], key)
			return true
		}
		if rs.syncing && rs.tombs[tombMap][key] >= m.Seq {
			return false
		}
		if rs.locks == nil {
			rs.locks = make(map[string]map[string]*lockState)
		}
		if rs.locks[m.Map] == nil {
			rs.locks[m.Map] = make(map[string]*lockState)
		}
		rs.locks[m.Map][key] = &lockState{holder: m.Holder, count: m.Count, expire: m.ExpireAt, seq: m.Seq}
		return true
	case mutClear:
		if rs.syncing && m.Seq > rs.clearSeq[m.Map] {
			rs.clearSeq[m.Map] = m.Seq
		}
		return rs.removeBefore(m.Map, m.Seq)
	}
	return false
}

// removeBefore removes the records of a map older than seq (a clear numbered seq) and reports
// whether there were any. It is apart from applyTouch because the loop body is a closure: its
// captured variables would be allocated on every apply.
func (rs *recordStore) removeBefore(mapName string, seq uint64) bool {
	changed := false
	for r := range rs.all(mapName) {
		if r.seq < seq {
			rs.remove(mapName, r)
			changed = true
		}
	}
	return changed
}

// shadowedSync reports whether a set at seq is older than a delete or clear recorded while the
// store receives a copy.
func (rs *recordStore) shadowedSync(mapName, key string, seq uint64) bool {
	if rs.clearSeq[mapName] >= seq && rs.clearSeq[mapName] != 0 {
		return true
	}
	if t, ok := rs.tombs[mapName][key]; ok && t >= seq {
		return true
	}
	return false
}

// keysBefore lists the keys of a map whose records are older than seq (what a clear numbered
// seq removes). The keys are copies: write-behind queues keep them, and a key viewed in place
// would keep its whole chunk alive.
func (rs *recordStore) keysBefore(mapName string, seq uint64) []string {
	var keys []string
	for r := range rs.all(mapName) {
		if r.seq < seq {
			keys = append(keys, strings.Clone(r.key))
		}
	}
	return keys
}

// beginSync empties the store and starts keeping tombstones: a full copy follows.
func (rs *recordStore) beginSync() {
	rs.maps = make(map[string]*entryTable)
	rs.release()
	rs.ttls = 0
	rs.paged, rs.folder = 0, folderCopy{}
	rs.locks = nil
	rs.seq = 0
	rs.answers.reset() // the copy brings the owner's, and nothing older (answers.go)
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
	t := rs.maps[mapName]
	if t == nil {
		return 0
	}
	if rs.ttls == 0 {
		return t.len()
	}
	n := 0
	for r := range t.all() {
		if !r.expired(now) {
			n++
		}
	}
	return n
}

// expire removes every expired record and returns them.
func (rs *recordStore) expire(now int64) []expiredEntry {
	var gone []expiredEntry
	for name := range rs.maps {
		for r := range rs.all(name) {
			if r.expired(now) {
				rs.remove(name, r)
				gone = append(gone, expiredEntry{name, r.key})
			}
		}
	}
	return gone
}

// expiredEntry names an entry an expiry sweep removed.
type expiredEntry struct{ mapName, key string }

// remove deletes r, a record of mapName.
func (rs *recordStore) remove(mapName string, r record) {
	rs.maps[mapName].remove(r)
	rs.addBytes(-recordSize(r))
	if r.expireAt != 0 {
		rs.ttls--
	}
	if r.paged {
		rs.paged--
	}
}

// addBytes counts n more bytes of records (n < 0: fewer), in the store and in the member's
// memory account.
func (rs *recordStore) addBytes(n int64) {
	rs.bytes += n
	rs.mem.add(n)
}

// release takes the store's records out of the member's memory account: the store is being
// dropped (or emptied).
func (rs *recordStore) release() { rs.addBytes(-rs.bytes) }

// snapshot returns every record and remembered answer as a mutation, for a copy to another
// member. Values are shared, not copied: stored bytes are never overwritten. A paged-out value is
// not read here (the mutation is marked paged): the copy reads it as it sends it (copyValue).
func (rs *recordStore) snapshot() []mutation {
	var out []mutation
	for name := range rs.maps {
		for r := range rs.all(name) {
			out = append(out, mutation{Map: name, Kind: mutSet, Key: []byte(r.key), Value: r.value, ExpireAt: r.expireAt, Seq: r.seq, paged: r.paged})
		}
	}
	for name, locks := range rs.locks {
		for k, l := range locks {
			out = append(out, mutation{Map: name, Kind: mutLock, Key: []byte(k), Holder: l.holder, Count: l.count, ExpireAt: l.expire, Seq: l.seq})
		}
	}
	return rs.answers.appendSnapshot(out)
}
