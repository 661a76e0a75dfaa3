package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Handler serves one request type. ServeMsg runs on its own goroutine, at
// most Config.MaxInFlight concurrently per connection, so it may block; ctx
// ends when the connection or the server closes, and handlers must honour it
// (Server.Close waits for them). req's slices belong to the handler. The
// returned Message's Type is ignored (a response carries the request's type)
// and its slices must not be modified after return. A returned error is sent
// to the caller as a *RemoteError: its own code if it is one, otherwise
// Config.ErrorCode(err), otherwise CodeInternal.
type Handler interface {
	ServeMsg(ctx context.Context, req Message) (Message, error)
}

// Inline marks h as a handler that never blocks: no I/O, no waiting for other requests or
// goroutines, only brief locks. The server runs an inline handler on the connection's reader
// goroutine, which saves a goroutine hand-off per request but holds up the requests that
// follow on the connection while it runs; its ctx is the connection's.
func Inline(h Handler) Handler { return inlineHandler{Handler: h} }

// InlineRecycling is Inline for a handler that usually keeps nothing of a request once it
// returns and says so with Message.Recycle: the connection then reads a later request for it
// into the buffer given back, and a request handled that way allocates nothing.
func InlineRecycling(h Handler) Handler { return inlineHandler{Handler: h, recycles: true} }

type inlineHandler struct {
	Handler
	recycles bool
}

// AsyncRecycling registers an AsyncHandler whose TryServe usually keeps nothing of a request it
// takes once it returns (it answers later, from what it copied or stored) and says so with
// Message.Recycle before returning: the connection then reads a later request for it into the
// buffer given back. A request it declines, or serves through ServeMsg, keeps its buffer.
func AsyncRecycling(h AsyncHandler) Handler { return asyncRecycling{h} }

type asyncRecycling struct{ AsyncHandler }

// recycling reports whether the requests of h may be read into a given-back buffer.
func recycling(h Handler) bool {
	switch h := h.(type) {
	case inlineHandler:
		return h.recycles
	case asyncRecycling:
		return true
	}
	return false
}

// AsyncHandler is a Handler that can also take a request on the connection's reader goroutine
// and answer it later from whichever goroutine completes it, typically the reader of another
// connection delivering a response it waited for (see Client.CallAsync). This saves the
// hand-offs to and from a worker goroutine for requests that only wait for other members.
type AsyncHandler interface {
	Handler
	// TryServe must not block. It either declines the request, having done nothing, by
	// returning false (the server then runs ServeMsg on a worker goroutine as for any Handler),
	// or takes it, returning true, and then calls reply.Send exactly once. ctx and req are as
	// for ServeMsg.
	TryServe(ctx context.Context, req Message, reply Reply) bool
}

// Reply answers one request taken by an AsyncHandler.
type Reply struct {
	s  *Server
	sc *serverConn
	t  MsgType
	id uint64
	fn func(Message, error) // set by ReplyFunc
}

// SendIn is Send from the completion of an asynchronous call (see BurstCallback): within a
// burst of the reader delivering it, the response is held and written with the others.
func (r Reply) SendIn(b *Burst, resp Message, err error) {
	if r.fn != nil || b == nil {
		r.Send(resp, err)
		return
	}
	if b.add(&r.sc.wconn, r.s.responseFrame(r.t, r.id, resp, err)) {
		<-r.sc.sem
		return
	}
	r.Send(resp, err)
}

// ReplyFunc returns a Reply that hands the answer to f, for serving an AsyncHandler outside a
// Server (an in-memory network in tests, an adapter).
func ReplyFunc(f func(resp Message, err error)) Reply { return Reply{fn: f} }

// Send sends the response to the request, as a handler's return values would be sent. It may be
// called from any goroutine, exactly once; it blocks only while the connection's outgoing queue
// is full.
func (r Reply) Send(resp Message, err error) {
	if r.fn != nil {
		r.fn(resp, err)
		return
	}
	r.s.sendResponse(r.sc, r.t, r.id, resp, err)
	<-r.sc.sem
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req Message) (Message, error)

