package engine

import (
	"encoding/binary"
	"hash/maphash"
	"iter"
	"strings"
	"sync/atomic"
	"unsafe"
)

// entryTable holds one map's entries in one partition, in memory the garbage collector does not
// have to trace. A member holds millions of entries; kept as Go objects (a record struct, a key
// string, a value slice and a map slot holding pointers to them) every GC cycle marks each of
// them, and on a busy member that marking is what operations queue behind. Here keys and small
// values are packed into large byte chunks, and the index and per-entry metadata are slices and
// maps without pointers: a GC cycle marks a table's few chunks, whatever it holds.
//
// Stored bytes are never written twice. A write appends the new version at the end of the
// current chunk and the old one becomes dead. Whenever a table's dead bytes exceed half its
// live bytes, its deadest chunk has its live records copied forward and is then dropped, never
// reused (a chunk with nothing live left is dropped at once). So a key or value handed out (a
// record view, an event, a response being written) stays valid and unchanged for as long as
// anyone holds it, exactly like the immutable records it replaces, and the GC frees a dropped
// chunk once the last such slice is gone.
//
// An entryTable is plain data: the partition that owns it serialises writes; reads may run
// concurrently with each other (touch is atomic).
type entryTable struct {
	seed maphash.Seed
	// mask keeps the bits of a key's hash the index uses: all of them, except in tests that
	// force collisions.
	mask uint64
	// index locates a key's slot by its hash. A key whose hash another key already holds goes
	// to spill instead (with 64-bit hashes, practically never).
	index map[uint64]uint32
	spill map[string]uint32
	slots []slot
	free  []uint32 // unused slots
	// chunks hold the records; chunks[cur] is the one appended to (-1: none yet). A value of
	// at least adoptMin bytes is not copied: the caller's buffer becomes a chunk of its own.
	chunks     []chunk
	freeChunks []uint32
	cur        int
	live       int // bytes of live records in chunks
	dead       int // bytes of removed or replaced records in chunks
	paged      int // entries whose value is paged out
}

// slot is one entry's metadata. It has no pointers, so neither has the slots slice.
type slot struct {
	access   atomic.Int64 // last read or write, Unix ns (coarse), for LRU eviction
	seq      uint64
	expireAt int64
	chunk    uint32 // the chunk holding the record (header, key and a small value)
	off      uint32 // the record's offset in it
	keyLen   uint32
	valLen   uint32
	valChunk uint32 // 1 + the chunk holding only this entry's value; 0: the value follows the key
	used     bool
	// paged: the value is not in the table, only in the member's data folder (paging.go); the
	// record holds the key alone.
	paged bool
}

// chunk is a run of records: each is a header (slot index, then the length of what follows),
// the key, and the value unless it has a chunk of its own.
type chunk struct {
	b     []byte // len: bytes written; cap: size
	dead  int    // bytes of b belonging to removed or replaced records
	whole bool   // holds one adopted value, no records
}

const (
	recordHeader = 8
	// A new chunk holds about an eighth of the table's live bytes, within these bounds: small
	// tables (a partition holds a slice of every map) waste little on a half-filled chunk, large
	// ones do not multiply chunks.
	minChunk = 256
	maxChunk = 256 << 10
	// adoptMin is the value size from which a value keeps its own buffer instead of being
	// copied into a chunk: copying large values would cost more than the one extra object they
	// give the GC to mark.
	adoptMin = 4 << 10
)

func newEntryTable() *entryTable {
	return &entryTable{seed: maphash.MakeSeed(), mask: ^uint64(0), index: make(map[uint64]uint32), cur: -1}
}

func (t *entryTable) hash(key string) uint64 { return maphash.String(t.seed, key) & t.mask }

// len counts the entries, expired ones included.
func (t *entryTable) len() int { return len(t.index) + len(t.spill) }

// lookup returns the entry of key, expired or not.
func (t *entryTable) lookup(key string) record {
	if i, ok := t.index[t.hash(key)]; ok && t.keyAt(i) == key {
		return t.view(i)
	}
	if i, ok := t.spill[key]; ok {
		return t.view(i)
	}
	return record{}
}

func (t *entryTable) keyAt(i uint32) string {
	s := &t.slots[i]
	if s.keyLen == 0 {
		return ""
	}
	b := t.chunks[s.chunk].b
	return unsafe.String(&b[int(s.off)+recordHeader], int(s.keyLen))
}

