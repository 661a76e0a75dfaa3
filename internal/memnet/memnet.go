// Package memnet provides the pieces of an in-process network: connected pairs of stream
// connections that need no address or port (Pipe), and a listener fed by dialers of the same
// process (Listener). Package transport's and package membership's in-memory networks build on
// it, so that several members can run in one process without opening a port (gridmaptest).
//
// A pair from Pipe is a Unix socketpair where the platform has one: kernel socket buffers,
// deadlines and vectored writes behave as on a TCP connection, so code that relies on a
// writer not blocking until the reader reads (as TCP's buffers allow) behaves the same.
// net.Pipe would not do: it has no buffer at all.
package memnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// ErrClosed: the listener was closed.
var ErrClosed = errors.New("memnet: listener closed")

// backlog is how many dialed connections a Listener holds before Accept takes them; a dialer
// beyond it waits, like a full TCP accept queue.
const backlog = 64

// Listener is a net.Listener whose connections come from Dial in the same process. It is safe
// for concurrent use.
type Listener struct {
	addr    net.Addr
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	onClose func()
}

// NewListener returns a listener reporting addr as its address; onClose (if not nil) runs once
// when it is closed, typically to take it out of its network's directory.
func NewListener(addr net.Addr, onClose func()) *Listener {
	return &Listener{addr: addr, conns: make(chan net.Conn, backlog), done: make(chan struct{}), onClose: onClose}
}

// Accept waits for the next connection dialed to l, or returns ErrClosed once l is closed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

// Close stops l: Accept returns ErrClosed, Dial to it fails, and the connections dialed but
// not yet accepted are closed (their dialers see the peer go away, as with a closed socket).
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		if l.onClose != nil {
			l.onClose()
		}
		for {
			select {
			case c := <-l.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// Addr returns the address l was created with.
func (l *Listener) Addr() net.Addr { return l.addr }

// Dial connects to l: it returns one end of a new Pipe and queues the other for Accept. It
// fails when l is closed, or when ctx ends while the backlog is full.
func (l *Listener) Dial(ctx context.Context) (net.Conn, error) {
	select {
	case <-l.done:
		return nil, fmt.Errorf("memnet: dial %s: %w", l.addr, ErrClosed)
	default:
	}
	mine, theirs, err := Pipe()
	if err != nil {
		return nil, err
	}
	select {
	case l.conns <- theirs:
		// Close may have drained the backlog just before this send: check again, so that no
		// connection stays queued on a closed listener.
		select {
		case <-l.done:
			mine.Close()
			theirs.Close()
			return nil, fmt.Errorf("memnet: dial %s: %w", l.addr, ErrClosed)
		default:
		}
		return mine, nil
	case <-l.done:
		err = fmt.Errorf("memnet: dial %s: %w", l.addr, ErrClosed)
	case <-ctx.Done():
		err = fmt.Errorf("memnet: dial %s: %w", l.addr, ctx.Err())
	}
	mine.Close()
	theirs.Close()
	return nil, err
}
