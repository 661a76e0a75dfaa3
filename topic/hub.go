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

// hub is a member's share of one topic: while the member has subscribers to it, one
// cluster-wide entry listener on the topic's structure map (filtered by the owner to new
// messages, isMessageEvent) brings every message to this member once, and the hub hands it to
// each local subscriber's buffer at once. The listener's dispatcher goroutine calls onEvent, one
// event at a time, in the order the owner sent them. While it has subscribers, the hub's own
// goroutine (run) reads the ring's head when the topic was quiet for a resync interval, so that
// a message whose event a crash lost is found with one read per member, however many
// subscribers it has.
//
// The hub needs no hold-back for a message whose owner might die before replicating it: the
// engine publishes a write's event only once its synchronous backups acknowledged it (see
// engine.Service's settle), so a message delivered is one the new owner has too, and the new
// owner never numbers another message the same. (A publish whose replication failed while its
// owner kept the partition is announced, like any write the owner keeps; the owner brings its
// backups in line, and a crash before then is the gap docs/topic.md describes. With
// AsyncBackups an acknowledged message, announced or not, may be lost with its owner.)
type hub struct {
	raw  *engine.Map
	part partition.ID

	regMu      sync.Mutex // serializes registering and removing the listener
	reg        engine.ListenerReg
	registered bool
	stop       context.CancelFunc // ends resync
	stopped    chan struct{}      // closed when resync has returned

	counts *counts // the member's figures of the topic (figures.go)

	mu        sync.Mutex
	subs      map[*sink]struct{}
	interval  time.Duration // the shortest resync interval of the subscribers
	seen      uint64        // the highest sequence number handed on
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
		h.seen = 0
		h.mu.Unlock()
	}
}

// run reads the ring's head every interval the topic was quiet, until ctx ends or the member
// stops.
func (h *hub) run(ctx context.Context, stopped chan<- struct{}) {
	defer close(stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var nextResync time.Time
	for {
		h.mu.Lock()
		interval, lastEvent := h.interval, h.lastEvent
		h.mu.Unlock()
		now := time.Now()
		if nextResync.IsZero() {
			nextResync = now.Add(interval)
		}
		if nextResync.After(now) {
			timer.Reset(nextResync.Sub(now))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			continue
		}
		// Only a quiet topic needs the head: while events flow, a lost one shows as a gap
		// before the next, and a head read then would send subscribers to the ring for
		// messages that are merely on their way (which a small ring may no longer hold).
		if !lastEvent.After(nextResync.Add(-interval)) && h.readHead(ctx) {
			return
		}
		nextResync = now.Add(interval)
	}
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
	h.seen = max(h.seen, seq)
	for sk := range h.subs {
		sk.push(seq, ev.NewValue)
	}
	h.counts.received.Add(uint64(len(h.subs)))
	h.lastEvent = time.Now()
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