func (t *entryTable) view(i uint32) record {
	s := &t.slots[i]
	b := t.chunks[s.chunk].b
	k := int(s.off) + recordHeader
	var v []byte
	switch {
	case s.paged: // nil: recordStore.fill reads it
	case s.valChunk != 0:
		v = t.chunks[s.valChunk-1].b
		v = v[:len(v):len(v)]
	default:
		v = b[k+int(s.keyLen) : k+int(s.keyLen)+int(s.valLen) : k+int(s.keyLen)+int(s.valLen)]
	}
	return record{key: t.keyAt(i), value: v, seq: s.seq, expireAt: s.expireAt,
		access: s.access.Load(), slot: i, ok: true, paged: s.paged}
}

// touch marks entry r as accessed at now. It may run under a read lock.
func (t *entryTable) touch(r record, now int64) { t.slots[r.slot].access.Store(now) }

// all yields every entry, expired ones included. The loop body may remove the entry it is given
// (not others, and it may not add any).
func (t *entryTable) all() iter.Seq[record] {
	return func(yield func(record) bool) {
		for i := range t.slots {
			if t.slots[i].used && !yield(t.view(uint32(i))) {
				return
			}
		}
	}
}

// set stores value under key, replacing the entry old (the key's current one, from lookup, or
// the zero record). The table takes ownership of value: the caller must not modify it again.
func (t *entryTable) set(old record, key string, value []byte, seq uint64, expireAt, access int64) {
	var i uint32
	if old.ok {
		i = old.slot
		if t.slots[i].paged {
			t.paged--
		}
		t.release(i)
	} else {
		i = t.newSlot(key)
	}
	inline, valChunk := len(value), uint32(0)
	if len(value) >= adoptMin {
		valChunk = uint32(t.newChunk(value[:len(value):len(value)], true)) + 1
		inline = 0
	}
	t.reserve(recordHeader + len(key) + inline)
	t.appendRecord(i, key, value[:inline])
	s := &t.slots[i]
	s.seq, s.expireAt, s.keyLen, s.valLen, s.valChunk, s.used = seq, expireAt, uint32(len(key)), uint32(len(value)), valChunk, true
	s.paged = false
	s.access.Store(access)
}

// pageOut drops the value of entry r (the key's current one, from lookup) from the table,
// keeping its key, sequence number, expiry and access time: the entry is paged out (paging.go).
// Its stored bytes become dead, like those of an overwritten entry.
func (t *entryTable) pageOut(r record) {
	i := r.slot
	t.release(i)
	t.reserve(recordHeader + len(r.key))
	t.appendRecord(i, r.key, nil)
	s := &t.slots[i]
	s.valLen, s.valChunk, s.used, s.paged = 0, 0, true, true
	t.paged++
}

// newSlot takes a free slot for a new key and indexes it.
func (t *entryTable) newSlot(key string) uint32 {
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.slots = append(t.slots, slot{})
		i = uint32(len(t.slots) - 1)
	}
	h := t.hash(key)
	if _, taken := t.index[h]; taken {
		if t.spill == nil {
			t.spill = make(map[string]uint32)
		}
		t.spill[strings.Clone(key)] = i // key may alias a caller's bytes
	} else {
		t.index[h] = i
	}
	return i
}

// remove deletes entry r.
func (t *entryTable) remove(r record) {
	i := r.slot
	if t.slots[i].paged {
		t.paged--
	}
	if h := t.hash(r.key); t.indexed(h, i) {
		delete(t.index, h) // a key is in index or in spill, never in both
	} else {
		delete(t.spill, r.key)
	}
	t.release(i)
	t.slots[i] = slot{}
	t.free = append(t.free, i)
}

func (t *entryTable) indexed(h uint64, i uint32) bool {
	j, ok := t.index[h]
	return ok && j == i
}

// release marks the stored bytes of slot i dead, dropping or compacting what that empties. The
// slot is left unused: compaction must not copy its record.
func (t *entryTable) release(i uint32) {
	s := &t.slots[i]
	s.used = false
	if s.valChunk != 0 {
		t.dropChunk(int(s.valChunk - 1))
		s.valChunk = 0
	}
	ci := int(s.chunk)
	c := &t.chunks[ci]
	n := recordHeader + int(binary.LittleEndian.Uint32(c.b[s.off+4:]))
	c.dead += n
	t.live -= n
	t.dead += n
	if ci != t.cur && c.dead == len(c.b) {
		t.dropChunk(ci) // nothing to copy
		return
	}
	t.collect()
}

