package listener

import "unsafe"

// queue is one registration's bounded FIFO of events together with its overflow bookkeeping.
// It is plain data: no locks, no goroutines; the Dispatcher guards it with the registration's
// mutex.
//
// Overflow: an event pushed while the queue is full is dropped and counted in pending. The
// next event that fits carries that count (missedBefore), so the consumer is told about the
// gap exactly where it happened in the stream; a count still pending when the queue is empty
// is handed out on its own. Every dropped event is thus reported exactly once, in order.
type queue struct {
	buf   []slot // ring buffer; len(buf) is a power of two or zero, grown on demand up to limit
	head  int    // index of the oldest slot
	n     int    // slots in use
	limit int    // most events held at once

	pending uint64 // events dropped since the last event that fit
	dropped uint64 // events dropped in the queue's life
	bytes   int64  // heldBytes of the events queued
}

type slot struct {
	ev           Event
	missedBefore uint64 // events dropped just before ev
}

// slotSize is the memory of one slot of a queue's ring, which heldBytes counts for each event.
const slotSize = int64(unsafe.Sizeof(slot{}))

// heldBytes is the memory an event held in a queue accounts for: its slot and the bytes of its
// key and values (which it may keep alive after the map dropped them).
func heldBytes(ev *Event) int64 {
	return slotSize + int64(len(ev.Key)+len(ev.OldValue)+len(ev.NewValue))
}

// minQueueAlloc is the first allocation of a queue's ring.
const minQueueAlloc = 16

func newQueue(limit int) queue { return queue{limit: limit} }

// len is the number of events queued (notices not included).
func (q *queue) len() int { return q.n }

// push appends ev, or drops and counts it when the queue holds limit events already. It
// reports whether ev was queued. It allocates only when the ring grows (at most log2(limit)
// times in the queue's life).
func (q *queue) push(ev Event) bool {
	if q.n >= q.limit {
		q.pending++
		q.dropped++
		return false
	}
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = slot{ev: ev, missedBefore: q.pending}
	q.pending = 0
	q.n++
	q.bytes += heldBytes(&ev)
	return true
}

// miss counts n events dropped before they reached the queue (upstream): they are reported
// like the queue's own drops, before the next event pushed.
func (q *queue) miss(n uint64) {
	q.pending += n
	q.dropped += n
}

func (q *queue) grow() {
	size := max(2*len(q.buf), minQueueAlloc)
	// Round the limit up to a power of two: the ring never needs more than that.
	capAt := 1
	for capAt < q.limit {
		capAt <<= 1
	}
	size = min(size, capAt)
	buf := make([]slot, size)
	for i := 0; i < q.n; i++ {
		buf[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
	}
	q.buf, q.head = buf, 0
}

// pop returns the next thing to deliver: either a notice that missed events were dropped
// (missed > 0, ev unset) or an event (missed == 0). ok is false when there is nothing to
// deliver.
func (q *queue) pop() (ev Event, missed uint64, ok bool) {
	if q.n == 0 {
		if q.pending > 0 {
			missed, q.pending = q.pending, 0
			return Event{}, missed, true
		}
		return Event{}, 0, false
	}
	s := &q.buf[q.head]
	if s.missedBefore > 0 {
		missed, s.missedBefore = s.missedBefore, 0
		return Event{}, missed, true
	}
	ev = s.ev
	*s = slot{} // let the values be collected
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	q.bytes -= heldBytes(&ev)
	return ev, 0, true
}

// discard empties the queue and returns how many events it dropped (not counting events
// already reported missed).
func (q *queue) discard() int {
	n := q.n
	clear(q.buf)
	q.head, q.n, q.pending, q.bytes = 0, 0, 0, 0
	return n
}
