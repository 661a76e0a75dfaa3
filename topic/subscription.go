package topic

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Message is what a subscription delivers: a message of the topic, or (Missed > 0) a notice
// that messages were lost at this point of the stream.
type Message[T any] struct {
	// Seq is the message's sequence number; for a notice, the first one missed.
	Seq uint64
	// Value is the message (zero for a notice, or when Err is set).
	Value T
	// Err is set when the payload could not be decoded with the topic's codec (ErrCodec); the
	// message still counts as delivered.
	Err error
	// Missed, when not zero, makes this a notice: the messages Seq, ..., Seq+Missed-1 are lost
	// for this subscriber (it fell behind further than the topic's ring reaches, or started
	// before the ring's oldest message). Every sequence number is either delivered once or
	// counted in exactly one notice.
	Missed uint64
}

// SubscribeOption configures one subscription.
type SubscribeOption func(*subOptions)

type subOptions struct {
	from       uint64 // 0: the next message published
	fromOldest bool
	buffer     int
}

// FromSequence starts the subscription at sequence number seq (a Message.Seq, or
// Subscription.Next of an earlier subscription, to resume where it stopped): the messages the
// ring still holds from seq on come first, and a notice counts those it no longer holds. Without
// it, a subscription starts with the next message published. seq 0 is the same as 1.
func FromSequence(seq uint64) SubscribeOption {
	return func(o *subOptions) { o.from, o.fromOldest = max(seq, 1), false }
}

// FromOldest starts the subscription at the oldest message the ring holds.
func FromOldest() SubscribeOption { return func(o *subOptions) { o.from, o.fromOldest = 0, true } }

// WithBuffer sets this subscription's buffer (Config.SubscriberBuffer). n must be positive.
func WithBuffer(n int) SubscribeOption { return func(o *subOptions) { o.buffer = n } }

// Subscription receives a topic's messages on one member. Read them from Messages; Close it
// when done (its goroutine and, for the member's last subscriber of the topic, the member's
// registration with the owner end then).
//
// Delivery: every message is delivered once, in sequence order, or counted in a notice. The
// subscription holds up to its buffer's worth of messages for a slow reader and drops the
// newer ones beyond it; when the reader catches up, the subscription reads the dropped ones
// from the topic's ring (the same repair fills any gap a failover leaves, and duplicates a
// failover may cause are discarded). A reliable topic's ring holds RingCapacity messages, so a
// reader may fall that far behind without a loss; a plain topic's holds DefaultPlainRing.
type Subscription[T any] struct {
	t      *Topic[T]
	h      *hub
	sk     *sink
	out    chan Message[T]
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	next      uint64 // the goroutine's: the sequence number to deliver next
	nextSeen  atomic.Uint64
	delivered atomic.Uint64
	missed    atomic.Uint64
	repaired  atomic.Uint64

	err error // why run ended, when not by Close; written by run before done closes
}

// Subscribe starts a subscription on this member. It returns once every member forwards the
// topic's messages here; from then on every message published is delivered (or counted in a
// notice). ctx bounds the registration only.
func (t *Topic[T]) Subscribe(ctx context.Context, opts ...SubscribeOption) (*Subscription[T], error) {
	o := subOptions{buffer: t.cfg.SubscriberBuffer}
	for _, f := range opts {
		f(&o)
	}
	if o.buffer <= 0 {
		return nil, fmt.Errorf("%w: topic: subscriber buffer %d", ErrInvalidConfig, o.buffer)
	}
	s := &Subscription[T]{t: t, sk: newSink(o.buffer), out: make(chan Message[T]), done: make(chan struct{})}
	s.h = t.svc.hub(t.name, t.raw, t.part)
	if err := s.h.join(ctx, s.sk, t.cfg.ResyncInterval); err != nil {
		return nil, err
	}
	// The registration is in place: every message numbered from now on reaches the sink. The
	// ring's head says where "now" is.
	r, err := readRing(ctx, t.raw, t.part, readArg{})
	if err != nil {
		s.h.leave(s.sk)
		return nil, err
	}
	switch {
	case o.fromOldest:
		s.next = r.oldest
	case o.from > 0:
		s.next = o.from
	default:
		s.next = r.next
	}
	s.nextSeen.Store(s.next)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s, nil
}

// Messages returns the channel of the subscription's messages and notices. It is closed when
// the subscription ends (Close, or the member stopped: see Err).
func (s *Subscription[T]) Messages() <-chan Message[T] { return s.out }

// Next returns the sequence number the subscription delivers next: FromSequence(Next()) on a
// later subscription (on any member) resumes without a gap, as far as the ring reaches.
func (s *Subscription[T]) Next() uint64 { return s.nextSeen.Load() }

// Close ends the subscription and waits for its goroutine. Messages not yet read are discarded.
// It is idempotent.
func (s *Subscription[T]) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// Err returns why the subscription ended: nil while it runs or after Close, ErrClosed (wrapped)
// when the member stopped.
func (s *Subscription[T]) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// SubscriptionStats counts what a subscription did.
type SubscriptionStats struct {
	// Delivered counts the messages handed to the reader (notices excluded).
	Delivered uint64
	// Missed counts the messages reported lost in notices.
	Missed uint64
	// Repaired counts the messages read from the ring rather than received as they were
	// published (the reader was behind, or a failover lost their events).
	Repaired uint64
}

