package writebehind

import (
	"slices"
	"time"

	"github.com/gridmap/gridmap/mapstore"
)

// Entry is one pending write of a Queue: store Value under Key, or delete Key.
//
// Key and Value are shared, never copied: whoever adds an entry must not modify the slices
// afterwards (gridmap's records are immutable), and whoever receives entries from Ready must not
// modify them either.
type Entry struct {
	Key   []byte `msgpack:"k"`
	Value []byte `msgpack:"v,omitempty"`
	// Delete says the key was removed; Value is then ignored.
	Delete bool `msgpack:"d,omitempty"`
	// Seq orders the writes of a partition: gridmap passes the partition sequence number of the
	// mutation, which backups share with the owner. Within a queue it grows with every write.
	Seq uint64 `msgpack:"s"`
}

func (e *Entry) size() int64 { return int64(len(e.Key) + len(e.Value)) }

// entry is a queued Entry with its bookkeeping.
type entry struct {
	Entry
	// since is the lowest sequence number of this key's dirty period that is not known to be
	// stored: what Flush waits for. It only grows.
	since uint64
	// at is when the key became dirty; the write delay counts from here, also across coalesced
	// updates.
	at         time.Time
	inFlight   bool
	prev, next *entry // queue order
	sameNext   *entry // next entry of the same key (coalescing off)
}

// chain is the entries of one key in sequence order (one entry when coalescing).
type chain struct{ first, last *entry }

// Queue is the write-behind bookkeeping of one map in one partition: which keys are dirty, with
// which values, and what to store next. It is plain data with no clock and no locking: the
// caller serialises access (gridmap uses the partition's lock) and passes the time in. The same
// queue type runs on the owner, which flushes it, and on the backups, which apply the owner's
// writes and acknowledgements so a promoted backup goes on where the owner stopped.
//
// At most one batch is in flight at a time (returned by Ready and not yet passed to Ack or
// Fail), which keeps the calls for one key in order.
type Queue struct {
	cfg    mapstore.Config
	budget *Budget

	head, tail *entry
	keys       map[string]chain
	n          int
	bytes      int64
	lastSeq    uint64

	batch    []*entry // in flight
	failures int      // consecutive failed batches
	retryAt  time.Time
	flushSeq uint64 // entries with since <= flushSeq are ready regardless of the delay

	syncing bool
	acked   map[string]uint64 // while syncing: highest acknowledged seq per key

	stats Stats
}

// NewQueue returns an empty queue for cfg (defaults filled in, then validated). Dirty data is
// charged to budget, shared by all queues of one map on a member; nil means a budget of its own
// with cfg's limits.
func NewQueue(cfg mapstore.Config, budget *Budget) (*Queue, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if budget == nil {
		budget = NewBudget(cfg.MaxDirtyBytes, cfg.MaxDirtyEntries)
	}
	return &Queue{cfg: cfg, budget: budget, keys: make(map[string]chain)}, nil
}

// Budget returns the budget the queue charges.
func (q *Queue) Budget() *Budget { return q.budget }

// Full reports whether the queue's budget has reached a limit: writers should Wait on the
// budget before adding.
func (q *Queue) Full() bool { return q.budget.Full() }

// Len returns the number of pending entries (in flight included).
func (q *Queue) Len() int { return q.n }

// Bytes returns the bytes of keys and values of the pending entries.
func (q *Queue) Bytes() int64 { return q.bytes }

// LastSeq returns the highest sequence number added or restored.
func (q *Queue) LastSeq() uint64 { return q.lastSeq }

func (q *Queue) coalesce() bool { return q.cfg.Coalesce != mapstore.CoalesceOff }