// collect keeps the table's dead bytes at most half its live bytes (plus minChunk, so that a
// table of a few entries does not copy them at every write): while there are more, it
// compacts the chunk with the largest dead fraction, the current one aside. Compacting the
// deadest chunk once the whole table has that much garbage, rather than every chunk as soon
// as it is half dead, copies less: under random overwrites the chunk chosen is mostly the
// oldest and well over half dead. BenchmarkEntryTable/overwrite: 614 -> 465 bytes allocated
// per overwrite of a 274-byte record, the chunks 1.58 -> 1.52 times the live bytes;
// BenchmarkEntryTableFill (a table filled and overwritten, as the load tool's put run does):
// 598 -> 528 KB, 1.57 -> 1.69 times the live bytes.
func (t *entryTable) collect() {
	for t.dead*2 > t.live+minChunk {
		best := -1
		for ci := range t.chunks {
			c := &t.chunks[ci]
			if ci == t.cur || c.whole || c.b == nil {
				continue
			}
			// The deadest by fraction: the most bytes freed per byte copied.
			if best < 0 || c.dead*len(t.chunks[best].b) > t.chunks[best].dead*len(c.b) {
				best = ci
			}
		}
		if best < 0 || t.chunks[best].dead == 0 {
			return // the garbage is all in the current chunk
		}
		c := &t.chunks[best]
		t.reserve(len(c.b) - c.dead)
		t.compact(best)
	}
}

// reserve makes room for n more bytes in the current chunk, starting a new one when it is full.
func (t *entryTable) reserve(n int) {
	if t.cur >= 0 {
		if c := &t.chunks[t.cur]; cap(c.b)-len(c.b) >= n {
			return
		}
	}
	size := max(min(max(t.live/8, minChunk), maxChunk), n)
	old := t.cur
	t.cur = t.newChunk(make([]byte, 0, size), false)
	if old >= 0 {
		if c := &t.chunks[old]; c.dead == len(c.b) {
			t.dropChunk(old) // nothing in it lives any more
		}
	}
}

func (t *entryTable) newChunk(b []byte, whole bool) int {
	c := chunk{b: b, whole: whole}
	if n := len(t.freeChunks); n > 0 {
		ci := int(t.freeChunks[n-1])
		t.freeChunks = t.freeChunks[:n-1]
		t.chunks[ci] = c
		return ci
	}
	t.chunks = append(t.chunks, c)
	return len(t.chunks) - 1
}

// dropChunk forgets chunk ci, and its dead bytes with it. Its memory is not reused: views into
// it keep it alive.
func (t *entryTable) dropChunk(ci int) {
	t.dead -= t.chunks[ci].dead
	t.chunks[ci] = chunk{}
	t.freeChunks = append(t.freeChunks, uint32(ci))
}

// appendRecord writes slot i's record (key, then the inline part of its value) at the end of
// the current chunk, which reserve made room in.
func (t *entryTable) appendRecord(i uint32, key string, inline []byte) {
	c := &t.chunks[t.cur]
	off := len(c.b)
	c.b = binary.LittleEndian.AppendUint32(c.b, i)
	c.b = binary.LittleEndian.AppendUint32(c.b, uint32(len(key)+len(inline)))
	c.b = append(c.b, key...)
	c.b = append(c.b, inline...)
	t.live += len(c.b) - off
	s := &t.slots[i]
	s.chunk, s.off = uint32(t.cur), uint32(off)
}

// compact copies the live records of chunk ci to the current chunk (reserve made room) and
// drops ci.
func (t *entryTable) compact(ci int) {
	b := t.chunks[ci].b
	for off := 0; off < len(b); {
		i := binary.LittleEndian.Uint32(b[off:])
		n := int(binary.LittleEndian.Uint32(b[off+4:]))
		if int(i) < len(t.slots) {
			if s := &t.slots[i]; s.used && int(s.chunk) == ci && int(s.off) == off {
				if c := &t.chunks[t.cur]; cap(c.b)-len(c.b) < recordHeader+n {
					panic("dmap: entry table compaction overflows its chunk")
				}
				t.appendRecord(i, "", b[off+recordHeader:off+recordHeader+n])
				t.live -= recordHeader + n // moved, not added
			}
		}
		off += recordHeader + n
	}
	t.dropChunk(ci)
}