// Stats returns the subscription's counts so far.
func (s *Subscription[T]) Stats() SubscriptionStats {
	return SubscriptionStats{Delivered: s.delivered.Load(), Missed: s.missed.Load(), Repaired: s.repaired.Load()}
}

// run is the subscription's goroutine: it takes what the hub buffered, delivers it in order,
// and repairs gaps from the ring.
func (s *Subscription[T]) run() {
	defer close(s.out) // last: a reader that sees it closed finds Err set
	defer close(s.done)
	defer s.h.leave(s.sk)
	var buf []item
	for {
		items, highest, head, sync := s.sk.take(buf)
		buf = items
		for _, it := range items {
			if !s.offer(it) {
				return
			}
		}
		clear(items) // let the payloads go
		if highest >= s.next && !s.catchUp(highest+1) {
			return
		}
		if head > 0 && !s.follow(head) {
			return
		}
		if sync && !s.resync() {
			return
		}
		if len(items) > 0 || sync {
			continue
		}
		select {
		case <-s.sk.wake:
		case <-s.ctx.Done():
			return
		}
	}
}

// offer delivers a message that arrived from the hub, after the ones missing before it.
func (s *Subscription[T]) offer(it item) bool {
	if it.seq < s.next {
		return true // a duplicate, or repaired from the ring already
	}
	if it.seq > s.next && !s.catchUp(it.seq) {
		return false
	}
	if it.seq != s.next {
		return true // catchUp went past it (the ring's start moved)
	}
	return s.deliver(it.seq, it.payload)
}

// resync reads the ring's head and follows it.
func (s *Subscription[T]) resync() bool {
	r, ok := s.read(readArg{})
	if !ok {
		return false
	}
	if r.next < s.next {
		// A head read now is never behind what was delivered, unless the ring started over: its
		// partition was lost and re-created empty. Follow it.
		s.next = r.next
		s.nextSeen.Store(s.next)
		return true
	}
	return s.catchUp(r.next)
}

// follow catches up to a head the hub read a while ago; one behind the subscriber is stale
// (the hub tells a ring that started over apart, and asks for a resync).
func (s *Subscription[T]) follow(head uint64) bool {
	if head <= s.next {
		return true
	}
	return s.catchUp(head)
}

// readBatch bounds one catch-up read.
const (
	readBatch      = 512
	readBatchBytes = 1 << 20
)

// catchUp delivers the messages before target that it has not delivered yet, from the ring, and
// a notice for those the ring no longer holds.
func (s *Subscription[T]) catchUp(target uint64) bool {
	for s.next < target {
		r, ok := s.read(readArg{from: s.next, max: uint32(min(target-s.next, readBatch)), maxBytes: readBatchBytes})
		if !ok {
			return false
		}
		if r.oldest > s.next {
			lost := min(r.oldest, target) - s.next
			s.missed.Add(lost)
			if !s.send(Message[T]{Seq: s.next, Missed: lost}) {
				s.missed.Add(^(lost - 1))
				return false
			}
			s.next += lost
			s.nextSeen.Store(s.next)
		}
		if len(r.msgs) == 0 {
			if r.next <= s.next {
				return true // nothing more to read: the target is beyond the head
			}
			continue
		}
		for i, m := range r.msgs {
			seq := r.first + uint64(i)
			if seq < s.next {
				continue
			}
			if seq >= target {
				break
			}
			s.repaired.Add(1)
			if !s.deliver(seq, m) {
				return false
			}
		}
	}
	return true
}

// read runs a read on the ring, retrying (a failover makes the owner unreachable for a while)
// until the subscription ends. It returns false when it ends.
func (s *Subscription[T]) read(a readArg) (readResult, bool) {
	wait := 10 * time.Millisecond
	for {
		r, err := readRing(s.ctx, s.t.raw, s.t.part, a)
		if err == nil {
			return r, true
		}
		if s.ctx.Err() != nil {
			return readResult{}, false
		}
		if errors.Is(err, ErrClosed) {
			s.err = fmt.Errorf("topic %s: subscription ended: %w", s.t.name, err)
			return readResult{}, false
		}
		select {
		case <-time.After(wait):
		case <-s.ctx.Done():
			return readResult{}, false
		}
		wait = min(2*wait, time.Second)
	}
}

// deliver decodes and sends message seq, which is s.next.
func (s *Subscription[T]) deliver(seq uint64, payload []byte) bool {
	m := Message[T]{Seq: seq}
	m.Value, m.Err = s.t.codec.Decode(payload)
	s.delivered.Add(1) // before the reader can see it: Stats never lags what it read
	if !s.send(m) {
		s.delivered.Add(^uint64(0))
		return false
	}
	s.next = seq + 1
	s.nextSeen.Store(s.next)
	return true
}

func (s *Subscription[T]) send(m Message[T]) bool {
	select {
	case s.out <- m:
		return true
	case <-s.ctx.Done():
		return false
	}
}
