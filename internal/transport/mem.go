package transport

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/gridmap/gridmap/internal/memnet"
)

// Caller sends a request to the member at addr and returns its response.
// *Client implements it over TCP and *MemNetwork in memory, so code that
// only makes calls can be tested without sockets. The contract is
// Client.Call's.
type Caller interface {
	Call(ctx context.Context, addr string, req Message) (Message, error)
}

var (
	_ Caller = (*Client)(nil)
	_ Caller = (*MemNetwork)(nil)
)

// Dispatch runs the handler registered for req.Type on the calling goroutine,
// as if req had arrived over the network: errors come back as *RemoteError
// with the code a remote caller would see (CodeUnknownType for an
// unregistered type). It lets a member call itself without a connection and
// backs MemNetwork. The handler may keep req's slices; the caller must not
// modify them afterwards.
func (s *Server) Dispatch(ctx context.Context, req Message) (Message, error) {
	h := s.handlers.Load()[req.Type]
	if h == nil {
		return Message{}, &RemoteError{Code: CodeUnknownType, Message: fmt.Sprintf("transport: unknown message type %d", req.Type)}
	}
	resp, err := s.call(ctx, h, req)
	if err != nil {
		code, msg := s.errorCode(err)
		return Message{}, &RemoteError{Code: code, Message: msg}
	}
	resp.Type = req.Type
	return resp, nil
}

// MemNetwork is an in-process network with two uses.
//
// As a Caller, for tests of code that only makes calls: calls to an address
// registered with Register run that Server's handlers directly (via
// Dispatch), on the caller's goroutine, with no connection at all. Request
// and response slices are copied, so ownership matches the TCP transport.
// Calls to an unregistered address fail with an error wrapping
// ErrConnClosed, like a peer that is down.
//
// As a stream network, for whole members in one process without ports:
// Listen gives a Server a listener, and Dial (as Config.Dial of Clients and
// Servers) connects to it through a socket pair (see package memnet), so the
// frames, lanes, raft connections and back-pressure are the real ones.
// Closing a listener makes its address refuse dials, as a stopped process's
// port does. Cut (of the embedded Links) partitions two addresses: dials
// through DialFrom between them fail, and the connections they had are
// closed.
//
// It is safe for concurrent use.
type MemNetwork struct {
	memnet.Links

	mu        sync.RWMutex
	servers   map[string]*Server
	listeners map[string]*memnet.Listener
	lastPort  int // the last port Listen assigned for a port 0
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{servers: make(map[string]*Server), listeners: make(map[string]*memnet.Listener)}
}

// Listen returns a listener at addr, an IP host:port; port 0 assigns a port
// unused in this network. It fails if addr already has a listener.
func (n *MemNetwork) Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	ip := net.ParseIP(host)
	p, err := strconv.Atoi(port)
	if ip == nil || err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("transport: listen %s: not an IP address and port", addr)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for p == 0 {
		n.lastPort = n.lastPort%65535 + 1
		if _, taken := n.listeners[net.JoinHostPort(host, strconv.Itoa(n.lastPort))]; !taken {
			p = n.lastPort
		}
	}
	tcp := &net.TCPAddr{IP: ip, Port: p}
	key := tcp.String()
	if _, taken := n.listeners[key]; taken {
		return nil, fmt.Errorf("transport: listen %s: address already in use", key)
	}
	l := memnet.NewListener(tcp, func() {
		n.mu.Lock()
		delete(n.listeners, key)
		n.mu.Unlock()
	})
	n.listeners[key] = l
	return l, nil
}

// DialFrom returns a Config.Dial for the member at address from: Dial, except
// that it fails while from and the target are cut off from each other (see
// Links.Cut), and that its connections close when they are.
func (n *MemNetwork) DialFrom(from string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		if n.Blocked(from, addr) {
			return nil, fmt.Errorf("%w: dial %s from %s: network partitioned", ErrConnClosed, addr, from)
		}
		c, err := n.Dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		if tc := n.Track(from, addr, c); tc != nil {
			return tc, nil
		}
		return nil, fmt.Errorf("%w: dial %s from %s: network partitioned", ErrConnClosed, addr, from)
	}
}

// Dial connects to the listener at addr; it fails with an error wrapping
// ErrConnClosed when there is none (a peer that is down).
func (n *MemNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	key := addr
	if tcp, err := net.ResolveTCPAddr("tcp", addr); err == nil {
		key = tcp.String()
	}
	n.mu.RLock()
	l := n.listeners[key]
	n.mu.RUnlock()
	if l == nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrConnClosed, addr, ErrRefused)
	}
	c, err := l.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnClosed, err)
	}
	return c, nil
}

// Register makes s reachable at addr (replacing any previous server there).
func (n *MemNetwork) Register(addr string, s *Server) {
	n.mu.Lock()
	n.servers[addr] = s
	n.mu.Unlock()
}

// Unregister makes addr unreachable.
func (n *MemNetwork) Unregister(addr string) {
	n.mu.Lock()
	delete(n.servers, addr)
	n.mu.Unlock()
}

// Call runs req on the server registered at addr.
func (n *MemNetwork) Call(ctx context.Context, addr string, req Message) (Message, error) {
	n.mu.RLock()
	s := n.servers[addr]
	n.mu.RUnlock()
	if s == nil {
		return Message{}, fmt.Errorf("%w: %s: no server at this address", ErrConnClosed, addr)
	}
	f := Frame{Header: req.Header, Body: req.Body}
	if f.Length() > s.cfg.MaxFrameSize {
		return Message{}, fmt.Errorf("%w: request of %d bytes, limit %d", ErrFrameTooLarge, f.Length(), s.cfg.MaxFrameSize)
	}
	if err := ctx.Err(); err != nil {
		return Message{}, fmt.Errorf("transport: call %s: %w", addr, err)
	}
	req.Header, req.Body = cloneTwo(req.Header, req.Body)
	resp, err := s.Dispatch(ctx, req)
	if err != nil {
		return Message{}, err
	}
	resp.Header, resp.Body = cloneTwo(resp.Header, resp.Body)
	return resp, nil
}

// cloneTwo copies h and b into one allocation, as a received frame has them.
func cloneTwo(h, b []byte) ([]byte, []byte) {
	if len(h)+len(b) == 0 {
		return nil, nil
	}
	buf := make([]byte, len(h)+len(b))
	copy(buf, h)
	copy(buf[len(h):], b)
	return buf[:len(h):len(h)], buf[len(h):]
}
