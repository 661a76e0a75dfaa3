package engine

import (
	"bytes"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
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
//
// How long answers are kept, and what a retry is told once its answer may be forgotten.
//
// Memory is finite, so answers are forgotten, oldest first. Until this design an owner kept
// only the last 256 answers of each partition, and a retry that came later was decided afresh:
// applied a second time. The Jepsen queue workload lost acknowledged items that way (a queue
// partition takes about 60 writes a second, so 256 writes last about 4 s, while a queue's poll
// is resent as the same operation for up to 30 s: the first poll's items were removed and
// reached nobody), and a put retried late could overwrite a newer value. Two rules close it:
//
//   - Retention by age as well as count. Every answer younger than answerRetention is kept, up
//     to maxAnswers per partition (and, beyond the newest minAnswers, up to
//     maxAnswerResultBytes of processor results); the newest minAnswers are always kept.
//     answerRetention covers the longest retry window of the module (MaxRetryWindow, the
//     queue's resending of a removal) plus retryTransitSlack, so an owner under ordinary load
//     answers every retry the module sends with its first answer.
//   - A horizon. The table knows, on this member's monotonic clock, how far back its memory
//     reaches (answerTable.reach): every answer remembered here after reach is still here. It
//     moves when an answer is forgotten (to the time it was remembered, rounded up to the next
//     clock mark), and starts at the store's creation (a partition created empty, a full copy
//     received, a store emptied: nothing older can be here, whatever the sender had forgotten:
//     the sender holds the partition's writes from the copy's begin to its snapshot, so what it
//     forgot was remembered before the begin reached this member). Each retry carries how long
//     before it was sent its operation's first attempt was sent (opRequest.Age), measured on
//     the caller's own clock: a duration, so no clocks of two hosts are compared. The owner
//     puts the first attempt at now - Age - retryTransitSlack on its own clock (the slack
//     allows for the retry's own time on the way, which no member can measure). A retry whose
//     ID is not remembered and whose first attempt may predate reach is not decided again: it
//     is answered statusOutcomeUnknown (ErrOutcomeUnknown), since its first attempt may have
//     been applied and forgotten. A retry whose first attempt is after reach was never applied
//     here (its answer would be remembered), nor anywhere this partition's history came from,
//     and is decided afresh. A retry from a peer that sends no Age is taken to be
//     answerRetention old.
//
// Every answer remembered after reach is present because a write's answer is remembered no
// earlier than it was applied: on the owner as it applies it, on a backup as it applies the
// owner's batch, on a copy's receiver as the copy arrives. So a backup promoted by a failover
// answers as the owner would have, or more cautiously.
//
// The cost stays off first attempts: remembering writes one 24-byte entry into a ring (no
// pointers, nothing for the GC to scan) and reads the clock once every answerMarkEvery answers
// (answerTable.marks); the caller reads no clock it did not read already (Service.route). What
// remains unguarded: a retry that spends longer than retryTransitSlack on the way to the owner
// (a message held in a stalled sender or a partitioned link for longer than that) is placed too
// late and may be decided afresh after its answer was forgotten; a first attempt that reaches
// the owner after maxRetried later retries of the partition were decided afresh is applied.
// ExecuteOnEntries (a processor on a whole partition) is not covered: its answer is a result
// per entry, too large to remember.

// maxRetried bounds part.retried, the IDs of the last retries an owner decided afresh.
const maxRetried = 16

// MaxRetryWindow is the longest time after an operation's first attempt that this module sends
// it again as the same operation: the queue's resending of a removal whose answer did not come
// (queue takeRecovery), the longest such window in the code. Answers are kept at least this
// long (answerRetention), so that such a retry gets its first answer.
const MaxRetryWindow = 30 * time.Second

// retryTransitSlack is how long the owner assumes a retry may have travelled between the
// moment its caller measured its age (opRequest.Age) and its arrival: the owner places the
// operation's first attempt that much earlier (answerTable.mayPredate). A longer slack turns
// more retries that follow a copy or a forgotten answer into ErrOutcomeUnknown; a shorter one
// trusts links to deliver faster.
const retryTransitSlack = 5 * time.Second

// answerRetention is how long a partition keeps every answer (up to maxAnswers): the longest
// retry window plus the slack a retry's way to the owner is allowed.
const answerRetention = MaxRetryWindow + retryTransitSlack

// Bounds of a partition's remembered answers (per partition replica). An answer costs 24 bytes
// in the ring plus a mark of 16 bytes every answerMarkEvery answers, and its processor result if
// it has one. minAnswers are always kept; beyond them, answers younger than answerRetention,
// up to maxAnswers and maxAnswerResultBytes of results. The ring grows as the partition is
// written, doubling: so at most about 100 KiB of ring and marks per partition replica plus
// results (those of the newest minAnswers, then at most 256 KiB): a member holding 271
// partition replicas keeps at most about 27 MiB plus results; one whose partitions are written
// fewer than minAnswers times per answerRetention (about 7 writes a second) keeps at most 6 KiB
// per partition, as before.
const (
	minAnswers           = 256
	maxAnswers           = 4096
	maxAnswerResultBytes = 256 << 10
	answerMarkEvery      = 32
)

// ageUnknown is opRequest.Age of a retry from a peer that does not send ages.
const ageUnknown time.Duration = -1

// opID identifies one write operation across its attempts: a random prefix chosen once per
// Service, and 64 bits from the runtime's per-thread random generator (cheaper than a shared
// counter, whose cache line writers on every core would contend for; two writes of one member
// share an ID with probability 2^-64 per pair). The zero opID means "none".
type opID struct{ hi, lo uint64 }

func (id opID) zero() bool { return id == opID{} }

// opIDLen is the size of an opID on the wire: a msgpack bin of big-endian hi, then lo. In a
// request, a retry (opRequest.Retry) adds a mark byte: retryMarkAge and its age (opRequest.Age)
// in nanoseconds, 8 bytes big-endian; or, from a peer before ages, retryMark alone.
const opIDLen = 16

// Retry marks after an opID on the wire (see opIDLen).
const (
	retryMark    = 1
	retryMarkAge = 2
)

// appendOpID appends id's wire form: nil for none, else a bin of opIDLen bytes, and for a
// retry the mark and age (ageUnknown: the mark alone).
func appendOpID(b []byte, id opID, retry bool, age time.Duration) []byte {
	if id.zero() {
		return append(b, mpNil)
	}
	switch {
	case !retry:
		b = append(b, mpBin8, opIDLen)
	case age < 0:
		b = append(b, mpBin8, opIDLen+1)
	default:
		b = append(b, mpBin8, opIDLen+9)
	}
	b = binary.BigEndian.AppendUint64(b, id.hi)
	b = binary.BigEndian.AppendUint64(b, id.lo)
	switch {
	case !retry:
	case age < 0:
		b = append(b, retryMark)
	default:
		b = append(b, retryMarkAge)
		b = binary.BigEndian.AppendUint64(b, uint64(age))
	}
	return b
}

func sizeOpID(id opID, retry bool, age time.Duration) int {
	switch {
	case id.zero():
		return 1
	case !retry:
		return 2 + opIDLen
	case age < 0:
		return 3 + opIDLen
	}
	return 11 + opIDLen
}

// parseOpID reads an opID, the retry mark and the retry's age (ageUnknown when it has none)
// from its bin value (nil or empty: none).
func parseOpID(b []byte) (id opID, retry bool, age time.Duration, ok bool) {
	switch {
	case len(b) == 0:
		return opID{}, false, 0, true
	case len(b) == opIDLen:
	case len(b) == opIDLen+1 && b[opIDLen] == retryMark:
		retry, age = true, ageUnknown
	case len(b) == opIDLen+9 && b[opIDLen] == retryMarkAge:
		v := binary.BigEndian.Uint64(b[opIDLen+1:])
		if v > uint64(maxRetryAge) {
			return opID{}, false, 0, false
		}
		retry, age = true, time.Duration(v)
	default:
		return opID{}, false, 0, false
	}
	id = opID{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
	if id.zero() {
		return opID{}, false, 0, false
	}
	return id, retry, age, true
}

// maxRetryAge bounds a retry's age on the wire (a corrupt one must not overflow the owner's
// arithmetic); an older retry is sent as this old, which changes no decision.
const maxRetryAge = 365 * 24 * time.Hour

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
		resp = opResponse{Status: statusOutcomeUnknown, Msg: "an earlier attempt of this write was applied by the owner but not acknowledged by every backup"}
	} else {
		resp = opResponse{Status: status(e.ans >> 1), Done: e.ans&1 == 1}
	}
	if e.result {
		resp.Value = t.results[e.id]
	}
	return resp
}

