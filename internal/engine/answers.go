package engine

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
// Only a retry can find its ID (the router marks every attempt after the first, opRequest.Retry),
// so first attempts do not look: they only remember, which costs one write into the ring. One
// case is left: a first attempt still on its way through the owner (queued for the partition's
// write lock, say) when the caller, having lost the connection, sent the retry, which the owner
// served first. So the owner keeps the IDs of the last maxRetried retries it decided afresh in
// the partition (part.retried): a first attempt among them gets the remembered answer, or is
// refused when its retry changed nothing (its caller was told so already).
//
// A write that changes nothing is not remembered: running it again is its first visible effect.
// A write the owner applied but whose backups did not all acknowledge it is remembered as
// failed: a retry is told that its outcome is unknown (as the first attempt was), never that it
// succeeded.
// The owner remembers the answer of the last maxAnswers writes of each partition; the oldest
// is forgotten first. A retry that arrives after maxAnswers later writes of its partition (the
// router retries within milliseconds, or right after the table that names the new owner, while
// the partition had no owner to write to) is applied again: at least once, not exactly once.
// ExecuteOnEntries (a processor on a whole partition) is not covered: its answer is a result
// per entry, too large to remember.

// maxRetried bounds part.retried, the IDs of the last retries an owner decided afresh.
const maxRetried = 16

// maxAnswers bounds the remembered answers of one partition (see above). An answer costs 24
// bytes, plus an entry processor's result if it has one: at most 6 KiB per partition replica
// (about 1.6 MiB for a member holding 271 partitions), allocated as the partition is written.
const maxAnswers = 256

// opID identifies one write operation across its attempts: a random prefix chosen once per
// Service, and 64 bits from the runtime's per-thread random generator (cheaper than a shared
// counter, whose cache line writers on every core would contend for; two writes of one member
// share an ID with probability 2^-64 per pair). The zero opID means "none".
type opID struct{ hi, lo uint64 }

func (id opID) zero() bool { return id == opID{} }

// opIDLen is the size of an opID on the wire: a msgpack bin of big-endian hi, then lo, and in
// a request, one more byte, 1, when the attempt is a retry (opRequest.Retry).
const opIDLen = 16

// appendOpID appends id's wire form: nil for none, else a bin of opIDLen bytes (one more with
// retry).
func appendOpID(b []byte, id opID, retry bool) []byte {
	if id.zero() {
		return append(b, mpNil)
	}
	if !retry {
		b = append(b, mpBin8, opIDLen)
	} else {
		b = append(b, mpBin8, opIDLen+1)
	}
	b = binary.BigEndian.AppendUint64(b, id.hi)
	b = binary.BigEndian.AppendUint64(b, id.lo)
	if retry {
		b = append(b, 1)
	}
	return b
}

func sizeOpID(id opID, retry bool) int {
	switch {
	case id.zero():
		return 1
	case retry:
		return 3 + opIDLen
	}
	return 2 + opIDLen
}

// parseOpID reads an opID and the retry mark from its bin value (nil or empty: none).
func parseOpID(b []byte) (id opID, retry, ok bool) {
	switch {
	case len(b) == 0:
		return opID{}, false, true
	case len(b) == opIDLen+1 && b[opIDLen] != 1:
		return opID{}, false, false
	case len(b) == opIDLen || len(b) == opIDLen+1:
		id = opID{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
		return id, len(b) > opIDLen, !id.zero()
	}
	return opID{}, false, false
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
	var resp opResponse
	if e.failed {
		// The result goes with the failure, as it did the first time (ownerWrite).
		resp = opResponse{Status: statusFailed, Msg: "an earlier attempt of this write was applied by the owner but not acknowledged by every backup: its outcome is unknown"}
	} else {
		resp = opResponse{Status: status(e.ans >> 1), Done: e.ans&1 == 1}
	}
	if e.result {
		resp.Value = t.results[e.id]
	}
	return resp
}

// answerTable is a partition's remembered answers: a ring of the last maxAnswers. Remembering
// writes the next entry of the ring (24 bytes, no pointers: consecutive writes share cache
// lines, and the GC does not scan it), which is all a write pays on the owner and on each
// backup. Looking an ID up scans the ring (a few hundred nanoseconds), which only retries do
// (see part.retried). Plain data: the partition's mu guards it.
type answerTable struct {
	ring []answerEntry // grows to maxAnswers, then is overwritten from next
	next int
	// results holds the processor results of the remembered answers that have one (copies).
	results map[opID][]byte
}

// lookup returns the remembered answer of id, scanning from the newest.
func (t *answerTable) lookup(id opID) (*answerEntry, bool) {
	if id.zero() {
		return nil, false
	}
	n := len(t.ring)
	for i := range n {
		if e := &t.ring[(t.next+n-1-i)%n]; e.id == id {
			return e, true
		}
	}
	return nil, false
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
	e := answerEntry{id: id, ans: ans, failed: failed, result: len(result) > 0}
	if e.result {
		if t.results == nil {
			t.results = make(map[opID][]byte)
		}
		t.results[id] = bytes.Clone(result)
	}
	if len(t.ring) < maxAnswers {
		t.ring = append(t.ring, e)
		return
	}
	if old := &t.ring[t.next]; old.result {
		delete(t.results, old.id)
	}
	t.ring[t.next] = e
	t.next = (t.next + 1) % maxAnswers
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