// ServeMsg calls f.
func (f HandlerFunc) ServeMsg(ctx context.Context, req Message) (Message, error) {
	return f(ctx, req)
}

// Server accepts connections on one or more listeners, serves gridmap frames
// with the registered Handlers and hands raft connections to its RaftLayer.
type Server struct {
	cfg      Config
	handlers atomic.Pointer[[256]Handler]
	hmu      sync.Mutex // serializes Handle
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // connection goroutines and workers
	work     chan task      // hands requests to idle workers (unbuffered)

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]*serverConn // nil value: protocol byte not read yet
	raft      *raftLayer
}

type serverConn struct {
	wconn
	ctx    context.Context // handlers' context, canceled when the conn dies
	cancel context.CancelFunc
	sem    chan struct{}
	// burst collects, while the reader serves a burst (see readLoop), the responses sent on
	// this connection and the requests handlers send with Client.CallAsync; ctx carries it.
	burst Burst
	// current is the buffer of the last request for an InlineRecycling handler the reader
	// read, and spare one such buffer its handler gave back (Message.Recycle), which the reader
	// reads the next such request into if it fits; gaveBack tells whether the last such
	// request was given back. Only the reader uses them.
	current, spare []byte
	gaveBack       bool
}

// maxRecycled bounds the requests read into a recycled buffer, and so the memory a connection
// keeps for it.
const maxRecycled = largeBody

// poisonRecycled makes Recycle overwrite the buffer it takes back, in test binaries, so that
// bytes used after being given back read as garbage and fail the tests that use them.
var poisonRecycled = testing.Testing()

// allocFrame returns the buffer the reader reads a request for h (n bytes) into: for a
// handler registered with InlineRecycling or AsyncRecycling, the spare buffer when it fits and
// is not more than twice as large, give or take the 64 bytes a buffer is rounded to (a request
// the handler keeps keeps the whole buffer).
func (sc *serverConn) allocFrame(h Handler, n int) []byte {
	if !recycling(h) || n > maxRecycled {
		return make([]byte, n)
	}
	b := sc.spare
	switch {
	case cap(b) >= n && cap(b) <= 2*n+64:
		sc.spare = nil
	case sc.gaveBack:
		// Requests come back: room for a somewhat larger one, so that the buffer serves the
		// requests that follow, whose sizes vary.
		b = make([]byte, n, (n+n/4+63)&^63)
	default:
		b = make([]byte, n)
	}
	sc.current = b[:n]
	return sc.current
}

// keptLast notes, before the reader reads the next frame, that the last request read into a
// recyclable buffer was not given back (its handler, a worker or a reply keeps it): that buffer
// is not the connection's any more.
func (sc *serverConn) keptLast() {
	if sc.current != nil {
		sc.current, sc.gaveBack = nil, false
	}
}

// recycle takes back the buffer of request m if it is the one being served (see
// Message.Recycle).
func (sc *serverConn) recycle(m Message) {
	b := sc.current
	if len(b) == 0 {
		return
	}
	switch {
	case len(m.Header) > 0 && &m.Header[0] == &b[0]:
	case len(m.Header) == 0 && len(m.Body) > 0 && &m.Body[0] == &b[0]:
	default:
		return // not the buffer of the request being served
	}
	sc.current, sc.gaveBack = nil, true
	if poisonRecycled {
		for i := range b {
			b[i] = 0xEE
		}
	}
	// The latest buffer given back is the one whose size fits the requests coming now (a
	// connection may carry 300-byte writes for a while, then 60-byte reads).
	sc.spare = b
}

// NewServer returns a Server; register handlers with Handle, then call Serve.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg.WithDefaults(),
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]*serverConn),
		work:      make(chan task),
	}
	s.handlers.Store(new([256]Handler))
	return s, nil
}

