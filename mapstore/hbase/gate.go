package hbase

import (
	"context"
	"sync"
)

// byteGate bounds the bytes of the requests in flight to one region server. A region server
// holds every request it has read in its heap until a handler has run it (and a put's cells in
// its memstore after that): a client that sends a write-behind backlog of multi-megabyte cells
// at once makes the server hold all of it together, and a 1 GB heap does not survive that
// (issue 19). The gate lets a request go when its bytes fit under the limit beside those in
// flight; a request larger than the limit goes alone. Waiters are served in order, so a large
// request is not starved by a stream of small ones.
type byteGate struct {
	limit int64

	mu      sync.Mutex
	used    int64
	waiters []*gateWaiter
}

type gateWaiter struct {
	n     int64
	ready chan struct{} // closed when the waiter holds its bytes
}

func newByteGate(limit int64) *byteGate { return &byteGate{limit: limit} }

// acquire waits until n bytes (at most the limit) fit and takes them. It returns the bytes taken,
// to give back through release, or ctx's error (nothing taken).
func (g *byteGate) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 1), g.limit)
	g.mu.Lock()
	if len(g.waiters) == 0 && g.used+n <= g.limit {
		g.used += n
		g.mu.Unlock()
		return n, nil
	}
	w := &gateWaiter{n: n, ready: make(chan struct{})}
	g.waiters = append(g.waiters, w)
	g.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		g.mu.Lock()
		select {
		case <-w.ready:
			// Granted while the context ended: hand the bytes on.
			g.used -= n
		default:
			for i, o := range g.waiters {
				if o == w {
					g.waiters = append(g.waiters[:i:i], g.waiters[i+1:]...)
					break
				}
			}
		}
		g.grant()
		g.mu.Unlock()
		return 0, ctx.Err()
	}
}

// release gives back n bytes that acquire took.
func (g *byteGate) release(n int64) {
	g.mu.Lock()
	g.used -= n
	g.grant()
	g.mu.Unlock()
}

// grant lets the waiters at the head of the line go while their bytes fit (g.mu held).
func (g *byteGate) grant() {
	for len(g.waiters) > 0 && g.used+g.waiters[0].n <= g.limit {
		w := g.waiters[0]
		g.waiters = g.waiters[1:]
		g.used += w.n
		close(w.ready)
	}
}

// inUse returns the bytes in flight (for tests).
func (g *byteGate) inUse() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used
}
