package transport

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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

// MemNetwork is an in-process network with two uses.
//
// As a message network, for tests of services that make and serve calls (the
// map engine's, with several members' services in one process): calls
// through Caller(from) to an address registered with Register run that
// Server's handlers with no connection at all, each on a goroutine of its own
// under the server's context, as a connection's workers would (an
// AsyncHandler is offered the request first); request and response slices
// are copied, so ownership matches the TCP transport, and handler errors
// arrive as the *RemoteError a remote caller gets. Calls to an unregistered
// address fail with an error wrapping ErrConnClosed, like a peer that is
// down. Rules make faults: a member down (SetDown), calls lost (SetDrop),
// never answered (SetHang), or whose answer is held back or lost
// (SetAnswered), and Cut between two addresses.
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

	// The rules of calls (message mode): see SetDown, SetDrop, SetHang, SetAnswered.
	down     map[string]bool
	drop     MemRule
	hang     MemRule
	answered MemRule
	serving  atomic.Int64

	// heard is when each caller last got an answer from each address (see MemCaller.LastHeard),
	// its own call timed out or not.
	heardMu sync.Mutex
	heard   map[[2]string]time.Time
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{servers: make(map[string]*Server), listeners: make(map[string]*memnet.Listener), down: make(map[string]bool)}
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

// Register makes s reachable at addr for calls through the network (replacing any previous
// server there).
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

// A MemRule picks calls from the member at address from to the one at address to, of type t.
type MemRule func(from, to string, t MsgType) bool

// SetDown marks the member at addr down (or up again): calls to it and from it fail with
// ErrConnClosed, as for a process that stopped or was cut off from everyone.
func (n *MemNetwork) SetDown(addr string, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if down {
		n.down[addr] = true
	} else {
		delete(n.down, addr)
	}
}

// SetDrop installs (or, with nil, removes) the rule of the calls that fail with ErrConnClosed
// without reaching the receiver, as to an unreachable peer: a targeted loss between two
// members, for one message type.
func (n *MemNetwork) SetDrop(f MemRule) {
	n.mu.Lock()
	n.drop = f
	n.mu.Unlock()
}

// SetHang installs (or, with nil, removes) the rule of the calls never answered (a peer that
// stopped, or a network that loses packets): they end only with their timeout or context.
func (n *MemNetwork) SetHang(f MemRule) {
	n.mu.Lock()
	n.hang = f
	n.mu.Unlock()
}

// SetAnswered installs (or, with nil, removes) a hook that runs once the receiver has served a
// call, before the answer goes back: it may block (an acknowledgement held back) or return true
// to lose the answer (the caller sees a lost connection, the receiver has done the work).
func (n *MemNetwork) SetAnswered(f MemRule) {
	n.mu.Lock()
	n.answered = f
	n.mu.Unlock()
}

// Serving returns how many calls through the network the receivers are serving now.
func (n *MemNetwork) Serving() int64 { return n.serving.Load() }

// Call runs req on the server registered at addr, from no member in particular (see Caller).
func (n *MemNetwork) Call(ctx context.Context, addr string, req Message) (Message, error) {
	return n.call(ctx, "", addr, req)
}

// Caller returns the calls of the member at address from: a Caller with the CallTimeout and
// CallAsync of *Client, subject to the network's rules (SetDown, SetDrop, SetHang, SetAnswered,
// Cut) between from and the called address.
func (n *MemNetwork) Caller(from string) MemCaller { return MemCaller{n: n, from: from} }

// MemCaller is one member's calls through a MemNetwork (see MemNetwork.Caller).
type MemCaller struct {
	n    *MemNetwork
	from string
}

var _ Caller = MemCaller{}

// Call is Client.Call through the network.
func (c MemCaller) Call(ctx context.Context, addr string, req Message) (Message, error) {
	return c.n.call(ctx, c.from, addr, req)
}

// CallTimeout is Client.CallTimeout through the network: when timeout passes first, the call
// fails with an error wrapping ErrCallTimeout.
func (c MemCaller) CallTimeout(ctx context.Context, addr string, req Message, timeout time.Duration) (Message, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := c.n.call(tctx, c.from, addr, req)
	if err != nil && ctx.Err() == nil && tctx.Err() != nil {
		return resp, fmt.Errorf("transport: call %s: %w", addr, ErrCallTimeout)
	}
	return resp, err
}

// CallAsync is Client.CallAsync through the network: it declines (sends nothing, never calls
// done) when addr is unreachable, and otherwise runs the call on a goroutine of its own.
func (c MemCaller) CallAsync(_ context.Context, addr string, req Message, timeout time.Duration, done Callback) bool {
	if s, _, err := c.n.route(c.from, addr, req.Type); s == nil || err != nil {
		return false
	}
	go func() {
		done.CallDone(c.CallTimeout(context.Background(), addr, req, timeout))
	}()
	return true
}

