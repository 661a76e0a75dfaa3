package topic

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/listener"
	"github.com/gridmap/gridmap/partition"
)

// hubQueue is the listener queue of a hub's cluster-wide registration: the messages of one topic
// that may wait for the hub's goroutine on this member. The hub only hands each to its
// subscribers' buffers, so the queue fills only when the member is starved; a gap it leaves is
// repaired from the ring like any other.
const hubQueue = 8192

// settleDelay is how long the hub waits for a later event to settle a held message (see
// settle.go) before it reads the ring to settle it: under steady traffic the next event does it
// for free; the last message of a burst costs this delay and one read per member.
const settleDelay = time.Millisecond

// hub is a member's share of one topic: while the member has subscribers to it, one
// cluster-wide entry listener on the topic's structure map (filtered by the owner to new
// messages, isMessageEvent) brings every message to this member once, and the hub hands it to
// each local subscriber's buffer once it is settled (settle.go). The listener's dispatcher
// goroutine calls onEvent, one event at a time, in the order the owner sent them. While it has
// subscribers, the hub's own goroutine (run) settles the messages no later event settles, and
// reads the ring's head every resync interval for the subscribers, so that a message whose event
// a crash lost is found with one read per member, however many subscribers it has.
type hub struct {
	raw  *engine.Map
	part partition.ID

	regMu      sync.Mutex // serializes registering and removing the listener
	reg        engine.ListenerReg
	registered bool
	stop       context.CancelFunc // ends resync
	stopped    chan struct{}      // closed when resync has returned

	kick chan struct{} // capacity 1: a message is held and run may be asleep

	counts *counts // the member's figures of the topic (figures.go)

	mu        sync.Mutex
	subs      map[*sink]struct{}
	interval  time.Duration // the shortest resync interval of the subscribers
	seen      uint64        // the highest sequence number handed on
	pend      pending       // messages not known to be settled yet (settle.go)
	lastEvent time.Time     // when the last message event arrived
}

// join adds a subscriber, registering the hub's listener with every member first if it is the
// first one. It returns once the listener is registered everywhere: from then on, the
// subscriber receives every message published (or, when an event is lost, repairs the gap).
func (h *hub) join(ctx context.Context, sk *sink, interval time.Duration) error {
	h.regMu.Lock()
	defer h.regMu.Unlock()
	if !h.registered {
		reg, err := h.raw.AddClusterListener(ctx, h.onEvent, listener.Options{QueueSize: hubQueue, IncludeValues: true}, predMessages, nil)
		if err != nil {
			return err
		}
		h.reg, h.registered = reg, true
		rctx, cancel := context.WithCancel(context.Background())
		h.stop, h.stopped = cancel, make(chan struct{})
		h.mu.Lock()
		h.interval = interval
		h.mu.Unlock()
		go h.run(rctx, h.stopped)
	}
	h.mu.Lock()
	h.subs[sk] = struct{}{}
	h.interval = min(h.interval, interval)
	h.mu.Unlock()
	return nil
}

// leave removes a subscriber, and the hub's listener and goroutine with the last one.
func (h *hub) leave(sk *sink) {
	h.regMu.Lock()
	defer h.regMu.Unlock()
	h.mu.Lock()
	delete(h.subs, sk)
	empty := len(h.subs) == 0
	h.mu.Unlock()
	if empty && h.registered {
		h.reg.Remove()
		h.stop()
		<-h.stopped
		h.reg, h.registered, h.stop, h.stopped = engine.ListenerReg{}, false, nil, nil
		h.mu.Lock()
		h.pend.drop()
		h.seen = 0
		h.mu.Unlock()
	}
}

