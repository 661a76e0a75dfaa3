package transport

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// RaftLayer returns a raft.StreamLayer sharing the server's port: Accept
// yields the connections whose first byte is 'R' (positioned after it), Dial
// connects to a peer and writes 'R'. advertise is what Addr returns; nil means
// the address of a listener given to Serve.
//
// The most recent layer receives the raft connections; before the first
// call, and after the layer is closed, incoming raft connections are closed.
// Closing the layer does not close the Server; closing the Server makes
// Accept return an error.
func (s *Server) RaftLayer(advertise net.Addr) raft.StreamLayer {
	l := &raftLayer{s: s, advertise: advertise, ch: make(chan net.Conn), closed: make(chan struct{})}
	s.mu.Lock()
	s.raft = l
	s.mu.Unlock()
	return l
}

type raftLayer struct {
	s         *Server
	advertise net.Addr
	ch        chan net.Conn // unbuffered hand-off from the server
	closed    chan struct{}
	once      sync.Once
}

// handoffRaft gives an 'R' connection to the current raft layer, waiting
// until it is accepted or the layer or the server closes.
func (s *Server) handoffRaft(nc net.Conn) {
	s.mu.Lock()
	l := s.raft
	s.mu.Unlock()
	if l == nil {
		s.cfg.Logger.Warn("transport: raft connection but no raft layer, closing", "remote", nc.RemoteAddr().String())
		_ = nc.Close()
		return
	}
	select {
	case l.ch <- nc:
	case <-l.closed:
		_ = nc.Close()
	case <-s.ctx.Done():
		_ = nc.Close()
	}
}

// Accept waits for the next raft connection.
func (l *raftLayer) Accept() (net.Conn, error) {
	select {
	case nc := <-l.ch:
		return nc, nil
	case <-l.closed:
		return nil, fmt.Errorf("transport: raft layer: %w", ErrClosed)
	case <-l.s.ctx.Done():
		return nil, fmt.Errorf("transport: raft layer: server %w", ErrClosed)
	}
}

// Close stops Accept; it does not close the server or accepted connections.
func (l *raftLayer) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr returns the advertised address.
func (l *raftLayer) Addr() net.Addr {
	if l.advertise != nil {
		return l.advertise
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	for ln := range l.s.listeners {
		return ln.Addr()
	}
	return &net.TCPAddr{}
}

// Dial connects to a raft peer's transport address and selects the raft
// protocol.
func (l *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = l.s.cfg.DialTimeout
	}
	deadline := time.Now().Add(timeout)
	var nc net.Conn
	var err error
	if l.s.cfg.Dial != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		nc, err = l.s.cfg.Dial(ctx, string(address))
		cancel()
	} else {
		nc, err = net.DialTimeout("tcp", string(address), timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("transport: raft dial %s: %w", address, err)
	}
	setUserTimeout(nc, l.s.cfg.UserTimeout)
	if t := l.s.cfg.TLS; t != nil {
		tc, err := t.client(nc, string(address), time.Until(deadline))
		if err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("transport: raft dial %s: %w", address, err)
		}
		nc = tc
	}
	if secret := l.s.cfg.Secret; secret != nil {
		if err := authClient(nc, secret, 'R', time.Until(deadline)); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("transport: raft dial %s: %w", address, err)
		}
		return nc, nil
	}
	_ = nc.SetWriteDeadline(deadline)
	if _, err := nc.Write([]byte{'R'}); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("transport: raft dial %s: %w", address, err)
	}
	_ = nc.SetWriteDeadline(time.Time{})
	return nc, nil
}
