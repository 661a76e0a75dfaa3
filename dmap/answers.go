package dmap

import (
	"bytes"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

// Exactly-once writes across retries.
//
// The router (Service.do) retries an operation after a lost connection or a retryable answer,
// and the owner, or a new owner after a failover, may already have applied it. So every write
// gets an ID once (opID, reused by every attempt), and the mutations it applies carry that ID
// and the answer the owner gave (mutation.Op and Ans, or a mutAnswer for a processor's result).
// Applying such a mutation, on the owner, on a backup or from a partition copy, remembers the
// answer in the partition's answerTable, which lives in the record store: it travels with the
// mutations to the backups and with copies (snapshot), and is reset with the store when a full
// copy replaces it. An owner that finds a write's ID in the table answers with the remembered
// answer instead of deciding the write again (applyWrite).
//
// A write that changes nothing is not remembered: running it again is its first visible effect.
// The owner remembers the answer of the last maxAnswers writes of each partition; the oldest
// is forgotten first. A retry that arrives after maxAnswers later writes of its partition (the
// router retries within milliseconds, or right after the table that names the new owner, while
// the partition had no owner to write to) is applied again: at least once, not exactly once.
// ExecuteOnEntries (a processor on a whole partition) is not covered: its answer is a result
// per entry, too large to remember.

// maxAnswers bounds the remembered answers of one partition (see above). An answer costs 32
// bytes with its index slots, plus an entry processor's result if it has one: at most 8 KiB
// per partition replica (about 2 MiB for a member holding 271 partitions), allocated as the
// partition is written.
const maxAnswers = 256

// opID identifies one write operation across its attempts: a random prefix chosen once per
// Service, and 64 bits from the runtime's per-thread random generator (cheaper than a shared
// counter, whose cache line writers on every core would contend for; two writes of one member
// share an ID with probability 2^-64 per pair). The zero opID means "none".
type opID struct{ hi, lo uint64 }

func (id opID) zero() bool { return id == opID{} }

// opIDLen is the size of an opID on the wire (a msgpack bin: big-endian hi, then lo).
const opIDLen = 16

// appendOpID appends id's wire form: nil for none, else a bin of opIDLen bytes.
func appendOpID(b []byte, id opID) []byte {
	if id.zero() {
		return append(b, mpNil)
	}
	b = append(b, mpBin8, opIDLen)
	b = binary.BigEndian.AppendUint64(b, id.hi)
	return binary.BigEndian.AppendUint64(b, id.lo)
}

func sizeOpID(id opID) int {
	if id.zero() {
		return 1
	}
	return 2 + opIDLen
}

// parseOpID reads an opID from its bin value (nil or empty: none).
func parseOpID(b []byte) (opID, bool) {
	switch len(b) {
	case 0:
		return opID{}, true
	case opIDLen:
		return opID{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}, true
	}
	return opID{}, false
}

func (id opID) bytes() []byte {
	if id.zero() {
		return nil
	}
	var b [opIDLen]byte
	binary.BigEndian.PutUint64(b[:], id.hi)
	binary.BigEndian.PutUint64(b[8:], id.lo)
	return b[:]
}

// newOpIDPrefix draws a Service's random opID prefix (never 0, so no opID is zero).
func newOpIDPrefix() (uint64, error) {
	var b [8]byte
	for {
		if _, err := crand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("dmap: operation id prefix: %w", err)
		}
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v, nil
		}
	}
}

// newOpID returns a fresh operation ID, without allocating or sharing state between writers.
func (s *Service) newOpID() opID { return opID{s.opPrefix, rand.Uint64()} }

// answer is a remembered write's answer as it travels in a mutation (mutation.Ans): its status
// shifted left by 1, and Done in bit 0.
type answer uint8

func answerOf(resp opResponse) answer {
	a := answer(resp.Status) << 1
	if resp.Done {
		a |= 1
	}
	return a
}

// answerEntry is one remembered answer.
type answerEntry struct {
	id  opID
	ans answer
	// failed: this member, as the owner, applied the write but its backups did not all
	// acknowledge it (its outcome is unknown to the writer).
	failed bool
	// result: the answer carries an entry processor's result (answerTable.results). Entries
	// hold no pointers, so that remembering one costs no write barrier and the ring no GC scan.
	result bool
}

// response rebuilds the answer the owner first gave.
func (t *answerTable) response(e *answerEntry) opResponse {
	if e.failed {
		return opResponse{Status: statusFailed, Msg: "an earlier attempt of this write was applied by the owner but not acknowledged by every backup: its outcome is unknown"}
	}
	resp := opResponse{Status: status(e.ans >> 1), Done: e.ans&1 == 1}
	if e.result {
		resp.Value = t.results[e.id]
	}
	return resp
}