// route returns the server a call from from to addr of type t reaches, whether it hangs, or
// the error of an unreachable receiver.
func (n *MemNetwork) route(from, addr string, t MsgType) (*Server, bool, error) {
	n.mu.RLock()
	s := n.servers[addr]
	down := n.down[addr] || n.down[from] || (n.drop != nil && n.drop(from, addr, t))
	hang := n.hang != nil && n.hang(from, addr, t)
	n.mu.RUnlock()
	if s == nil || down || (from != "" && n.Blocked(from, addr)) {
		return nil, false, fmt.Errorf("%w: %s: unreachable from %q", ErrConnClosed, addr, from)
	}
	return s, hang, nil
}

// call delivers req from from to the server at addr, as a connection would: the request and
// the answer are copied (the receiver owns its buffers), the receiver serves it under a context
// of its own (the server's: the caller's deadline reaches it only through the request), and the
// caller stops waiting when its context ends.
func (n *MemNetwork) call(ctx context.Context, from, addr string, req Message) (Message, error) {
	s, hang, err := n.route(from, addr, req.Type)
	if err != nil {
		return Message{}, err
	}
	f := Frame{Header: req.Header, Body: req.Body}
	if l := f.Length(); l > s.cfg.MaxFrameSize {
		return Message{}, fmt.Errorf("%w: request of %d bytes, limit %d", ErrFrameTooLarge, l, s.cfg.MaxFrameSize)
	}
	if err := ctx.Err(); err != nil {
		return Message{}, fmt.Errorf("transport: call %s: %w", addr, err)
	}
	if hang {
		<-ctx.Done()
		return Message{}, fmt.Errorf("transport: call %s: %w", addr, ctx.Err())
	}
	req.Header, req.Body = cloneTwo(req.Header, req.Body)
	type answer struct {
		msg Message
		err error
	}
	done := make(chan answer, 1)
	n.serving.Add(1)
	go func() {
		defer n.serving.Add(-1)
		resp, err := s.serveMem(req)
		n.mu.RLock()
		answered := n.answered
		n.mu.RUnlock()
		if answered != nil && answered(from, addr, req.Type) {
			resp, err = Message{}, fmt.Errorf("%w: answer from %s lost", ErrConnClosed, addr)
		} else {
			n.noteHeard(from, addr)
		}
		done <- answer{resp, err}
	}()
	select {
	case a := <-done:
		return a.msg, a.err
	case <-ctx.Done():
		return Message{}, fmt.Errorf("transport: call %s: %w", addr, ctx.Err())
	}
}

// noteHeard records that from got an answer from addr now.
func (n *MemNetwork) noteHeard(from, addr string) {
	n.heardMu.Lock()
	defer n.heardMu.Unlock()
	if n.heard == nil {
		n.heard = map[[2]string]time.Time{}
	}
	n.heard[[2]string{from, addr}] = time.Now()
}

// LastHeard is Client.LastHeard through the network: when an answer from addr last reached this
// caller (or would have: a call that timed out still counts its late answer), false if none did.
func (c MemCaller) LastHeard(addr string) (time.Time, bool) {
	c.n.heardMu.Lock()
	defer c.n.heardMu.Unlock()
	t, ok := c.n.heard[[2]string{c.from, addr}]
	return t, ok
}

// serveMem serves a request of the in-memory network as a connection's reader and workers
// would: an AsyncHandler is offered it first, errors come back as the *RemoteError a remote
// caller gets, and the answer is copied and held to MaxFrameSize.
func (s *Server) serveMem(req Message) (Message, error) {
	h := s.handlers.Load()[req.Type]
	if h == nil {
		return Message{}, &RemoteError{Code: CodeUnknownType, Message: fmt.Sprintf("transport: unknown message type %d", req.Type)}
	}
	var resp Message
	var err error
	if ah, ok := h.(AsyncHandler); ok {
		type answer struct {
			msg Message
			err error
		}
		ch := make(chan answer, 1)
		if ah.TryServe(s.ctx, req, ReplyFunc(func(m Message, err error) { ch <- answer{m, err} })) {
			select {
			case a := <-ch:
				resp, err = a.msg, a.err
			case <-s.ctx.Done():
				return Message{}, fmt.Errorf("%w: server closed", ErrConnClosed)
			}
		} else {
			resp, err = s.call(s.ctx, h, req)
		}
	} else {
		resp, err = s.call(s.ctx, h, req)
	}
	f := Frame{Header: resp.Header, Body: resp.Body}
	if err == nil && f.Length() > s.cfg.MaxFrameSize {
		err = &RemoteError{Code: CodeFrameTooLarge, Message: "transport: response exceeds MaxFrameSize"}
	}
	if err != nil {
		code, msg := s.errorCode(err)
		return Message{}, &RemoteError{Code: code, Message: msg}
	}
	resp.Type = req.Type
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
