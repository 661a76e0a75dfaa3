package queue

import (
	"context"
	"sync"
	"time"

	"github.com/gridmap/gridmap/internal/engine"
	"github.com/gridmap/gridmap/listener"
)

// Blocking calls (Take, Put, OfferWait) wait on the caller's member, never on the owner: no
// engine worker is held by a waiter. A waiter registers, through its member's waiters, a
// cluster-wide listener on the queue's head and tail entry, which every Offer and Poll
// rewrites; each change wakes the member's waiters of that queue, which try again. A wake-up can
// be lost (the owner died after applying a change and before forwarding its event), so a
// waiter also tries again every recheckInterval.

const (
	// recheckInterval bounds how long a waiter waits without a wake-up before it looks at the
	// queue again.
	recheckInterval = time.Second
	// idleLinger is how long a member keeps a queue's listener after its last waiter left, so
	// that a consumer taking in a loop does not register and remove it for every item.
	idleLinger = 30 * time.Second
)

// waiters are a member's waiters, by queue.
type waiters struct {
	s       *Service
	recheck time.Duration // recheckInterval; tests change it
	mu      sync.Mutex
	bySet   map[string]*waitSet
}

// waitSet is the waiters of one queue on this member.
type waitSet struct {
	name string
	raw  *engine.Map

	mu sync.Mutex
	// queued are the waiters asleep, oldest first, by what they wait for.
	queued  [2][]*waiter
	users   int
	reg     *engine.ListenerReg // nil until registered
	regDone chan struct{}       // closed when the current registration attempt ended
	idle    *time.Timer
}

// waitFor is what a waiter waits for.
type waitFor int

const (
	forItem waitFor = iota // Take: an item added
	forRoom                // Put, OfferWait: an item removed
)

// waiter is one blocked call.
type waiter struct {
	kind waitFor
	wake chan struct{} // capacity 1: a wake-up
}

// acquire returns the wait set of the queue whose structure map is raw, with its listener
// registered (or, when ctx ended first, without: the waiter then relies on rechecks). Release
// it with release.
func (w *waiters) acquire(ctx context.Context, raw *engine.Map) *waitSet {
	w.mu.Lock()
	if w.bySet == nil {
		w.bySet = make(map[string]*waitSet)
	}
	ws := w.bySet[raw.Name()]
	if ws == nil {
		ws = &waitSet{name: raw.Name(), raw: raw}
		w.bySet[raw.Name()] = ws
	}
	// Locks are taken in this order: waiters, then a set (release's timer drops idle sets).
	ws.mu.Lock()
	w.mu.Unlock()
	ws.users++
	if ws.idle != nil {
		ws.idle.Stop()
		ws.idle = nil
	}
	if ws.reg != nil {
		ws.mu.Unlock()
		return ws
	}
	done := ws.regDone
	if done == nil {
		done = make(chan struct{})
		ws.regDone = done
		go ws.register(done)
	}
	ws.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return ws
}

// register registers the set's listener; it runs on its own goroutine, owned by the set, and
// ends within registerTimeout.
func (ws *waitSet) register(done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithTimeout(context.Background(), registerTimeout)
	defer cancel()
	reg, err := ws.raw.AddClusterListener(ctx, ws.changed,
		listener.Options{Key: metaKey, IncludeValues: true, QueueSize: 4096}, "", nil)
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.regDone = nil
	if err != nil {
		return // the next waiter tries again; meanwhile rechecks
	}
	if ws.users == 0 {
		reg.Remove()
		return
	}
	ws.reg = &reg
}

// registerTimeout bounds one registration of a wait set's listener.
const registerTimeout = 30 * time.Second

// release ends a waiter's use of ws. The set and its listener stay for idleLinger after the
// last waiter.
func (w *waiters) release(ws *waitSet) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.users--
	if ws.users > 0 || ws.reg == nil {
		return
	}
	ws.idle = time.AfterFunc(idleLinger, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		ws.mu.Lock()
		defer ws.mu.Unlock()
		if ws.users == 0 && ws.reg != nil && ws.regDone == nil {
			ws.reg.Remove() // does not wait for the listener
			ws.reg = nil
			delete(w.bySet, ws.name)
		}
	})
}

// changed is the listener of the queue's head and tail entry: n items added wake n waiters for
// an item, n removed wake n waiters for room. A notice of missed events wakes everyone.
func (ws *waitSet) changed(ev listener.Event) {
	if ev.Kind == listener.Overflow {
		ws.wakeAll()
		return
	}
	before, after := metaOf(ev.OldValue), metaOf(ev.NewValue)
	if after.tail > before.tail {
		ws.wakeN(forItem, after.tail-before.tail)
	}
	if after.head > before.head {
		ws.wakeN(forRoom, after.head-before.head)
	}
}

// metaOf decodes a head and tail entry's value; nil or a corrupt value decode as zeros.
func metaOf(b []byte) meta {
	m, _ := readMeta(mapView{string(metaKey): b})
	return m
}

// mapView is a few entries as a plain map (the processors' logic on one value).
type mapView map[string][]byte

func (m mapView) Get(k []byte) ([]byte, bool) { v, ok := m[string(k)]; return v, ok && v != nil }
func (m mapView) Set(k, v []byte)             { m[string(k)] = v }
func (m mapView) Delete(k []byte)             { delete(m, string(k)) }

// wakeN wakes up to n of the oldest waiters of kind.
func (ws *waitSet) wakeN(kind waitFor, n uint64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	q := ws.queued[kind]
	k := int(min(n, uint64(len(q))))
	for _, w := range q[:k] {
		w.wake <- struct{}{}
	}
	ws.queued[kind] = q[k:]
}

func (ws *waitSet) wakeAll() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for kind, q := range ws.queued {
		for _, w := range q {
			w.wake <- struct{}{}
		}
		ws.queued[kind] = nil
	}
}

// enqueue puts w to sleep (until a wakeN or wakeAll): do it before looking at the queue, so
// that a change after the look is not missed.
func (ws *waitSet) enqueue(w *waiter) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.queued[w.kind] = append(ws.queued[w.kind], w)
}

// dequeue takes w out of the queue; false when it was woken (and is out already).
func (ws *waitSet) dequeue(w *waiter) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	q := ws.queued[w.kind]
	for i, o := range q {
		if o == w {
			ws.queued[w.kind] = append(q[:i:i], q[i+1:]...)
			return true
		}
	}
	return false
}

// until runs try until it reports done, waiting between attempts for a change of the queue
// (or the recheck interval) as long as ctx allows. It returns ctx's error when ctx ended first.
func (w *waiters) until(ctx context.Context, raw *engine.Map, kind waitFor, try func() (done bool, err error)) error {
	if done, err := try(); done || err != nil {
		return err
	}
	ws := w.acquire(ctx, raw)
	defer w.release(ws)
	timer := time.NewTimer(w.recheck)
	defer timer.Stop()
	me := &waiter{kind: kind, wake: make(chan struct{}, 1)}
	for {
		ws.enqueue(me)
		done, err := try()
		if done || err != nil {
			if !ws.dequeue(me) && !done {
				ws.wakeN(kind, 1) // a wake-up this waiter will not use: pass it on
			}
			return err
		}
		timer.Reset(w.recheck)
		select {
		case <-me.wake:
			continue
		case <-timer.C:
		case <-ctx.Done():
		}
		if !ws.dequeue(me) {
			<-me.wake // woken meanwhile
			if ctx.Err() != nil {
				ws.wakeN(kind, 1)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
