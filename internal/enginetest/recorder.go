package enginetest

import (
	"slices"
	"sync"
)

// Recorder collects the events one listener received, of type E, and how many it missed (the
// overflow notices). Safe for concurrent use; the zero value is ready.
type Recorder[E any] struct {
	mu     sync.Mutex
	evs    []E
	missed uint64
}

// Record adds e, or, when e is an overflow notice, counts the missed events it reports.
func (r *Recorder[E]) Record(e E, overflow bool, missed uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if overflow {
		r.missed += missed
		return
	}
	r.evs = append(r.evs, e)
}

// Snapshot returns the events recorded so far and the count of missed ones.
func (r *Recorder[E]) Snapshot() ([]E, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs), r.missed
}

// Count returns how many events were recorded.
func (r *Recorder[E]) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.evs)
}
