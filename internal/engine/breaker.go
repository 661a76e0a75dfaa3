package engine

import (
	"sync"
	"time"

	"github.com/gridmap/gridmap/mapstore"
)

// storeBreaker keeps a failing store from being called by every write-behind queue of a map at
// once. Each partition has its own queue, each with its own backoff; while HBase or
// Elasticsearch is down, that is a failing call (and a log line) per partition per backoff, and
// on a store that hangs rather than refuses, flushers stuck in timeouts. Once a call fails the
// breaker opens: only one call at a time (a probe, from whichever queue has a batch ready) may
// try the store, at most once per backoff (the map's RetryDelay).
// The first call that succeeds closes it, and every queue then stores at once.
//
// storeBreaker is pure logic; the caller passes the time.
type storeBreaker struct {
	cfg mapstore.Config // RetryInitial and RetryMax

	mu        sync.Mutex
	failures  int       // failed calls in a row; 0: closed (the store works)
	nextProbe time.Time // while open: when a probe may go
	probing   bool      // a probe is in flight
	downSince time.Time // first failure of the current outage
	upAt      time.Time // when the store last came back
}

func newStoreBreaker(cfg mapstore.Config) *storeBreaker { return &storeBreaker{cfg: cfg} }

// admit reports whether a flush may call the store at now. While the breaker is open only one
// caller is admitted, once the backoff has passed: the probe. An admitted caller passes probe
// back to done, or to release if it had nothing to store.
func (b *storeBreaker) admit(now time.Time) (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures == 0 {
		return true, false
	}
	if b.probing || now.Before(b.nextProbe) {
		return false, false
	}
	b.probing = true
	return true, true
}

// release gives back an admission that was not used for a call.
func (b *storeBreaker) release(probe bool) {
	if probe {
		b.mu.Lock()
		b.probing = false
		b.mu.Unlock()
	}
}

// done records the outcome of an admitted call at now. It reports the transitions for the log:
// opened when this failure starts an outage, closed (with the outage's length) when this
// success ends one.
func (b *storeBreaker) done(probe bool, now time.Time, err error) (opened, closed bool, outage time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	if err == nil {
		if b.failures == 0 {
			return false, false, 0
		}
		outage = now.Sub(b.downSince)
		b.failures = 0
		b.upAt = now
		return false, true, outage
	}
	b.failures++
	if b.failures == 1 {
		b.downSince = now
		opened = true
	}
	b.nextProbe = now.Add(b.cfg.RetryDelay(b.failures))
	return opened, false, 0
}

// recoveredAt returns when the store last came back (zero if it never failed), for the queues
// whose own backoff dates from the outage.
func (b *storeBreaker) recoveredAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures > 0 {
		return time.Time{}
	}
	return b.upAt
}