// Handle registers h for message type t. Call it before Serve; registering
// later is safe but requests that arrive before registration get
// CodeUnknownType. Type 0 is reserved and ignored. Registering a second
// handler for a type panics: the services sharing a Server pick their types
// independently, and a silent replacement would send one service's requests to
// another's handler.
func (s *Server) Handle(t MsgType, h Handler) {
	if t == 0 {
		return
	}
	s.hmu.Lock()
	defer s.hmu.Unlock()
	hs := *s.handlers.Load()
	if hs[t] != nil {
		panic(fmt.Sprintf("transport: a handler for message type %d is already registered", t))
	}
	hs[t] = h
	s.handlers.Store(&hs)
}

// Serve accepts connections on ln until Close, which closes ln. It returns
// nil after Close, ErrClosed if called after Close, or the listener's error.
// Serve may be called for several listeners concurrently.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	for {
		nc, err := ln.Accept()
		if err == nil {
			setUserTimeout(nc, s.cfg.UserTimeout)
		}
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("transport: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return nil
		}
		s.conns[nc] = nil
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc)
	}
}

// Close stops the listeners, closes every gridmap connection, unblocks the
// RaftLayer's Accept, and waits for every goroutine the Server started,
// including running handlers. Raft connections already accepted belong to
// raft and are not closed.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	lns := make([]net.Listener, 0, len(s.listeners))
	for ln := range s.listeners {
		lns = append(lns, ln)
	}
	conns := make(map[net.Conn]*serverConn, len(s.conns))
	for nc, sc := range s.conns {
		conns[nc] = sc
	}
	s.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	// Connections first, so that handlers' responses to the cancellation
	// below are not sent: pending callers see the connection close instead.
	for nc, sc := range conns {
		if sc != nil {
			sc.shutdown(ErrClosed)
		} else {
			_ = nc.Close()
		}
	}
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Server) forget(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// serveConn reads the protocol byte and serves the connection accordingly.
// With TLS, the handshake comes first: a peer that does not complete it (no certificate signed
// by the cluster's CA, or plain TCP) is logged with its address and closed without a byte of
// gridmap or raft protocol. With a Secret, the secret handshake then replaces the protocol
// byte (it carries it); a peer that fails it is logged and closed likewise.
func (s *Server) serveConn(nc net.Conn) {
	defer s.wg.Done()
	conn := nc
	if s.cfg.TLS != nil {
		tc, err := s.cfg.TLS.server(nc, s.cfg.DialTimeout)
		if err != nil {
			s.forget(nc)
			_ = nc.Close()
			if s.ctx.Err() == nil {
				s.cfg.Logger.Warn("transport: refused connection: TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
			}
			return
		}
		conn = tc
	}
	var b [1]byte
	if s.cfg.Secret != nil {
		proto, err := authServer(conn, s.cfg.Secret, s.cfg.DialTimeout)
		if err != nil {
			s.forget(nc)
			_ = conn.Close()
			if s.ctx.Err() == nil {
				s.cfg.Logger.Warn("transport: refused connection: secret handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
			}
			return
		}
		b[0] = proto
	} else if _, err := conn.Read(b[:]); err != nil {
		s.forget(nc)
		_ = conn.Close()
		return
	}
	switch b[0] {
	case 'G':
		if conn != nc {
			s.forget(nc) // serveFrames registers conn, under the lock that Close takes
		}
		s.serveFrames(conn)
	case 'R':
		s.forget(nc)
		s.handoffRaft(conn)
	default:
		s.forget(nc)
		s.cfg.Logger.Warn("transport: unknown protocol byte, closing connection", "remote", nc.RemoteAddr().String(), "byte", b[0])
		_ = conn.Close()
	}
}

func (s *Server) serveFrames(nc net.Conn) {
	ctx, cancel := context.WithCancel(s.ctx)
	sc := &serverConn{wconn: newWconn(nc, s.cfg.QueueSize, s.cfg.Stats), cancel: cancel, sem: make(chan struct{}, s.cfg.MaxInFlight)}
	sc.ctx = context.WithValue(ctx, burstKey{}, &sc.burst)
	sc.onDead = cancel
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sc.shutdown(ErrClosed)
		return
	}
	s.conns[nc] = sc
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.forget(nc)
	go func() {
		defer s.wg.Done()
		sc.writeLoop(nil)
	}()
	err := s.readLoop(sc, bufio.NewReaderSize(nc, readBufferSize))
	if err != nil {
		sc.shutdown(err)
	}
}

// readLoop reads requests and starts a handler goroutine for each. It returns
// nil if the writer will shut the connection down after a final frame.
//
// When several requests arrive together, the responses sent while the reader serves them
// (inline, or by handlers finishing meanwhile) are held and written together once the reader
// has no complete request left to serve: one system call for the burst instead of one each.
func (s *Server) readLoop(sc *serverConn, br *bufio.Reader) error {
	holding := false
	// settle writes what the burst held (a failed write shuts the connection down, so the next
	// read fails); it runs before the reader may block, so that nothing it waits for can be
	// stuck in a held frame.
	settle := func() {
		if holding {
			holding = false
			sc.heldBy.Store(nil)
			sc.burst.end()
		}
	}
	defer settle()
	alloc := func(t MsgType, n int) []byte { return sc.allocFrame(s.handlers.Load()[t], n) }
	for {
		sc.keptLast()
		if holding && !nextFrameBuffered(br) {
			settle()
		}
		f, err := readFrame(br, s.cfg.MaxFrameSize, alloc)
		if err == nil {
			sc.stats.read(f)
		}
		if err == nil && !holding && nextFrameBuffered(br) {
			holding = true
			sc.burst.begin()
			sc.heldBy.Store(&sc.burst)
		}
		if err != nil {
			settle()
			var fe *FrameError
			if !errors.As(err, &fe) || !fe.HasID {
				if fe != nil {
					s.cfg.Logger.Warn("transport: bad frame, closing connection", "remote", sc.nc.RemoteAddr().String(), "err", err)
				}
				return err
			}
			code := CodeMalformed
			if errors.Is(err, ErrFrameTooLarge) {
				code = CodeFrameTooLarge
			}
			s.cfg.Logger.Warn("transport: bad frame", "remote", sc.nc.RemoteAddr().String(), "err", err, "resync", fe.Resync)
			of := outFrame{f: errorFrame(fe.Type, fe.ID, code, err.Error()), last: !fe.Resync}
			if err := sc.enqueue(sc.ctx, of); err != nil {
				return err
			}
			if !fe.Resync {
				return nil
			}
			continue
		}
		if f.Kind != KindRequest {
			settle()
			of := outFrame{f: errorFrame(f.Type, f.ID, CodeMalformed, fmt.Sprintf("transport: frame kind %d sent to server", f.Kind))}
			if err := sc.enqueue(sc.ctx, of); err != nil {
				return err
			}
			continue
		}
		h := s.handlers.Load()[f.Type]
		if h == nil {
			settle()
			of := outFrame{f: errorFrame(f.Type, f.ID, CodeUnknownType, fmt.Sprintf("transport: unknown message type %d", f.Type))}
			if err := sc.enqueue(sc.ctx, of); err != nil {
				return err
			}
			continue
		}
		if ih, ok := h.(inlineHandler); ok {
			req := Message{Type: f.Type, Header: f.Header, Body: f.Body}
			if ih.recycles {
				req.from = sc
			}
			s.respond(sc, ih.Handler, req, f.ID)
			continue
		}
		select {
		case sc.sem <- struct{}{}:
		default:
			settle()
			select {
			case sc.sem <- struct{}{}:
			case <-sc.dead:
				return sc.err
			}
		}
		if ah, ok := h.(AsyncHandler); ok && s.tryServe(sc, ah, f) {
			continue
		}
		s.dispatch(task{sc: sc, h: h, f: f})
	}
}

// nextFrameBuffered reports whether a whole frame is waiting in br, so that reading it does not
// block.
func nextFrameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 4 {
		return false
	}
	p, _ := br.Peek(4)
	return int64(n) >= 4+int64(binary.BigEndian.Uint32(p))
}

// task is one request to serve.
type task struct {
	sc *serverConn
	h  Handler
	f  Frame
}

// workerIdle is how long an idle worker goroutine waits for another request
// before it exits.
const workerIdle = 2 * time.Second

// dispatch runs t on an idle worker goroutine, or on a new one. Reusing
// goroutines saves their creation and stack growth on the hot path.
func (s *Server) dispatch(t task) {
	select {
	case s.work <- t:
	default:
		s.wg.Add(1)
		go s.worker(t)
	}
}

// worker serves t, then further tasks until it has been idle for workerIdle
// or the server closes.
func (s *Server) worker(t task) {
	defer s.wg.Done()
	var idle *time.Timer
	for {
		s.serveRequest(t.sc, t.h, t.f)
		t = task{}
		if idle == nil {
			idle = time.NewTimer(workerIdle)
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case t = <-s.work:
		case <-idle.C:
			return
		case <-s.ctx.Done():
			idle.Stop()
			return
		}
	}
}

func (s *Server) serveRequest(sc *serverConn, h Handler, f Frame) {
	defer func() { <-sc.sem }()
	s.respond(sc, h, Message{Type: f.Type, Header: f.Header, Body: f.Body}, f.ID)
}

// tryServe offers request f to an AsyncHandler and reports whether it took it. A panic closes
// the connection (the handler may or may not have replied already, so no answer can be sent
// safely); the callers see ErrConnClosed.
func (s *Server) tryServe(sc *serverConn, h AsyncHandler, f Frame) (taken bool) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("transport: handler panic, closing connection", "type", f.Type, "panic", r, "stack", string(debug.Stack()))
			sc.shutdown(fmt.Errorf("transport: handler panic: %v", r))
			taken = true
		}
	}()
	req := Message{Type: f.Type, Header: f.Header, Body: f.Body}
	if recycling(h) {
		req.from = sc
	}
	return h.TryServe(sc.ctx, req, Reply{s: s, sc: sc, t: f.Type, id: f.ID})
}