// run settles held messages and reads the ring's head every interval, until ctx ends or the
// member stops.
func (h *hub) run(ctx context.Context, stopped chan<- struct{}) {
	defer close(stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var nextResync, retryAt time.Time
	for {
		h.mu.Lock()
		interval, lastEvent := h.interval, h.lastEvent
		_, _, held := h.pend.span()
		h.mu.Unlock()
		now := time.Now()
		if nextResync.IsZero() {
			nextResync = now.Add(interval)
		}
		wake := nextResync
		settleAt := later(lastEvent.Add(settleDelay), retryAt)
		if held {
			wake = earlier(wake, settleAt)
		}
		if wake.After(now) {
			timer.Reset(wake.Sub(now))
			select {
			case <-ctx.Done():
				return
			case <-h.kick:
			case <-timer.C:
			}
			continue // look again: an event may have settled what was held
		}
		if held && !now.Before(settleAt) {
			ok, closed := h.settle(ctx)
			if closed {
				return
			}
			if !ok {
				retryAt = now.Add(50 * time.Millisecond) // the owner is failing over
			}
		}
		if !now.Before(nextResync) {
			// Only a quiet topic needs the head: while events flow, a lost one shows as a gap
			// before the next, and a head read then would send subscribers to the ring for
			// messages that are merely on their way (which a small ring may no longer hold).
			if !lastEvent.After(nextResync.Add(-interval)) && h.readHead(ctx) {
				return
			}
			nextResync = now.Add(interval)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// settle reads the held messages from the ring and hands on the ring's version of them. It
// reports whether the read succeeded, and whether the member has stopped.
func (h *hub) settle(ctx context.Context) (ok, closed bool) {
	h.mu.Lock()
	first, last, held := h.pend.span()
	h.mu.Unlock()
	if !held {
		return true, false
	}
	r, err := readRing(ctx, h.raw, h.part, readArg{from: first, max: uint32(min(last-first+1, readBatch)), maxBytes: readBatchBytes})
	if err != nil {
		return false, h.stopping(err)
	}
	h.mu.Lock()
	h.handOn(h.pend.settleRead(r, last))
	h.mu.Unlock()
	return true, false
}

// readHead reads the ring's head and hands it to the subscribers. It reports whether the member
// has stopped.
func (h *hub) readHead(ctx context.Context) (closed bool) {
	h.mu.Lock()
	seen := h.seen
	h.mu.Unlock()
	r, err := readRing(ctx, h.raw, h.part, readArg{})
	if err != nil {
		return h.stopping(err) // otherwise the owner is failing over: next time
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sk := range h.subs {
		if r.next <= seen {
			// A head read after message seen was handed on is beyond it, unless the ring
			// started over (its partition lost and re-created): let each subscriber check.
			sk.resync()
		} else {
			sk.noteHead(r.next)
		}
	}
	if r.next <= seen {
		h.seen = 0
	}
	return false
}

// stopping reports whether err says the member stopped, and then tells the subscribers: each
// finds out with a read of its own, and ends.
func (h *hub) stopping(err error) bool {
	if !errors.Is(err, ErrClosed) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sk := range h.subs {
		sk.resync()
	}
	return true
}

// handOn gives settled messages to every subscriber. The caller holds h.mu.
func (h *hub) handOn(its []item) {
	for _, it := range its {
		h.seen = max(h.seen, it.seq)
		for sk := range h.subs {
			sk.push(it.seq, it.payload)
		}
		h.counts.received.Add(uint64(len(h.subs)))
	}
}

// onEvent holds a message until it is settled and hands on what it settles, or, for an overflow
// notice (events of this topic lost on their way here), asks every subscriber to compare with
// the ring's head.
func (h *hub) onEvent(ev listener.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ev.Kind == listener.Overflow {
		h.pend.drop()
		for sk := range h.subs {
			sk.resync()
		}
		return
	}
	seq, ok := seqOfKey(ev.Key)
	if !ok {
		return
	}
	_, _, wasHeld := h.pend.span()
	h.handOn(h.pend.add(seq, ev.NewValue, ev.Member))
	h.lastEvent = time.Now()
	if !wasHeld {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
}

// sink is a subscriber's bounded buffer, filled by its hub, drained by the subscription's
// goroutine. Dropping a message needs no count: the sequence numbers show the gap, and the
// subscription repairs it from the ring or reports it.
type sink struct {
	limit int
	wake  chan struct{} // capacity 1: something to take

	mu      sync.Mutex
	items   []item
	highest uint64 // the highest sequence number offered, kept or dropped
	head    uint64 // the ring's head as the hub last read it (0: none since the last take)
	sync    bool   // read the ring's head: events may have been lost
}

// item is a message as it arrived: its payload is shared with the other subscribers and must
// not be modified.
type item struct {
	seq     uint64
	payload []byte
}

func newSink(limit int) *sink { return &sink{limit: limit, wake: make(chan struct{}, 1)} }

func (s *sink) push(seq uint64, payload []byte) {
	s.mu.Lock()
	s.highest = max(s.highest, seq)
	if len(s.items) < s.limit {
		s.items = append(s.items, item{seq: seq, payload: payload})
	}
	s.mu.Unlock()
	s.signal()
}

// noteHead records the ring's head the hub read.
func (s *sink) noteHead(next uint64) {
	s.mu.Lock()
	s.head = next
	s.mu.Unlock()
	s.signal()
}

func (s *sink) resync() {
	s.mu.Lock()
	s.sync = true
	s.mu.Unlock()
	s.signal()
}

func (s *sink) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take empties the buffer: its messages, the highest sequence number offered so far, the ring's
// head the hub read since the last take (0: none), and whether a resync was asked for.
func (s *sink) take(buf []item) (items []item, highest, head uint64, sync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf = append(buf[:0], s.items...)
	clear(s.items)
	s.items = s.items[:0]
	head, s.head = s.head, 0
	sync, s.sync = s.sync, false
	return buf, s.highest, head, sync
}
