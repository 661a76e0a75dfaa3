package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// monitorInterval is how often a Client fails the calls whose timeout (CallTimeout, CallAsync)
// has passed. Timeouts are meant for seconds-long bounds, so they may fire this much late.
const monitorInterval = 20 * time.Millisecond

// Client sends requests to Servers. It is safe for concurrent use; many
// concurrent calls share a few connections per peer (Config.ConnsPerPeer).
type Client struct {
	cfg    Config
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // dialers, readers, writers

	// born is the origin of the monotonic clock the call deadlines are kept on.
	born time.Time

	mu     sync.RWMutex
	closed bool
	peers  map[string]*peer

	// dialHook, when set by a test, dials instead of a net.Dialer.
	dialHook func(ctx context.Context, addr string) (net.Conn, error)
}

// peer holds the connections to one address in two lanes of
// Config.ConnsPerPeer connections each: requests of at least bulkFrame bytes
// travel on the bulk lane, so that small requests (and their responses) do not
// wait behind large bodies, which a connection sends one frame at a time. The
// bulk lane is dialed only when a large request is sent.
type peer struct {
	addr     string
	next     atomic.Uint32
	nextBulk atomic.Uint32
	small    int    // connections in the small lane
	slots    []slot // small lane first, then the bulk lane
	// heard is when (Client.now) a frame from the peer last arrived, on any of its
	// connections: an answer to a call, or a late one to a call that timed out (see LastHeard).
	heard atomic.Int64
}

// smallSlot picks the next slot of the small lane, round-robin.
func (p *peer) smallSlot() *slot { return &p.slots[int(p.next.Add(1)-1)%p.small] }

// slot is one of a peer's connections, dialed lazily and replaced when broken.
type slot struct {
	mu      sync.Mutex
	cc      *clientConn
	dialing chan struct{} // non-nil while a dial is under way; closed when done
	err     error         // result of the last dial
}

type result struct {
	msg Message
	err error
}

// clientConn is one multiplexed client connection.
type clientConn struct {
	wconn
	addr string
	br   *bufio.Reader
	max  int

	mu      sync.Mutex
	closed  bool
	nextID  uint64
	pending map[uint64]pendingCall

	// burst holds the answers sent by completions while the reader serves a burst of responses.
	burst Burst
	// heard is the peer's last-frame time, which the reader sets on the clock now.
	heard *atomic.Int64
	now   func() int64
}

// pendingCall is a request waiting for its response: a synchronous Call blocked on ch, or an
// asynchronous one that done completes.
type pendingCall struct {
	ch   chan result
	done Callback
	// deadline (Client.now) after which the monitor fails the call; 0 = none.
	deadline int64
}

// complete hands r to whoever waits for the call; b is the burst of the reader delivering it,
// or nil.
func (pc pendingCall) complete(r result, b *Burst) {
	if pc.ch != nil {
		pc.ch <- r // buffered, never blocks
		return
	}
	if bc, ok := pc.done.(BurstCallback); ok && b != nil {
		bc.CallDoneIn(b, r.msg, r.err)
		return
	}
	pc.done.CallDone(r.msg, r.err)
}

// NewClient returns a Client; it dials peers on first use.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{cfg: cfg.WithDefaults(), ctx: ctx, cancel: cancel, peers: make(map[string]*peer), born: time.Now()}
	c.wg.Add(1)
	go c.monitor()
	return c, nil
}

// now is the Client's monotonic clock, in nanoseconds since it was created.
func (c *Client) now() int64 { return int64(time.Since(c.born)) }

// deadline converts a timeout into a deadline on the Client's clock; 0 (none) for timeout <= 0.
func (c *Client) deadline(timeout time.Duration) int64 {
	if timeout <= 0 {
		return 0
	}
	return c.now() + int64(timeout)
}

// monitor is the goroutine that fails calls whose timeout has passed, until Close. One shared
// clock saves every call a timer of its own.
func (c *Client) monitor() {
	defer c.wg.Done()
	t := time.NewTicker(monitorInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		now := c.now()
		c.mu.RLock()
		var conns []*clientConn
		for _, p := range c.peers {
			for i := range p.slots {
				s := &p.slots[i]
				s.mu.Lock()
				if s.cc != nil {
					conns = append(conns, s.cc)
				}
				s.mu.Unlock()
			}
		}
		c.mu.RUnlock()
		for _, cc := range conns {
			cc.expire(now)
		}
	}
}

var resultPool = sync.Pool{New: func() any { return make(chan result, 1) }}

