// Package listener carries a member's entry events from the map's write path to the
// listeners registered on that member.
//
// # Events
//
// An Event says what happened to one entry (Added, Updated, Removed, Evicted, Expired,
// Loaded) on the member that owns it: map name, key (as bytes; dmap decodes it), partition,
// member, the partition's sequence number and, when the listener asked for them, the old and
// new values. An event of Kind Overflow is not about an entry: it tells the listener how many
// events it missed because its queue was full.
//
// # Dispatch
//
// One Dispatcher belongs to one member. A listener registers for one map with Options (values
// or not, queue size, a key and a predicate). The write path calls Publish for every change it
// applies; Publish never blocks: it runs the filters and appends the event to the bounded
// queue of each registration that accepts it. Each registration has its own goroutine that
// calls the listener in queue order, so events of one key (indeed of one partition) arrive in
// the order of their writes, and a slow listener delays only its own queue.
//
// When a queue is full, the writes go on: the event is dropped for that listener, counted, and
// the listener receives an Overflow notice with the exact number of events it missed, at the
// place in its stream where they were missed: before its next delivered event, or as soon as
// its queue has drained. Nothing is dropped silently. Applications that must handle every
// entry combine the listener with a sweep over the entries the member owns locally.
//
// # Lifecycle
//
// Registration.Remove stops a listener; Dispatcher.Close stops them all, delivering what was
// already queued until its context ends. Every goroutine of the package belongs to a
// Dispatcher and has ended when Close returns nil.
//
// The queue and its overflow bookkeeping are a plain type without goroutines or locks
// (queue.go); the Dispatcher is the thin concurrent shell around it.
package listener