// Add records a write at time now. A Seq of 0 means "the next one" (LastSeq()+1). A write whose
// Seq is not newer than what the queue holds for its key (a repeated replication message), or
// than an acknowledgement seen while syncing, is ignored; Add reports whether it was recorded.
//
// With coalescing, a key's pending entry takes the new value and keeps its place and enqueue
// time; if that entry is in flight, the acknowledgement of the flight will not remove it.
// Without coalescing every write becomes an entry of its own.
func (q *Queue) Add(e Entry, now time.Time) bool {
	if e.Seq == 0 {
		e.Seq = q.lastSeq + 1
	}
	c, ok := q.keys[string(e.Key)]
	if ok && c.last.Seq >= e.Seq {
		return false
	}
	if acked := q.acked[string(e.Key)]; q.syncing && acked >= e.Seq && acked != 0 {
		return false
	}
	q.lastSeq = max(q.lastSeq, e.Seq)
	if ok && q.coalesce() {
		old := c.first
		delta := e.size() - old.size()
		old.Entry = e
		q.bytes += delta
		q.budget.charge(delta, 0)
		return true
	}
	q.push(&entry{Entry: e, since: e.Seq, at: now})
	return true
}

// push appends a new entry at the tail and to its key's chain.
func (q *Queue) push(ne *entry) {
	ne.prev = q.tail
	if q.tail != nil {
		q.tail.next = ne
	} else {
		q.head = ne
	}
	q.tail = ne
	q.link(ne)
	q.n++
	q.bytes += ne.size()
	q.budget.charge(ne.size(), 1)
}

// link appends ne to its key's chain.
func (q *Queue) link(ne *entry) {
	k := string(ne.Key)
	c, ok := q.keys[k]
	if !ok {
		q.keys[k] = chain{first: ne, last: ne}
		return
	}
	c.last.sameNext = ne
	c.last = ne
	q.keys[k] = c
}

// remove unlinks the first entry of its key's chain.
func (q *Queue) remove(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		q.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		q.tail = e.prev
	}
	k := string(e.Key)
	if c := q.keys[k]; e.sameNext == nil {
		delete(q.keys, k)
	} else {
		c.first = e.sameNext
		q.keys[k] = c
	}
	e.prev, e.next, e.sameNext = nil, nil, nil
	q.n--
	q.bytes -= e.size()
	q.budget.charge(-e.size(), -1)
}

func (q *Queue) ready(e *entry, now time.Time) bool {
	return e.since <= q.flushSeq || !now.Before(e.at.Add(q.cfg.WriteDelay))
}

// Ready returns the next batch to store at time now: at most BatchSize entries (and BatchBytes
// bytes, but at least one entry) whose write delay has elapsed or that a pending Flush waits
// for, oldest first, with distinct keys, each the oldest pending write of its key. It returns
// nil while a batch is in flight, while backing off after a failure, or when nothing is due.
// The caller stores the batch and then passes it to Ack or Fail.
func (q *Queue) Ready(now time.Time) []Entry {
	if q.batch != nil || q.head == nil || now.Before(q.retryAt) {
		return nil
	}
	var out []Entry
	var bytes int64
	for e := q.head; e != nil && len(out) < q.cfg.BatchSize; e = e.next {
		if !q.ready(e, now) {
			if q.flushSeq == 0 {
				break // entries are in enqueue order: the rest are younger
			}
			continue
		}
		if q.keys[string(e.Key)].first != e {
			continue // an older write of this key goes first
		}
		if len(out) > 0 && bytes+e.size() > q.cfg.BatchBytes {
			break
		}
		bytes += e.size()
		e.inFlight = true
		q.batch = append(q.batch, e)
		out = append(out, e.Entry)
	}
	if len(out) > 0 && q.failures > 0 {
		q.stats.Retries++
	}
	return out
}

// NextReady returns when Ready may next return a batch, given the time now: a time not after
// now means at once. ok is false when nothing is pending or a batch is in flight (Ack or Fail
// changes that).
func (q *Queue) NextReady(now time.Time) (at time.Time, ok bool) {
	if q.batch != nil || q.head == nil {
		return time.Time{}, false
	}
	at = q.head.at.Add(q.cfg.WriteDelay)
	if q.flushSeq != 0 {
		at = now
	}
	if q.retryAt.After(at) {
		at = q.retryAt
	}
	return at, true
}