// Call sends req to the server at addr and returns its response. The
// response's slices belong to the caller. An error response from the server
// is returned as a *RemoteError. A request larger than Config.MaxFrameSize
// fails with ErrFrameTooLarge without being sent. If the connection breaks
// while the call is pending the error wraps ErrConnClosed (the server may or
// may not have executed the request). If ctx ends first Call returns its
// error at once and a late response is dropped.
//
// req's slices must not be modified while Call runs, and are not read after it returned: the
// caller may reuse them at once. (A small request waiting in the connection's queue is a copy;
// a large body is written without one, so a Call ending early waits until the writer is done
// with it or the connection is closed.)
func (c *Client) Call(ctx context.Context, addr string, req Message) (Message, error) {
	return c.call(ctx, addr, req, 0)
}

// CallTimeout is Call bounded by timeout as well as by ctx: when timeout passes first, the call
// fails with an error wrapping ErrCallTimeout (and context.DeadlineExceeded). Unlike a context
// with a deadline, it costs no timer: one monitor goroutine per Client checks the deadlines of
// all calls, which may thus fire up to a few tens of milliseconds late.
func (c *Client) CallTimeout(ctx context.Context, addr string, req Message, timeout time.Duration) (Message, error) {
	return c.call(ctx, addr, req, c.deadline(timeout))
}

func (c *Client) call(ctx context.Context, addr string, req Message, deadline int64) (Message, error) {
	f := Frame{Kind: KindRequest, Type: req.Type, Header: req.Header, Body: req.Body}
	if size := f.Length(); size > c.cfg.MaxFrameSize {
		return Message{}, fmt.Errorf("%w: request of %d bytes, limit %d", ErrFrameTooLarge, size, c.cfg.MaxFrameSize)
	}
	bulk := f.Length() >= bulkFrame
	for attempt := 0; ; attempt++ {
		cc, err := c.conn(ctx, addr, bulk, deadline)
		if err != nil {
			return Message{}, err
		}
		ch := resultPool.Get().(chan result)
		id, ok := cc.register(pendingCall{ch: ch, deadline: deadline})
		if !ok {
			// Nothing was sent: the connection died before; try a fresh one once.
			resultPool.Put(ch)
			if attempt == 0 {
				continue
			}
			return Message{}, fmt.Errorf("%w: %s: %w", ErrConnClosed, addr, cc.err)
		}
		f.ID = id
		var timeout time.Duration
		if deadline != 0 {
			timeout = max(time.Duration(deadline-c.now()), time.Microsecond)
		}
		written, err := cc.sendRequest(ctx, f, timeout)
		if err != nil {
			if cc.unregister(id) {
				resultPool.Put(ch)
			}
			if ctx.Err() != nil || errors.Is(err, ErrCallTimeout) {
				return Message{}, fmt.Errorf("transport: call %s: %w", addr, err)
			}
			return Message{}, fmt.Errorf("%w: %s: %w", ErrConnClosed, addr, err)
		}
		select {
		case r := <-ch:
			resultPool.Put(ch)
			cc.release(written, r.err != nil)
			return r.msg, r.err
		case <-ctx.Done():
			if cc.unregister(id) {
				resultPool.Put(ch)
			}
			cc.release(written, true)
			return Message{}, fmt.Errorf("transport: call %s: %w", addr, ctx.Err())
		}
	}
}

// CallAsync sends req to the server at addr without waiting: done receives the response (or an
// error, as Call would return it) on the connection's reader goroutine, so it must not block.
// CallAsync never blocks either: it reports false, having sent nothing and without calling done,
// when the call cannot be started at once (no live connection to addr yet, its queue full, a
// request for the bulk lane, the Client closed); the caller then uses Call. When it reports
// true, done is called exactly once, possibly before CallAsync returns (when the connection
// breaks while sending). A timeout > 0 fails the call with ErrCallTimeout once it passes (see
// CallTimeout).
//
// Called by a handler of this process's Server while its connection's reader serves a burst of
// requests (ctx is the handler's), the request is held and written with the others the burst
// starts, when the reader has served the burst.
func (c *Client) CallAsync(ctx context.Context, addr string, req Message, timeout time.Duration, done Callback) bool {
	f := Frame{Kind: KindRequest, Type: req.Type, Header: req.Header, Body: req.Body}
	if size := f.Length(); size >= bulkFrame || size > c.cfg.MaxFrameSize {
		return false
	}
	c.mu.RLock()
	p := c.peers[addr]
	closed := c.closed
	c.mu.RUnlock()
	if p == nil || closed {
		return false
	}
	s := p.smallSlot()
	s.mu.Lock()
	cc := s.cc
	s.mu.Unlock()
	if cc == nil || cc.isDead() {
		return false
	}
	id, ok := cc.register(pendingCall{done: done, deadline: c.deadline(timeout)})
	if !ok {
		return false
	}
	f.ID = id
	if b, _ := ctx.Value(burstKey{}).(*Burst); cc.started.Load() && b.add(&cc.wconn, f) {
		return true
	}
	if sent, _ := cc.sendDirect(f, time.Time{}); sent {
		return true // a failed write shut the connection down, which completes the call
	}
	select {
	case cc.q <- outFrame{f: f}:
		return true
	default:
	}
	if cc.unregister(id) {
		return false
	}
	return true // the connection died meanwhile and completed the call
}

