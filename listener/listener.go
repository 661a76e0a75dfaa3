package listener

import (
	"errors"
	"fmt"
)

// DefaultQueueSize is the number of events a registration queues when Options.QueueSize is 0.
const DefaultQueueSize = 1024

// Listener receives the events of one registration.
//
// OnEvent is called on a goroutine the Dispatcher owns for this registration, never
// concurrently with itself, in the order the events were published: events of one key (indeed
// of one partition) arrive in the order of their writes. It may block; while it does, events
// for this registration queue up to Options.QueueSize and further ones are dropped and counted,
// and the count arrives as an Event of Kind Overflow before the next delivered event. A slow
// listener delays only its own queue, never a write or another listener.
//
// OnEvent must not modify the slices of the event (see Event). It may call the map it listens
// to, and it may call Registration.Remove, including its own. A panic in OnEvent is recovered
// and logged; delivery continues with the next event.
type Listener interface {
	OnEvent(Event)
}

// Func adapts a function to a Listener.
type Func func(Event)

// OnEvent calls f(e).
func (f Func) OnEvent(e Event) { f(e) }

// Discard is a Listener that does nothing.
var Discard Listener = Func(func(Event) {})

// Options configure one registration. The zero value is valid: every event of the map, no
// values, a queue of DefaultQueueSize.
type Options struct {
	// IncludeValues delivers OldValue and NewValue. Without it both are nil (the dispatcher
	// does not copy values either way; it only decides whether to pass them on).
	IncludeValues bool
	// QueueSize is the number of events this registration may hold while its listener is busy;
	// beyond it events are dropped and counted (see Kind Overflow). Events, not bytes: the
	// values are shared with the map, not copied. Default DefaultQueueSize (when 0). The queue
	// grows to this size on demand and never beyond.
	QueueSize int
	// Key, when not nil, restricts the registration to events of this one key (byte-wise
	// equal). The dispatcher keeps its own copy.
	Key []byte
	// Predicate, when not nil, restricts the registration to the events for which it returns
	// true. It sees the event with its values whatever IncludeValues says. It runs on the
	// publishing goroutine, inside the map's write path and under its partition's locks, BEFORE
	// the event is queued, so a rejected event costs nothing downstream and is never counted as
	// missed. It must therefore be fast, must not block, must not call the map, and must not
	// keep the event's slices. It may be called concurrently from several goroutines. A panic
	// in Predicate is recovered and logged, and the event is rejected.
	Predicate func(Event) bool
}

// WithDefaults returns o with the fields left zero set to their defaults (QueueSize:
// DefaultQueueSize). It is idempotent; Register applies it, so callers need not.
func (o Options) WithDefaults() Options {
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	return o
}

// Validate reports every problem of the options at once, each wrapping ErrInvalidOptions. It
// checks o.WithDefaults(), so it answers alike before and after defaults are applied.
func (o Options) Validate() error {
	o = o.WithDefaults()
	var errs []error
	if o.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("%w: QueueSize %d is negative", ErrInvalidOptions, o.QueueSize))
	}
	return errors.Join(errs...)
}