// monoBase anchors monoNow; it is set once, when the package loads, and never changes.
var monoBase = time.Now()

// monoNow reads this process's monotonic clock, in nanoseconds: the clock of answer memory
// (answer marks, reach, a retry's first attempt), which wall-clock steps do not move.
func monoNow() int64 { return int64(time.Since(monoBase)) }

// answerMark is a reading of the clock taken as answer number num was remembered: every answer
// numbered num or less was remembered at or before at.
type answerMark struct {
	num uint64
	at  int64
}

// answerTable is a partition's remembered answers, oldest first, in a ring that grows (doubling)
// up to maxAnswers entries. Remembering writes the next entry (24 bytes, no pointers: consecutive
// writes share cache lines, and the GC does not scan it), and every answerMarkEvery answers
// reads the clock (marks), which is all a write pays on the owner and on each backup. Looking
// an ID up scans the ring from the newest, which only retries do (see part.retried). Plain
// data: the partition's mu guards it. The zero table is empty and reaches back to the
// process's start; reset makes it reach back to now.
type answerTable struct {
	ring []answerEntry // circular; len is a power of two, at most maxAnswers
	head int           // index of the oldest answer
	n    int           // answers remembered
	// total counts the answers ever remembered: the oldest has number total-n, the newest
	// total-1.
	total uint64
	// marks are clock readings, oldest first: one as every answerMarkEvery-th answer is
	// remembered. Those before marks[mhead] are no longer needed: the oldest answer needs the
	// first mark at or after its number, which bounds when it was remembered.
	marks []answerMark
	mhead int
	// reach: every answer remembered after it (monoNow time) is still here (see the package
	// comment above): the later of from, where this memory begins (the store's creation, a
	// copy's begin, or what the copy's sender reached back to), and forgot, when the newest
	// answer it forgot was remembered.
	reach, from, forgot int64
	// results holds the processor results of the remembered answers that have one, and
	// resultBytes their size.
	results     map[opID][]byte
	resultBytes int
	// clock replaces monoNow (tests).
	clock func() int64
}

