package memnet

import (
	"net"
	"sync"
)

// Links is the reachability of an in-process network: which pairs of addresses are cut off
// from each other (a network partition), and the live connections between pairs, so that
// cutting a pair also breaks the connections it carried, as a partition breaks TCP
// connections. The zero value is ready: every pair reachable. Safe for concurrent use.
type Links struct {
	mu    sync.Mutex
	cut   map[[2]string]bool
	conns map[[2]string]map[*trackedConn]struct{}
}

// pair orders a and b, so that a cut goes both ways.
func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Cut makes a and b unreachable from each other, both ways, and closes the connections
// between them.
func (l *Links) Cut(a, b string) {
	p := pair(a, b)
	l.mu.Lock()
	if l.cut == nil {
		l.cut = map[[2]string]bool{}
	}
	l.cut[p] = true
	conns := l.conns[p]
	delete(l.conns, p)
	l.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// Mend makes a and b reachable again.
func (l *Links) Mend(a, b string) {
	l.mu.Lock()
	delete(l.cut, pair(a, b))
	l.mu.Unlock()
}

// MendAll makes every pair reachable again.
func (l *Links) MendAll() {
	l.mu.Lock()
	l.cut = nil
	l.mu.Unlock()
}

// Blocked reports whether from and to are cut off from each other.
func (l *Links) Blocked(from, to string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut[pair(from, to)]
}

// Track records c as a connection between from and to, which Cut(from, to) closes; the
// returned connection forgets itself when closed. It closes c and returns nil when the pair
// is cut already.
func (l *Links) Track(from, to string, c net.Conn) net.Conn {
	p := pair(from, to)
	t := &trackedConn{Conn: c, links: l, pair: p}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut[p] {
		c.Close()
		return nil
	}
	if l.conns == nil {
		l.conns = map[[2]string]map[*trackedConn]struct{}{}
	}
	if l.conns[p] == nil {
		l.conns[p] = map[*trackedConn]struct{}{}
	}
	l.conns[p][t] = struct{}{}
	return t
}

// trackedConn is a connection Links knows of.
type trackedConn struct {
	net.Conn
	links *Links
	pair  [2]string
}

func (t *trackedConn) Close() error {
	t.links.mu.Lock()
	delete(t.links.conns[t.pair], t)
	t.links.mu.Unlock()
	return t.Conn.Close()
}