// Callback receives the answer of a call started with CallAsync. An interface rather than a
// function, so that the state an asynchronous caller keeps anyway can receive it without a
// closure allocated per call.
type Callback interface {
	CallDone(resp Message, err error)
}

// BurstCallback is a Callback that can answer requests of its own within the burst of the
// reader delivering the response (see Burst and Reply.SendIn).
type BurstCallback interface {
	Callback
	// CallDoneIn is CallDone, called by a reader within its burst b.
	CallDoneIn(b *Burst, resp Message, err error)
}

// CallbackFunc adapts a function to Callback.
type CallbackFunc func(resp Message, err error)

// CallDone calls f.
func (f CallbackFunc) CallDone(resp Message, err error) { f(resp, err) }

// LastHeard returns when a frame from addr last arrived on this Client's connections (an
// answer, or a late answer to a call that had timed out), and false when none did. A peer whose
// calls time out while its answers keep arriving late is slow, not gone.
func (c *Client) LastHeard(addr string) (time.Time, bool) {
	c.mu.RLock()
	p := c.peers[addr]
	c.mu.RUnlock()
	if p == nil {
		return time.Time{}, false
	}
	h := p.heard.Load()
	if h == 0 {
		return time.Time{}, false
	}
	return c.born.Add(time.Duration(h)), true
}

// Close closes every connection and stops every goroutine the Client
// started; pending calls fail. Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	peers := c.peers
	c.peers = nil
	c.mu.Unlock()
	c.cancel()
	for _, p := range peers {
		for i := range p.slots {
			s := &p.slots[i]
			s.mu.Lock()
			cc := s.cc
			s.mu.Unlock()
			if cc != nil {
				cc.shutdown(ErrClosed)
			}
		}
	}
	c.wg.Wait()
	return nil
}

// conn returns a live connection to addr in the small or the bulk lane,
// dialing one if needed. A deadline (c.now() units, 0 none) bounds the wait
// for a dial as ctx does, so that CallTimeout is bounded even when the peer's
// host is unreachable and the dial itself would take DialTimeout; the timer
// it costs is paid only on this slow path.
func (c *Client) conn(ctx context.Context, addr string, bulk bool, deadline int64) (*clientConn, error) {
	p, err := c.peer(addr)
	if err != nil {
		return nil, err
	}
	var s *slot
	if bulk {
		s = &p.slots[p.small+int(p.nextBulk.Add(1)-1)%(len(p.slots)-p.small)]
	} else {
		s = p.smallSlot()
	}
	s.mu.Lock()
	if cc := s.cc; cc != nil && !cc.isDead() {
		s.mu.Unlock()
		return cc, nil
	}
	ch := s.dialing
	if ch == nil {
		c.mu.RLock()
		if c.closed {
			c.mu.RUnlock()
			s.mu.Unlock()
			return nil, ErrClosed
		}
		c.wg.Add(1)
		c.mu.RUnlock()
		ch = make(chan struct{})
		s.dialing = ch
		go c.dial(p, s, ch)
	}
	s.mu.Unlock()
	var expired <-chan time.Time
	if deadline != 0 {
		t := time.NewTimer(max(time.Duration(deadline-c.now()), 0))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("transport: dial %s: %w", addr, ctx.Err())
	case <-expired:
		return nil, fmt.Errorf("transport: dial %s: %w", addr, ErrCallTimeout)
	}
	s.mu.Lock()
	cc, err := s.cc, s.err
	s.mu.Unlock()
	if cc == nil {
		return nil, err
	}
	return cc, nil
}