// answerTable is a partition's remembered answers: a ring of the last maxAnswers, indexed by an
// open-addressing hash table (linear probing), so that remembering and looking up cost a few
// nanoseconds and no allocation once the ring is full. An index slot holds a ring position and
// a 7-bit tag of the ID's hash, so that a lookup of an ID not remembered (every first attempt)
// reads one cache line of the index and none of the ring. A forgotten answer's index slot is
// not cleared (lookups compare IDs, so it only lengthens probes); instead the index is rebuilt
// from the ring every maxAnswers answers, which keeps it at most half full. Plain data: the
// partition's mu guards it.
type answerTable struct {
	ring []answerEntry // grows to maxAnswers, then is overwritten from next
	next int
	// results holds the processor results of the remembered answers that have one (copies).
	results map[opID][]byte
	// index holds slotUsed | tag<<8 | ring position (0: empty slot); added counts the slots
	// taken since it was last rebuilt.
	index []uint16
	added int
}

const (
	answerIndexSize = 4 * maxAnswers // a power of two
	slotUsed        = 0x8000
)

// A ring position must fit the low 8 bits of an index slot.
var _ [256 - maxAnswers]struct{}

// hash returns id's home slot in the index and its tag (slotUsed | tag<<8).
func (t *answerTable) hash(id opID) (slot int, tag uint16) {
	h := (id.hi ^ id.lo*0x9E3779B97F4A7C15) * 0xBF58476D1CE4E5B9
	return int(h >> 32 & (answerIndexSize - 1)), slotUsed | uint16(h>>56&0x7f)<<8
}

// lookup returns the remembered answer of id.
func (t *answerTable) lookup(id opID) (*answerEntry, bool) {
	if id.zero() || t.index == nil {
		return nil, false
	}
	i, tag := t.hash(id)
	for ; ; i = (i + 1) & (answerIndexSize - 1) {
		v := t.index[i]
		if v == 0 {
			return nil, false
		}
		if v&0xff00 == tag {
			if e := &t.ring[v&0xff]; e.id == id {
				return e, true
			}
		}
	}
}

// remember records id's answer, forgetting the oldest one when the table is full. A result is
// copied. mayRepeat: id may be remembered already (a write applied again, a copy), which costs
// a lookup.
func (t *answerTable) remember(id opID, ans answer, result []byte, failed, mayRepeat bool) {
	if id.zero() {
		return
	}
	if mayRepeat {
		if _, ok := t.lookup(id); ok {
			return
		}
	}
	if t.index == nil {
		t.index = make([]uint16, answerIndexSize)
	}
	e := answerEntry{id: id, ans: ans, failed: failed, result: len(result) > 0}
	if e.result {
		if t.results == nil {
			t.results = make(map[opID][]byte)
		}
		t.results[id] = bytes.Clone(result)
	}
	var pos int
	if len(t.ring) < maxAnswers {
		pos = len(t.ring)
		t.ring = append(t.ring, e)
	} else {
		pos = t.next
		t.next = (t.next + 1) % maxAnswers
		if t.ring[pos].result {
			delete(t.results, t.ring[pos].id)
		}
		t.ring[pos] = e
	}
	if t.added++; t.added <= maxAnswers {
		t.insert(id, pos)
		return
	}
	clear(t.index)
	for i := range t.ring {
		t.insert(t.ring[i].id, i)
	}
	t.added = 0
}

// insert indexes ring position pos under id.
func (t *answerTable) insert(id opID, pos int) {
	i, tag := t.hash(id)
	for t.index[i] != 0 {
		i = (i + 1) & (answerIndexSize - 1)
	}
	t.index[i] = tag | uint16(pos)
}

// fail marks id's answer as failed (see answerEntry).
func (t *answerTable) fail(id opID) {
	if e, ok := t.lookup(id); ok {
		e.failed = true
	}
}

// len reports how many answers are remembered.
func (t *answerTable) len() int { return len(t.ring) }

// appendSnapshot appends the remembered answers, oldest first, as mutAnswer mutations (for a
// copy of the partition).
func (t *answerTable) appendSnapshot(out []mutation) []mutation {
	n := len(t.ring)
	for i := range n {
		e := &t.ring[(t.next+i)%n]
		ans := e.ans
		if e.failed {
			ans = answerOf(t.response(e))
		}
		out = append(out, mutation{Kind: mutAnswer, Op: e.id, Ans: ans, Value: t.results[e.id]})
	}
	return out
}