func (t *answerTable) now() int64 {
	if t.clock != nil {
		return t.clock()
	}
	return monoNow()
}

// reset forgets every answer: the table now reaches back to the present only (a full copy
// follows: its sender's reach may move it back, reachFrom).
func (t *answerTable) reset() {
	clock := t.clock
	*t = answerTable{clock: clock, forgot: math.MinInt64}
	t.from = t.now()
	t.reach = t.from
}

// resetFresh empties the table of a store created empty: nothing was ever remembered in it,
// so it reaches back to everything (a partition that starts its life here, or is re-created
// after every replica died).
func (t *answerTable) resetFresh() {
	clock := t.clock
	*t = answerTable{clock: clock, from: math.MinInt64, forgot: math.MinInt64, reach: math.MinInt64}
}

// reachAll is a snapshot's reach age (appendSnapshot) of a table that forgot nothing.
const reachAll = math.MaxUint64

// reachFrom sets where the memory begins from a copy's reach mark (appendSnapshot): age is
// how long before the sender took its snapshot its memory began (reachAll: it forgot nothing).
// The mark is read as it arrives, later than it was written: so the memory is placed later
// than it began, which can only make a retry's answer ErrOutcomeUnknown, never decide it
// twice.
func (t *answerTable) reachFrom(age uint64) {
	if age == reachAll {
		t.from = math.MinInt64
	} else {
		t.from = t.now() - int64(min(age, uint64(maxRetryAge)))
	}
	t.reach = max(t.from, t.forgot)
}

// at returns the i-th remembered answer, 0 the oldest.
func (t *answerTable) at(i int) *answerEntry { return &t.ring[(t.head+i)&(len(t.ring)-1)] }

// lookup returns the remembered answer of id, scanning from the newest.
func (t *answerTable) lookup(id opID) (*answerEntry, bool) {
	if id.zero() {
		return nil, false
	}
	for i := t.n - 1; i >= 0; i-- {
		if e := t.at(i); e.id == id {
			return e, true
		}
	}
	return nil, false
}

// remember records id's answer, forgetting the oldest ones as the bounds require. A result is
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
		t.resultBytes += len(result)
	}
	if t.n == maxAnswers {
		t.forgetOldest()
	}
	if t.n == len(t.ring) {
		t.grow()
	}
	*t.at(t.n) = e
	t.n++
	t.total++
	if t.total%answerMarkEvery == 0 {
		if t.mhead > 0 && 2*t.mhead >= len(t.marks) {
			t.marks = append(t.marks[:0], t.marks[t.mhead:]...)
			t.mhead = 0
		}
		t.marks = append(t.marks, answerMark{num: t.total - 1, at: t.now()})
		t.expire()
	}
	for t.n > minAnswers && t.resultBytes > maxAnswerResultBytes {
		t.forgetOldest()
	}
}

