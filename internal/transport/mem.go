package transport

import (
	"context"
	"fmt"
	"sync"
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

// MemNetwork is an in-memory Caller for tests: calls to a registered address
// run that Server's handlers directly (via Dispatch), on the caller's
// goroutine. Request and response slices are copied, so ownership matches
// the TCP transport. Calls to an unregistered address fail with an error
// wrapping ErrConnClosed, like a peer that is down. It is safe for concurrent
// use.
type MemNetwork struct {
	mu      sync.RWMutex
	servers map[string]*Server
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{servers: make(map[string]*Server)}
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
