package topic

import (
	"context"
	"sync"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/listener"
)

// hubQueue is the listener queue of a hub's cluster-wide registration: the messages of one topic
// that may wait for the hub's goroutine on this member. The hub only hands each to its
// subscribers' buffers, so the queue fills only when the member is starved; a gap it leaves is
// repaired from the ring like any other.
const hubQueue = 8192

// hub is a member's share of one topic: while the member has subscribers to it, one
// cluster-wide entry listener on the topic's structure map (filtered by the owner to new
// messages, isMessageEvent) brings every message to this member once, and the hub hands it to
// each local subscriber's buffer. The listener's dispatcher goroutine calls onEvent, one event
// at a time, in the order the owner sent them.
type hub struct {
	raw *engine.Map

	regMu      sync.Mutex // serializes registering and removing the listener
	reg        engine.ListenerReg
	registered bool

	mu   sync.Mutex
	subs map[*sink]struct{}
}

// join adds a subscriber, registering the hub's listener with every member first if it is the
// first one. It returns once the listener is registered everywhere: from then on, the
// subscriber receives every message published (or, when an event is lost, repairs the gap).
func (h *hub) join(ctx context.Context, sk *sink) error {
	h.regMu.Lock()
	defer h.regMu.Unlock()
	if !h.registered {
		reg, err := h.raw.AddClusterListener(ctx, h.onEvent, listener.Options{QueueSize: hubQueue, IncludeValues: true}, predMessages, nil)
		if err != nil {
			return err
		}
		h.reg, h.registered = reg, true
	}
	h.mu.Lock()
	h.subs[sk] = struct{}{}
	h.mu.Unlock()
	return nil
}

// leave removes a subscriber, and the hub's listener with the last one.
func (h *hub) leave(sk *sink) {
	h.regMu.Lock()
	defer h.regMu.Unlock()
	h.mu.Lock()
	delete(h.subs, sk)
	empty := len(h.subs) == 0
	h.mu.Unlock()
	if empty && h.registered {
		h.reg.Remove()
		h.reg, h.registered = engine.ListenerReg{}, false
	}
}

// onEvent hands a message to every subscriber, or, for an overflow notice (events of this topic
// lost on their way here), asks every subscriber to compare with the ring's head.
func (h *hub) onEvent(ev listener.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ev.Kind == listener.Overflow {
		for sk := range h.subs {
			sk.resync()
		}
		return
	}
	seq, ok := seqOfKey(ev.Key)
	if !ok {
		return
	}
	for sk := range h.subs {
		sk.push(seq, ev.NewValue)
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
	sync    bool   // compare with the ring's head: events may have been lost
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

// take empties the buffer: its messages, the highest sequence number offered so far, and whether
// a resync was asked for.
func (s *sink) take(buf []item) ([]item, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf = append(buf[:0], s.items...)
	clear(s.items)
	s.items = s.items[:0]
	sync := s.sync
	s.sync = false
	return buf, s.highest, sync
}