// grow doubles the ring (from 16), keeping the answers in order.
func (t *answerTable) grow() {
	ring := make([]answerEntry, max(16, 2*len(t.ring)))
	for i := range t.n {
		ring[i] = *t.at(i)
	}
	t.ring, t.head = ring, 0
}

// expire forgets the oldest answers beyond minAnswers that are surely older than
// answerRetention: remembered before a mark that is that much older than the newest mark. It
// runs as a mark is taken, so it reads no clock of its own.
func (t *answerTable) expire() {
	newest := t.marks[len(t.marks)-1].at // just taken
	for t.n > minAnswers {
		m, ok := t.markOf(t.total - uint64(t.n))
		if !ok || newest-m.at < int64(answerRetention) {
			return
		}
		t.forgetOldest()
	}
}

// markOf returns the first mark at or after answer number num, the oldest remembered answer,
// which bounds when it was remembered; it drops the marks before it.
func (t *answerTable) markOf(num uint64) (answerMark, bool) {
	for t.mhead < len(t.marks) && t.marks[t.mhead].num < num {
		t.mhead++
	}
	if t.mhead == len(t.marks) {
		return answerMark{}, false
	}
	return t.marks[t.mhead], true
}

// forgetOldest forgets the oldest answer and moves reach to when it was remembered (its mark,
// or now if it has none yet).
func (t *answerTable) forgetOldest() {
	m, ok := t.markOf(t.total - uint64(t.n))
	if !ok {
		m.at = t.now()
	}
	if m.at > t.forgot {
		t.forgot = m.at
		t.reach = max(t.from, t.forgot)
	}
	if old := t.at(0); old.result {
		t.resultBytes -= len(t.results[old.id])
		delete(t.results, old.id)
	}
	t.head = (t.head + 1) & (len(t.ring) - 1)
	t.n--
}

// mayPredate reports whether the first attempt of a retry of the given age (opRequest.Age)
// may have been sent before reach, so that its answer may have been remembered here and
// forgotten: the retry must then not be decided again (applyWrite).
func (t *answerTable) mayPredate(age time.Duration) bool {
	if age < 0 {
		age = answerRetention
	}
	first := t.now() - int64(min(age, maxRetryAge)) - int64(retryTransitSlack)
	return first <= t.reach
}

// fail marks id's answer as failed (see answerEntry).
func (t *answerTable) fail(id opID) {
	if e, ok := t.lookup(id); ok {
		e.failed = true
	}
}

// len reports how many answers are remembered.
func (t *answerTable) len() int { return t.n }

// appendSnapshot appends the remembered answers, oldest first, as mutAnswer mutations (for a
// copy of the partition), then the reach mark: a mutAnswer without an ID whose value is how
// long ago, big-endian nanoseconds, the table's memory began (reachAll: it forgot nothing),
// which members from before reach marks ignore (they then keep the copy's begin as where the
// memory begins, which is safe: reset).
func (t *answerTable) appendSnapshot(out []mutation) []mutation {
	for i := range t.n {
		e := t.at(i)
		ans := e.ans
		if e.failed {
			ans = answerOf(t.response(e))
		}
		out = append(out, mutation{Kind: mutAnswer, Op: e.id, Ans: ans, Value: t.results[e.id]})
	}
	age := uint64(reachAll)
	if t.reach != math.MinInt64 {
		age = uint64(max(0, t.now()-t.reach))
	}
	return append(out, mutation{Kind: mutAnswer, Value: binary.BigEndian.AppendUint64(nil, age)})
}

// reachMarkSince is a reach mark (appendSnapshot) that makes the memory of whoever applies it
// begin at since (monoNow time) less retryTransitSlack: mayPredate then refuses a retry whose
// first attempt was sent at or before since, and decides one sent after it. A partition
// restored from the data folders emits it with the time its member started (restore.go): the
// copy holds what the writes of an earlier life did but none of their answers, while nothing
// sent since the member started was applied before the restore (the partition refuses writes
// until restored). The restore time itself would refuse the writes that raced the restore.
func reachMarkSince(since int64) mutation {
	age := max(0, monoNow()-since) + int64(retryTransitSlack)
	return mutation{Kind: mutAnswer, Value: binary.BigEndian.AppendUint64(nil, uint64(age))}
}

// isReachMark reports whether m is a copy's reach mark (appendSnapshot).
func isReachMark(m *mutation) bool { return m.Kind == mutAnswer && m.Op.zero() && len(m.Value) == 8 }
