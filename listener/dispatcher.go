package listener

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/gridmap/gridmap/partition"
)

// Config configures a Dispatcher.
type Config struct {
	// Member is the member the dispatcher belongs to; it fills Event.Member of published events
	// that leave it empty, and of Overflow notices. Required.
	Member partition.MemberID
	// Logger receives panics recovered from listeners. Nil discards.
	Logger *slog.Logger
	// Held, when not nil, is told every change of the memory the registrations' queues hold
	// (each queued event's key and values plus the size of its queue slot; Stats.QueuedBytes),
	// delta > 0 when an event is queued and < 0 when it is delivered or discarded, so that a
	// member's memory budget counts it. It is called with a registration's mutex held, on the
	// publisher's goroutine or the registration's: it must be fast and must not block.
	Held func(delta int64)
}

// Validate reports every problem of the config at once, each wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Member == "" {
		errs = append(errs, fmt.Errorf("%w: Member is empty", ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

// Dispatcher delivers one member's entry events to the listeners registered on that member.
//
// The map's write path calls Publish; Publish never blocks and does not allocate: it evaluates
// each matching registration's filters on the calling goroutine and appends the event to that
// registration's bounded queue. Each registration has one goroutine, owned by the Dispatcher,
// that calls its Listener in queue order. Close stops them all.
//
// All methods are safe for concurrent use. A nil *Dispatcher is valid for Publish and
// Listening (no listeners), so a map without listener support can hold a nil one.
type Dispatcher struct {
	member partition.MemberID
	log    *slog.Logger
	held   func(int64)

	// regs is the immutable routing table read by Publish: map name -> registrations. Writers
	// replace it under mu.
	regs atomic.Pointer[map[string][]*Registration]

	mu     sync.Mutex
	closed bool
	nextID uint64
	// live holds every registration whose goroutine has not exited yet (removed ones included).
	live map[*Registration]struct{}
}

// New returns a Dispatcher for the member cfg.Member.
func New(cfg Config) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Dispatcher{member: cfg.Member, log: log, held: cfg.Held, live: make(map[*Registration]struct{})}, nil
}

// Register starts delivering the events of map mapName that pass opts' filters to l, and
// returns the registration; Remove ends it. The listener sees only events published after
// Register returns.
func (d *Dispatcher) Register(mapName string, l Listener, opts Options) (*Registration, error) {
	return d.register(mapName, l, opts, true)
}

// Attach is Register for events that Publish does not route: the caller hands them to the
// registration itself (Registration.Offer), for example events that arrive from other members
// for a cluster-wide listener. The registration has the same bounded queue, overflow notices,
// goroutine, Stats and Remove as a registered one, and the Dispatcher's Close ends it too.
func (d *Dispatcher) Attach(mapName string, l Listener, opts Options) (*Registration, error) {
	return d.register(mapName, l, opts, false)
}

// register creates a registration and, when routed, adds it to the table Publish reads.
func (d *Dispatcher) register(mapName string, l Listener, opts Options, routed bool) (*Registration, error) {
	opts = opts.WithDefaults()
	err := opts.Validate()
	if l == nil {
		err = errors.Join(err, fmt.Errorf("%w: listener is nil", ErrInvalidOptions))
	}
	if err != nil {
		return nil, err
	}
	r := &Registration{
		d:       d,
		mapName: mapName,
		l:       l,
		values:  opts.IncludeValues,
		pred:    opts.Predicate,
		q:       newQueue(opts.QueueSize),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if opts.Key != nil {
		r.key = bytes.Clone(opts.Key)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	d.nextID++
	r.id = d.nextID
	if routed {
		next := d.copyRegs()
		next[mapName] = append(next[mapName], r)
		d.regs.Store(&next)
	}
	d.live[r] = struct{}{}
	go r.run()
	return r, nil
}

// copyRegs returns a fresh copy of the routing table. The caller holds mu.
func (d *Dispatcher) copyRegs() map[string][]*Registration {
	next := make(map[string][]*Registration)
	if cur := d.regs.Load(); cur != nil {
		for name, rs := range *cur {
			next[name] = rs[:len(rs):len(rs)] // appends copy
		}
	}
	return next
}

// Listening reports whether any registration listens to map mapName. Publish does this check
// itself; Listening lets a caller skip work that only produces events (collecting the keys a
// Clear removes, say).
func (d *Dispatcher) Listening(mapName string) bool {
	if d == nil {
		return false
	}
	t := d.regs.Load()
	return t != nil && len((*t)[mapName]) > 0
}

// Publish hands ev to every registration of ev.Map whose filters accept it. It never blocks
// (beyond a registration's mutex, held only to append to or pop from its queue) and does not
// allocate, except when a registration's queue grows toward its size. A registration whose
// queue is full drops the event and counts it (see Kind Overflow).
//
// The caller gives up ev's slices (see Event). Kind must be an entry event (not Overflow). Publish must be called in the order the
// changes were applied: for one partition, under the lock that orders its writes. Events
// published concurrently from different partitions are queued in the order Publish took each
// registration's mutex. A nil Dispatcher does nothing.
func (d *Dispatcher) Publish(ev Event) {
	if d == nil {
		return
	}
	t := d.regs.Load()
	if t == nil {
		return
	}
	regs := (*t)[ev.Map]
	if len(regs) == 0 {
		return
	}
	if ev.Member == "" {
		ev.Member = d.member
	}
	for _, r := range regs {
		r.offer(&ev)
	}
}

// Registrations returns the registrations not removed yet, for metrics.
func (d *Dispatcher) Registrations() []*Registration {
	if d == nil {
		return nil
	}
	t := d.regs.Load()
	if t == nil {
		return nil
	}
	var out []*Registration
	for _, rs := range *t {
		out = append(out, rs...)
	}
	return out
}

// Close removes every registration and stops their goroutines. Events already queued are
// delivered (drained) until ctx ends; then the rest are discarded and Close returns an error
// wrapping ErrStillRunning and ctx.Err() if a listener is still inside OnEvent (its goroutine
// exits as soon as that call returns; Close cannot interrupt a listener). Close waits for the
// goroutines of registrations removed earlier too. Events published during or after Close are
// ignored. Close may be called more than once.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.regs.Store(nil)
	live := make([]*Registration, 0, len(d.live))
	for r := range d.live {
		live = append(live, r)
	}
	d.mu.Unlock()

	for _, r := range live {
		r.stop(false)
	}
	for i, r := range live {
		select {
		case <-r.done:
		case <-ctx.Done():
			running := 0
			for _, r := range live[i:] {
				r.stop(true)
				select {
				case <-r.done:
				default:
					running++
				}
			}
			if running == 0 {
				return nil
			}
			return fmt.Errorf("%w: %d after close: %w", ErrStillRunning, running, ctx.Err())
		}
	}
	return nil
}

// unregister takes r out of the routing table. Publish calls already holding the old table
// may still offer events to r; r refuses them once stopped.
func (d *Dispatcher) unregister(r *Registration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.regs.Load()
	if cur == nil {
		return
	}
	found := false
	for _, x := range (*cur)[r.mapName] {
		if x == r {
			found = true
		}
	}
	if !found {
		return
	}
	next := d.copyRegs()
	rs := make([]*Registration, 0, len(next[r.mapName]))
	for _, x := range next[r.mapName] {
		if x != r {
			rs = append(rs, x)
		}
	}
	if len(rs) == 0 {
		delete(next, r.mapName)
	} else {
		next[r.mapName] = rs
	}
	d.regs.Store(&next)
}

// exited forgets r once its goroutine has ended.
func (d *Dispatcher) exited(r *Registration) {
	d.mu.Lock()
	delete(d.live, r)
	d.mu.Unlock()
}

type regState uint8

const (
	stateActive  regState = iota
	stateClosing          // deliver what is queued, then exit
	stateStopped          // discard what is queued, exit after the current call
)

// Registration is one listener registered on a Dispatcher for one map.
type Registration struct {
	d       *Dispatcher
	id      uint64
	mapName string
	l       Listener
	values  bool
	key     []byte
	pred    func(Event) bool

	mu    sync.Mutex
	q     queue
	state regState

	wake chan struct{} // capacity 1: the queue became non-empty
	quit chan struct{} // closed when state leaves stateActive
	done chan struct{} // closed when the goroutine has exited

	delivered atomic.Uint64
}

// ID identifies the registration within its Dispatcher (1, 2, ... in registration order).
func (r *Registration) ID() uint64 { return r.id }

// Map is the name of the map the registration listens to.
func (r *Registration) Map() string { return r.mapName }

// Remove ends the registration: no event is queued for it any more, and queued ones are
// discarded. It does not wait: a call to OnEvent in progress completes, after which no further
// call starts; Done is closed then. Remove may be called from within OnEvent, and more than
// once.
func (r *Registration) Remove() {
	r.d.unregister(r)
	r.stop(true)
}

// Done is closed when the registration's goroutine has exited (after Remove or Close).
func (r *Registration) Done() <-chan struct{} { return r.done }

// Stats are a registration's counters.
type Stats struct {
	// Delivered is the number of events passed to OnEvent (Overflow notices not included).
	Delivered uint64
	// Missed is the number of events dropped because the queue was full, whether or not their
	// Overflow notice has been delivered yet.
	Missed uint64
	// Queued is the number of events waiting in the queue now, and QueuedBytes the memory they
	// hold: their keys and values and a queue slot each (what Config.Held is told).
	Queued      int
	QueuedBytes int64
}

// Stats returns the registration's counters.
func (r *Registration) Stats() Stats {
	r.mu.Lock()
	s := Stats{Missed: r.q.dropped, Queued: r.q.len(), QueuedBytes: r.q.bytes}
	r.mu.Unlock()
	s.Delivered = r.delivered.Load()
	return s
}

// offer filters ev and queues it. It runs on the publisher's goroutine.
func (r *Registration) offer(ev *Event) {
	if r.key != nil && !bytes.Equal(r.key, ev.Key) {
		return
	}
	if r.pred != nil && !r.accept(ev) {
		return
	}
	e := *ev
	if !r.values {
		e.OldValue, e.NewValue = nil, nil
	}
	r.enqueue(e, 0, true)
}

// Offer hands ev to a registration made with Attach, as Publish hands events to registered
// ones (the same filters apply), after missedBefore events that were dropped before they
// reached it (upstream, on another member): they count as missed, and the listener's next
// Overflow notice, in stream order, includes them. An ev of Kind Overflow only adds its Missed
// count. Offer never blocks; it is ignored once the registration is removed.
func (r *Registration) Offer(ev Event, missedBefore uint64) {
	if ev.Kind == Overflow {
		r.enqueue(Event{}, missedBefore+ev.Missed, false)
		return
	}
	if missedBefore > 0 {
		r.enqueue(Event{}, missedBefore, false)
	}
	if ev.Member == "" {
		ev.Member = r.d.member
	}
	r.offer(&ev)
}

// enqueue counts missed events dropped upstream, then queues e when queue is set, and wakes
// the goroutine.
func (r *Registration) enqueue(e Event, missed uint64, queue bool) {
	r.mu.Lock()
	if r.state != stateActive {
		r.mu.Unlock()
		return
	}
	r.q.miss(missed)
	queued := queue && r.q.push(e)
	if queued && r.d.held != nil {
		r.d.held(heldBytes(&e))
	}
	// The goroutine waits only when it found the queue empty; wake it when that changes (a
	// notice alone counts: an empty queue with missed events hands out a notice).
	wake := (queued && r.q.len() == 1) || (missed > 0 && r.q.len() == 0)
	r.mu.Unlock()
	if wake {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// accept runs the predicate. A panic counts as a rejection and is logged: it must not unwind
// the map's write path, which holds its partition's locks.
func (r *Registration) accept(ev *Event) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			r.d.log.Error("listener: panic in Predicate", "map", r.mapName, "registration", r.id, "kind", ev.Kind, "panic", p)
		}
	}()
	return r.pred(*ev)
}

// stop leaves stateActive: to stateClosing (drain) or, with discard, to stateStopped.
func (r *Registration) stop(discard bool) {
	r.mu.Lock()
	was := r.state
	switch {
	case discard && was != stateStopped:
		r.state = stateStopped
		held := r.q.bytes
		r.q.discard()
		if held != 0 && r.d.held != nil {
			r.d.held(-held)
		}
	case !discard && was == stateActive:
		r.state = stateClosing
	}
	closeQuit := was == stateActive && r.state != stateActive
	r.mu.Unlock()
	if closeQuit {
		close(r.quit)
	}
}

// run is the registration's delivery goroutine.
func (r *Registration) run() {
	defer close(r.done)
	defer r.d.exited(r)
	for {
		r.mu.Lock()
		if r.state == stateStopped {
			r.mu.Unlock()
			return
		}
		ev, missed, ok := r.q.pop()
		if ok && missed == 0 && r.d.held != nil {
			r.d.held(-heldBytes(&ev))
		}
		closing := r.state == stateClosing
		r.mu.Unlock()
		if !ok {
			if closing {
				return
			}
			select {
			case <-r.wake:
			case <-r.quit:
			}
			continue
		}
		if missed > 0 {
			ev = Event{Map: r.mapName, Kind: Overflow, Partition: -1, Member: r.d.member, Missed: missed}
		}
		r.deliver(ev)
		if missed == 0 {
			r.delivered.Add(1)
		}
	}
}

// deliver calls the listener, recovering a panic.
func (r *Registration) deliver(ev Event) {
	defer func() {
		if p := recover(); p != nil {
			r.d.log.Error("listener: panic in OnEvent", "map", r.mapName, "registration", r.id, "kind", ev.Kind, "panic", p)
		}
	}()
	r.l.OnEvent(ev)
}