func (c *Client) peer(addr string) (*peer, error) {
	c.mu.RLock()
	p, ok := c.peers[addr]
	closed := c.closed
	c.mu.RUnlock()
	if ok {
		return p, nil
	}
	if closed {
		return nil, ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if p, ok = c.peers[addr]; !ok {
		p = &peer{addr: addr, small: c.cfg.ConnsPerPeer, slots: make([]slot, c.cfg.ConnsPerPeer+c.cfg.BulkConnsPerPeer)}
		c.peers[addr] = p
	}
	return p, nil
}

// dial is the goroutine dialing slot s; it closes ch when done.
func (c *Client) dial(p *peer, s *slot, ch chan struct{}) {
	defer c.wg.Done()
	addr := p.addr
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	dial := d.DialContext
	hook := c.cfg.Dial
	if c.dialHook != nil {
		hook = c.dialHook
	}
	if hook != nil {
		dial = func(ctx context.Context, _, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
			defer cancel()
			return hook(ctx, addr)
		}
	}
	nc, err := dial(c.ctx, "tcp", addr)
	if err == nil {
		setUserTimeout(nc, c.cfg.UserTimeout)
		if c.cfg.TLS != nil {
			var tc net.Conn
			if tc, err = c.cfg.TLS.client(nc, addr, c.cfg.DialTimeout); err != nil {
				_ = nc.Close()
			} else {
				nc = tc
			}
		}
		if err == nil && c.cfg.Secret != nil {
			if err = authClient(nc, c.cfg.Secret, 'G', c.cfg.DialTimeout); err != nil {
				_ = nc.Close()
			}
		}
	}
	var cc *clientConn
	if err != nil {
		if c.ctx.Err() != nil {
			err = ErrClosed
		} else {
			err = fmt.Errorf("transport: dial %s: %w", addr, err)
		}
	} else {
		cc = c.start(nc, addr, &p.heard, c.now)
	}
	s.mu.Lock()
	s.cc, s.err, s.dialing = cc, err, nil
	close(ch)
	s.mu.Unlock()
	if cc != nil && c.ctx.Err() != nil {
		// Close ran while dialing and may have missed this connection.
		cc.shutdown(ErrClosed)
	}
	if cc != nil {
		c.cfg.Logger.Debug("transport: connected", "addr", addr, "local", nc.LocalAddr().String())
	}
}

func (c *Client) start(nc net.Conn, addr string, heard *atomic.Int64, now func() int64) *clientConn {
	cc := &clientConn{
		wconn:   newWconn(nc, c.cfg.QueueSize, c.cfg.Stats),
		addr:    addr,
		heard:   heard,
		now:     now,
		br:      bufio.NewReaderSize(nc, readBufferSize),
		max:     c.cfg.MaxFrameSize,
		pending: make(map[uint64]pendingCall),
	}
	cc.onDead = cc.failPending
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		var preamble []byte // the protocol byte, unless the secret handshake sent it
		if c.cfg.Secret == nil {
			preamble = []byte{'G'}
		}
		cc.writeLoop(preamble)
	}()
	go func() {
		defer c.wg.Done()
		cc.readLoop()
	}()
	return cc
}

// sendRequest hands a request to the connection: written at once by the calling goroutine when
// the writer is idle (see wconn.send), or queued for the writer. A direct write is bounded by
// ctx's deadline or else by timeout (the call's own, when > 0), since it cannot be interrupted
// when ctx ends: only a context that can end and has neither goes through the queue, so that
// Call returns as soon as it ends. A queued small request is copied; for a queued large one,
// large tracks it until the writer is done with its body (see release).
func (cc *clientConn) sendRequest(ctx context.Context, f Frame, timeout time.Duration) (large *largeSend, err error) {
	deadline, ok := ctx.Deadline()
	if !ok && timeout > 0 {
		deadline, ok = time.Now().Add(timeout), true
	}
	if ok || ctx.Done() == nil {
		if sent, err := cc.sendDirect(f, deadline); sent {
			if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				if _, ctxBound := ctx.Deadline(); !ctxBound {
					return nil, fmt.Errorf("%w: writing the request", ErrCallTimeout)
				}
				if ctx.Err() == nil {
					<-ctx.Done() // the write reached ctx's deadline: ctx is about to end
				}
			}
			if err != nil && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
	}
	if len(f.Body) < largeBody {
		f.Header, f.Body = bytes.Clone(f.Header), bytes.Clone(f.Body) // the caller may reuse them
	} else {
		large = &largeSend{written: make(chan struct{})}
	}
	if err := cc.enqueue(ctx, outFrame{f: f, large: large}); err != nil {
		// Not queued (ctx ended or the connection died first): the writer never saw it.
		return nil, err
	}
	return large, nil
}