// Ack records that batch was stored: each entry is removed unless its key was written again
// since the batch was taken (its sequence number grew), in which case it stays dirty, no longer
// in flight. Backups call Ack with the owner's acknowledged batches (only Key and Seq matter):
// every pending write of the key up to that Seq is forgotten.
func (q *Queue) Ack(batch []Entry) {
	for i := range batch {
		b := &batch[i]
		k := string(b.Key)
		if q.syncing && b.Seq > q.acked[k] {
			q.acked[k] = b.Seq
		}
		for {
			c, ok := q.keys[k]
			if !ok {
				break
			}
			if e := c.first; e.Seq > b.Seq {
				e.since = max(e.since, b.Seq+1)
				break
			}
			q.remove(c.first)
		}
	}
	for _, e := range q.batch {
		e.inFlight = false
	}
	q.batch = nil
	q.failures = 0
	q.retryAt = time.Time{}
	q.stats.Stored += uint64(len(batch))
	q.stats.Batches++
	if q.flushSeq != 0 && q.Flushed(q.flushSeq) {
		q.flushSeq = 0
	}
}

// Fail records that storing the in-flight batch failed at time now with err: every entry stays
// dirty, and Ready returns nothing until the backoff has passed: RetryInitial after the first
// failure in a row, doubling up to RetryMax. There is no limit on the number of tries.
func (q *Queue) Fail(batch []Entry, now time.Time, err error) {
	for _, e := range q.batch {
		e.inFlight = false
	}
	q.batch = nil
	q.failures++
	q.retryAt = now.Add(q.backoff())
	q.stats.Errors++
	q.stats.LastError = err
	q.stats.LastErrorAt = now
}

// StoreRecovered tells the queue that the store was seen working at time at (another queue's call
// succeeded): if the queue's own failures all came before, they were that outage, and its backoff
// is cleared so that it stores at once instead of waiting out a wait meant for a broken store.
func (q *Queue) StoreRecovered(at time.Time) {
	if q.failures > 0 && q.batch == nil && q.stats.LastErrorAt.Before(at) {
		q.failures = 0
		q.retryAt = time.Time{}
	}
}

// backoff is the wait after the current run of failures.
func (q *Queue) backoff() time.Duration { return q.cfg.RetryDelay(q.failures) }

// RequestFlush makes every entry written so far ready regardless of the write delay (backoff
// still applies) and returns the sequence number to pass to Flushed.
func (q *Queue) RequestFlush() uint64 {
	if q.head != nil && !q.Flushed(q.lastSeq) {
		q.flushSeq = max(q.flushSeq, q.lastSeq)
	}
	return q.lastSeq
}

// Flushed reports whether every write up to sequence number seq has been stored (or
// superseded by a stored later write of the same key). It scans the queue.
func (q *Queue) Flushed(seq uint64) bool {
	for e := q.head; e != nil; e = e.next {
		if e.since <= seq {
			return false
		}
	}
	return true
}

// Stats returns the queue's gauges at time now and its counters.
func (q *Queue) Stats(now time.Time) Stats {
	s := q.stats
	s.Entries = q.n
	s.Bytes = q.bytes
	s.InFlight = len(q.batch)
	s.ConsecutiveFailures = q.failures
	s.RetryAt = q.retryAt
	if q.head != nil {
		oldest := q.head.at
		for e := q.head.next; e != nil && e.at.Before(oldest); e = e.next {
			oldest = e.at // restored entries may be out of time order at the head
		}
		s.OldestAge = now.Sub(oldest)
	}
	return s
}

// Stats describes a queue: gauges (the current state) and counters (since the queue was made).
type Stats struct {
	Entries   int           // pending entries, in flight included
	Bytes     int64         // bytes of their keys and values
	InFlight  int           // entries of the batch being stored
	OldestAge time.Duration // how long the oldest pending entry has been dirty

	Stored  uint64 // entries acknowledged as stored
	Batches uint64 // batches acknowledged
	Errors  uint64 // batches that failed
	Retries uint64 // batches handed out again after a failure

	ConsecutiveFailures int       // failed batches since the last success
	RetryAt             time.Time // no batch before this time (zero: none pending)
	LastError           error     // the last store error, nil if none
	LastErrorAt         time.Time
}

// Snapshot is a queue's content in a form to send to a backup or a migration target. Ages
// rather than times travel, so members never compare their clocks.
type Snapshot struct {
	LastSeq uint64          `msgpack:"l"`
	Entries []SnapshotEntry `msgpack:"e"`
}