// respond runs the handler for request f and sends its response.
func (s *Server) respond(sc *serverConn, h Handler, req Message, id uint64) {
	resp, err := s.call(sc.ctx, h, req)
	s.sendResponse(sc, req.Type, id, resp, err)
}

// sendResponse sends a handler's answer to request id of type t.
func (s *Server) sendResponse(sc *serverConn, t MsgType, id uint64, resp Message, err error) {
	_ = sc.send(sc.ctx, s.responseFrame(t, id, resp, err))
}

// responseFrame encodes a handler's answer to request id of type t.
func (s *Server) responseFrame(t MsgType, id uint64, resp Message, err error) Frame {
	out := Frame{Kind: KindResponse, Type: t, ID: id, Header: resp.Header, Body: resp.Body}
	if err == nil && out.Length() > s.cfg.MaxFrameSize {
		err = &RemoteError{Code: CodeFrameTooLarge, Message: fmt.Sprintf("transport: response of %d bytes exceeds limit %d", out.Length(), s.cfg.MaxFrameSize)}
	}
	if err != nil {
		code, msg := s.errorCode(err)
		out = errorFrame(t, id, code, msg)
	}
	return out
}

// call runs the handler, turning a panic into an error.
func (s *Server) call(ctx context.Context, h Handler, req Message) (resp Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("transport: handler panic", "type", req.Type, "panic", r, "stack", string(debug.Stack()))
			resp, err = Message{}, &RemoteError{Code: CodeInternal, Message: fmt.Sprintf("transport: handler panic: %v", r)}
		}
	}()
	return h.ServeMsg(ctx, req)
}

// errorCode returns the code and message sent for a handler error.
func (s *Server) errorCode(err error) (uint16, string) {
	var re *RemoteError
	if errors.As(err, &re) && re == err {
		return re.Code, re.Message
	}
	if errors.As(err, &re) {
		return re.Code, err.Error()
	}
	if s.cfg.ErrorCode != nil {
		return s.cfg.ErrorCode(err), err.Error()
	}
	return CodeInternal, err.Error()
}