// release makes sure the writer no longer reads a queued large request (ls, if not nil) before
// Call returns. A call ending early (abandon) takes the request back if it is still queued, or
// else closes the connection (the peer is not reading fast enough, the likely reason the call
// gave up) and waits for the writer to stop; a call answered waits for the writer to finish.
func (cc *clientConn) release(ls *largeSend, abandon bool) {
	if ls == nil {
		return
	}
	if abandon {
		if ls.state.CompareAndSwap(largeQueued, largeAbandoned) {
			return
		}
		select {
		case <-ls.written:
			return
		default:
		}
		cc.shutdown(fmt.Errorf("%w: a large request was abandoned while being written", ErrConnClosed))
	}
	select {
	case <-ls.written:
	case <-cc.dead:
		if !abandon {
			return
		}
		<-ls.written
	}
}

// register allocates a request id for a call. It reports false if the connection is already
// dead.
func (cc *clientConn) register(pc pendingCall) (uint64, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed {
		return 0, false
	}
	cc.nextID++
	cc.pending[cc.nextID] = pc
	return cc.nextID, true
}

// expire fails the pending calls whose deadline is before now.
func (cc *clientConn) expire(now int64) {
	var late []pendingCall
	cc.mu.Lock()
	for id, pc := range cc.pending {
		if pc.deadline != 0 && pc.deadline < now {
			late = append(late, pc)
			delete(cc.pending, id)
		}
	}
	cc.mu.Unlock()
	if len(late) == 0 {
		return
	}
	err := fmt.Errorf("transport: call %s: %w", cc.addr, ErrCallTimeout)
	for _, pc := range late {
		pc.complete(result{err: err}, nil)
	}
}

// unregister removes a pending call; it reports false if a result was (or is
// being) delivered to it.
func (cc *clientConn) unregister(id uint64) bool {
	cc.mu.Lock()
	_, ok := cc.pending[id]
	delete(cc.pending, id)
	cc.mu.Unlock()
	return ok
}

// take removes and returns the pending call id; ok is false if there is none.
func (cc *clientConn) take(id uint64) (pendingCall, bool) {
	cc.mu.Lock()
	pc, ok := cc.pending[id]
	delete(cc.pending, id)
	cc.mu.Unlock()
	return pc, ok
}

func (cc *clientConn) deliver(id uint64, r result, b *Burst) {
	if pc, ok := cc.take(id); ok {
		pc.complete(r, b)
	}
}

// failPending fails every pending call; it runs once, when the connection dies.
func (cc *clientConn) failPending() {
	cc.mu.Lock()
	cc.closed = true
	pending := cc.pending
	cc.pending = nil
	cc.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	err := fmt.Errorf("%w: %s: %w", ErrConnClosed, cc.addr, cc.err)
	if errors.Is(cc.err, ErrClosed) {
		err = fmt.Errorf("%w: %s: %w", ErrConnClosed, cc.addr, ErrClosed)
	}
	for _, pc := range pending {
		pc.complete(result{err: err}, nil)
	}
}

// readLoop is the connection's reader goroutine: it matches responses to
// pending calls until the connection fails.
func (cc *clientConn) readLoop() {
	// While further responses are already buffered, the answers completions send (Reply.SendIn)
	// are held in a burst and written together when the reader runs out of responses.
	holding := false
	defer func() {
		if holding {
			cc.burst.end()
		}
	}()
	for {
		if holding && !nextFrameBuffered(cc.br) {
			holding = false
			cc.burst.end()
		}
		f, err := ReadFrame(cc.br, cc.max)
		if err == nil {
			cc.stats.read(f)
			if cc.heard != nil {
				cc.heard.Store(cc.now())
			}
		}
		if err == nil && !holding && nextFrameBuffered(cc.br) {
			holding = true
			cc.burst.begin()
		}
		var b *Burst
		if holding {
			b = &cc.burst
		}
		if err != nil {
			var fe *FrameError
			r := result{err: fmt.Errorf("transport: response from %s: %w", cc.addr, err)}
			if errors.As(err, &fe) && fe.HasID {
				if fe.Resync {
					cc.deliver(fe.ID, r, b)
					continue
				}
				// Fail the connection before answering the call, so that a
				// caller retrying at once does not pick this connection.
				pc, ok := cc.take(fe.ID)
				cc.shutdown(err)
				if ok {
					pc.complete(r, nil)
				}
				return
			}
			cc.shutdown(err)
			return
		}
		switch f.Kind {
		case KindResponse:
			cc.deliver(f.ID, result{msg: Message{Type: f.Type, Header: f.Header, Body: f.Body}}, b)
		case KindError:
			cc.deliver(f.ID, result{err: decodeError(f.Body)}, b)
		default:
			cc.shutdown(fmt.Errorf("%w: request frame received by client", ErrMalformedFrame))
			return
		}
	}
}