// SnapshotEntry is one pending entry of a Snapshot.
type SnapshotEntry struct {
	Entry
	Since uint64        `msgpack:"n"`
	Age   time.Duration `msgpack:"a"` // how long the key had been dirty when the snapshot was taken
}

// Snapshot returns the queue's pending entries (in flight included) at time now, in queue
// order. Keys and values are shared with the queue, not copied.
func (q *Queue) Snapshot(now time.Time) Snapshot {
	s := Snapshot{LastSeq: q.lastSeq, Entries: make([]SnapshotEntry, 0, q.n)}
	for e := q.head; e != nil; e = e.next {
		s.Entries = append(s.Entries, SnapshotEntry{Entry: e.Entry, Since: e.since, Age: now.Sub(e.at)})
	}
	return s
}

// BeginSync empties the queue before a full copy arrives with Restore, and until EndSync
// remembers acknowledgements, so that an entry of the copy that was stored (and acknowledged to
// this member) while the copy travelled does not come back.
func (q *Queue) BeginSync() {
	for q.head != nil {
		q.remove(q.head)
	}
	q.batch = nil
	q.lastSeq = 0
	q.flushSeq = 0
	q.syncing = true
	q.acked = make(map[string]uint64)
}

// EndSync ends what BeginSync started: the copy is complete.
func (q *Queue) EndSync() {
	q.syncing = false
	q.acked = nil
}

// Restore merges a snapshot taken elsewhere into the queue at time now: each entry is dirty
// since now minus its age. Writes the queue already holds, newer writes of the same key (with
// coalescing), and writes acknowledged while syncing win over the snapshot's. Keys and values
// are shared with the snapshot.
func (q *Queue) Restore(s Snapshot, now time.Time) {
	for _, se := range s.Entries {
		if acked := q.acked[string(se.Key)]; q.syncing && acked >= se.Seq && acked != 0 {
			continue
		}
		at := now.Add(-se.Age)
		c, ok := q.keys[string(se.Key)]
		if ok && q.coalesce() {
			e := c.first
			if se.Seq > e.Seq {
				delta := se.size() - e.size()
				e.Entry = se.Entry
				q.bytes += delta
				q.budget.charge(delta, 0)
			}
			e.since = min(e.since, se.Since)
			if at.Before(e.at) {
				e.at = at
			}
			continue
		}
		dup := false
		for e := c.first; ok && e != nil; e = e.sameNext {
			dup = dup || e.Seq == se.Seq
		}
		if !dup {
			q.push(&entry{Entry: se.Entry, since: se.Since, at: at})
		}
	}
	q.lastSeq = max(q.lastSeq, s.LastSeq)
	q.reorder()
}

// reorder sorts the queue (by dirty time when coalescing, by sequence otherwise, which keeps
// each key's writes in order) and rebuilds the key chains.
func (q *Queue) reorder() {
	all := make([]*entry, 0, q.n)
	for e := q.head; e != nil; e = e.next {
		all = append(all, e)
	}
	if q.coalesce() {
		slices.SortStableFunc(all, func(a, b *entry) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			return cmpSeq(a.Seq, b.Seq)
		})
	} else {
		slices.SortStableFunc(all, func(a, b *entry) int { return cmpSeq(a.Seq, b.Seq) })
	}
	clear(q.keys)
	q.head, q.tail = nil, nil
	for _, e := range all {
		e.prev, e.next, e.sameNext = q.tail, nil, nil
		if q.tail != nil {
			q.tail.next = e
		} else {
			q.head = e
		}
		q.tail = e
		q.link(e)
	}
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Drop empties the queue, releasing its budget charges: the member no longer holds the
// partition (another member stores its entries).
func (q *Queue) Drop() {
	for q.head != nil {
		q.remove(q.head)
	}
	q.batch = nil
	q.flushSeq = 0
}

// Pending reports whether key has a write that is not stored yet, and whether the latest such
// write deletes it. A map must not read a pending key through from the store: the store's value
// is older.
func (q *Queue) Pending(key []byte) (pending, deleted bool) {
	c, ok := q.keys[string(key)]
	if !ok {
		return false, false
	}
	return true, c.last.Delete
}
