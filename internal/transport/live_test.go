package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLargeBodies(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{})
	for _, size := range []int{8 << 20, 20 << 20} {
		body := make([]byte, size)
		rng := rand.New(rand.NewPCG(1, uint64(size)))
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		var wg sync.WaitGroup
		for range 3 { // concurrently, interleaved with small calls
			wg.Add(2)
			go func() {
				defer wg.Done()
				resp, err := c.Call(ctxT(t), s.addr, Message{Type: msgEcho, Header: []byte("big"), Body: body})
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(resp.Body, body) || string(resp.Header) != "big" {
					t.Errorf("%d byte body corrupted", size)
				}
			}()
			go func() {
				defer wg.Done()
				for range 20 {
					mustEcho(t, c, s.addr, "small", "x")
				}
			}()
		}
		wg.Wait()
	}
}

func TestFrameTooLargeClientSide(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{MaxFrameSize: 1 << 10})
	_, err := c.Call(ctxT(t), s.addr, Message{Type: msgEcho, Body: make([]byte, 1<<10)})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v", err)
	}
	mustEcho(t, c, s.addr, "", string(make([]byte, 1<<10-MinFrameLength)))
}

func TestResponseTooLarge(t *testing.T) {
	// The server refuses to send a response beyond its limit...
	s := startServer(t, Config{MaxFrameSize: 1 << 10})
	c := newClient(t, Config{})
	_, err := c.Call(ctxT(t), s.addr, Message{Type: msgEcho, Header: make([]byte, 600), Body: make([]byte, 600)})
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeFrameTooLarge {
		t.Fatalf("server side: got %v", err)
	}
	// ...and a client refuses a response beyond its own limit, failing that
	// call and the connection, then recovers on a new connection.
	s2 := startServer(t, Config{})
	small := newClient(t, Config{MaxFrameSize: 1 << 10, ConnsPerPeer: 1})
	s2.Handle(30, HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		return Message{Body: make([]byte, 2<<10)}, nil
	}))
	_, err = small.Call(ctxT(t), s2.addr, Message{Type: 30})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("client side: got %v", err)
	}
	mustEcho(t, small, s2.addr, "after", "oversized response")
}

func TestCallContextCancel(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	release := make(chan struct{})
	s.Handle(31, HandlerFunc(func(hctx context.Context, req Message) (Message, error) {
		close(started)
		<-release
		return Message{Body: []byte("late")}, nil
	}))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, s.addr, Message{Type: 31})
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	close(release) // the late response is dropped
	mustEcho(t, c, s.addr, "next", "call")

	// A deadline while the server holds the request.
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	if _, err := c.Call(dctx, s.addr, Message{Type: msgBlock}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	// No pending entries are left behind.
	c.mu.RLock()
	p := c.peers[s.addr]
	c.mu.RUnlock()
	waitFor(t, "pending calls to drain", func() bool {
		for i := range p.slots {
			s := &p.slots[i]
			s.mu.Lock()
			cc := s.cc
			s.mu.Unlock()
			if cc != nil {
				cc.mu.Lock()
				n := len(cc.pending)
				cc.mu.Unlock()
				if n != 0 {
					return false
				}
			}
		}
		return true
	})
}

func TestServerRestartRecovery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	s := startServerOn(t, Config{}, ln)
	c := newClient(t, Config{})
	mustEcho(t, c, addr, "before", "restart")

	// A call pending when the server goes away fails with ErrConnClosed.
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), addr, Message{Type: msgBlock})
		errc <- err
	}()
	waitFor(t, "call to be pending", func() bool {
		c.mu.RLock()
		p := c.peers[addr]
		c.mu.RUnlock()
		for i := range p.slots {
			sl := &p.slots[i]
			sl.mu.Lock()
			cc := sl.cc
			sl.mu.Unlock()
			if cc != nil {
				cc.mu.Lock()
				n := len(cc.pending)
				cc.mu.Unlock()
				if n > 0 {
					return true
				}
			}
		}
		return false
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-s.done; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrConnClosed) {
		t.Fatalf("pending call: got %v", err)
	}
	// While the server is down calls fail cleanly.
	if _, err := c.Call(ctxT(t), addr, Message{Type: msgEcho}); err == nil {
		t.Fatal("call to a stopped server succeeded")
	}
	// Restart on the same address; the client reconnects.
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot rebind %s: %v", addr, err)
	}
	startServerOn(t, Config{}, ln2)
	waitFor(t, "reconnect", func() bool {
		_, err := c.Call(ctxT(t), addr, Message{Type: msgEcho})
		return err == nil
	})
	for range 10 {
		mustEcho(t, c, addr, "after", "restart")
	}
}

func TestBrokenConnection(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{ConnsPerPeer: 1})
	mustEcho(t, c, s.addr, "a", "b")
	// Break the connection from the server side.
	s.mu.Lock()
	for _, sc := range s.conns {
		if sc != nil {
			sc.shutdown(errors.New("test break"))
		}
	}
	s.mu.Unlock()
	waitFor(t, "client to notice", func() bool {
		p := c.peers[s.addr]
		p.slots[0].mu.Lock()
		defer p.slots[0].mu.Unlock()
		return p.slots[0].cc.isDead()
	})
	mustEcho(t, c, s.addr, "c", "d")
}

func TestBackPressure(t *testing.T) {
	s := startServer(t, Config{MaxInFlight: 2})
	var running, maxRunning atomic.Int32
	release := make(chan struct{})
	s.Handle(32, HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		n := running.Add(1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return Message{}, nil
	}))
	c := newClient(t, Config{ConnsPerPeer: 1})
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Call(ctxT(t), s.addr, Message{Type: 32}); err != nil {
				t.Error(err)
			}
		}()
	}
	waitFor(t, "two handlers running", func() bool { return running.Load() == 2 })
	close(release)
	wg.Wait()
	if m := maxRunning.Load(); m != 2 {
		t.Fatalf("max concurrent handlers %d, want 2", m)
	}
}

// rawConn dials the server, writes the protocol byte and returns the conn.
func rawConn(t *testing.T, addr string, proto byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := nc.Write([]byte{proto}); err != nil {
		t.Fatal(err)
	}
	return nc, bufio.NewReader(nc)
}

func expectErrorResponse(t *testing.T, br *bufio.Reader, id uint64, code uint16) {
	t.Helper()
	f, err := ReadFrame(br, 1<<20)
	if err != nil {
		t.Fatalf("reading error response: %v", err)
	}
	re := decodeError(f.Body)
	if f.Kind != KindError || f.ID != id || re.Code != code {
		t.Fatalf("got kind %d id %d %v, want error id %d code %d", f.Kind, f.ID, re, id, code)
	}
}

func expectClosed(t *testing.T, nc net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("connection still open")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection still open (read timed out)")
	}
}

func TestMalformedInput(t *testing.T) {
	s := startServer(t, Config{MaxFrameSize: 1 << 20})
	c := newClient(t, Config{})
	check := func() {
		t.Helper()
		c2 := newClient(t, Config{})
		mustEcho(t, c2, s.addr, "new", "connection")
		mustEcho(t, c, s.addr, "old", "client")
	}
	mustEcho(t, c, s.addr, "", "")

	t.Run("garbage protocol byte", func(t *testing.T) {
		nc, br := rawConn(t, s.addr, 'X')
		_, _ = nc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		expectClosed(t, nc, br)
		check()
	})
	t.Run("oversized length", func(t *testing.T) {
		nc, br := rawConn(t, s.addr, 'G')
		_, _ = nc.Write(rawFrame(1<<30, KindRequest, msgEcho, 1234, 0, []byte("more bytes that will not be read")))
		expectErrorResponse(t, br, 1234, CodeFrameTooLarge)
		expectClosed(t, nc, br)
		check()
	})
	t.Run("length below minimum", func(t *testing.T) {
		nc, br := rawConn(t, s.addr, 'G')
		_, _ = nc.Write([]byte{0, 0, 0, 1, 0xff})
		expectClosed(t, nc, br)
		check()
	})
	t.Run("header length beyond frame", func(t *testing.T) {
		nc, br := rawConn(t, s.addr, 'G')
		_, _ = nc.Write(rawFrame(MinFrameLength+3, KindRequest, msgEcho, 55, 1000, []byte("abc")))
		expectErrorResponse(t, br, 55, CodeMalformed)
		// The frame boundary was known: the connection keeps serving.
		_, _ = nc.Write(AppendFrame(nil, Frame{Kind: KindRequest, Type: msgEcho, ID: 56, Body: []byte("ok")}))
		f, err := ReadFrame(br, 1<<20)
		if err != nil || f.Kind != KindResponse || f.ID != 56 || string(f.Body) != "ok" {
			t.Fatalf("after malformed frame: %+v %v", f, err)
		}
		check()
	})
	t.Run("unknown type and wrong kind", func(t *testing.T) {
		nc, br := rawConn(t, s.addr, 'G')
		_, _ = nc.Write(AppendFrame(nil, Frame{Kind: KindRequest, Type: 200, ID: 7}))
		expectErrorResponse(t, br, 7, CodeUnknownType)
		_, _ = nc.Write(AppendFrame(nil, Frame{Kind: KindRequest, Type: 0, ID: 8}))
		expectErrorResponse(t, br, 8, CodeUnknownType)
		_, _ = nc.Write(AppendFrame(nil, Frame{Kind: KindResponse, Type: msgEcho, ID: 9}))
		expectErrorResponse(t, br, 9, CodeMalformed)
		_, _ = nc.Write(AppendFrame(nil, Frame{Kind: KindRequest, Type: msgEcho, ID: 10, Header: []byte("h")}))
		f, err := ReadFrame(br, 1<<20)
		if err != nil || f.Kind != KindResponse || f.ID != 10 || string(f.Header) != "h" {
			t.Fatalf("after unknown type: %+v %v", f, err)
		}
		check()
	})
	t.Run("truncated frame then close", func(t *testing.T) {
		nc, _ := rawConn(t, s.addr, 'G')
		_, _ = nc.Write(AppendFrame(nil, Frame{Kind: KindRequest, Type: msgEcho, ID: 1, Body: []byte("abcdef")})[:20])
		_ = nc.Close()
		check()
	})
	t.Run("raft byte without raft layer", func(t *testing.T) {
		nc, br := rawConn(t, s.addr, 'R')
		expectClosed(t, nc, br)
		check()
	})
}

func TestCloseLeaksNothing(t *testing.T) {
	check := checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.Handle(msgEcho, echo)
	s.Handle(msgBlock, block)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	layer := s.RaftLayer(nil)
	accepted := make(chan error, 1)
	go func() {
		_, err := layer.Accept()
		accepted <- err
	}()
	addr := ln.Addr().String()
	c, err := NewClient(Config{ConnsPerPeer: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	for range 10 {
		if _, err := c.Call(ctx, addr, Message{Type: msgEcho, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	// Calls blocked in handlers, idle raw connections, a dial to nowhere.
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Call(ctx, addr, Message{Type: msgBlock})
		}()
	}
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	half, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	_, _ = half.Write([]byte{'G', 0, 0})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := <-accepted; !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Server.Close: %v", err)
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, addr, Message{Type: msgEcho}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after Close: %v", err)
	}
	if err := s.Serve(ln); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
	_ = idle.Close()
	_ = half.Close()
	check()
}

func TestClientCloseDuringDial(t *testing.T) {
	check := checkGoroutines(t)
	// A listener that never accepts: connects complete (backlog) but nothing answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := NewClient(Config{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := c.Call(context.Background(), ln.Addr().String(), Message{Type: msgEcho})
			errc <- err
		}()
	}
	time.Sleep(20 * time.Millisecond) // not synchronisation: the calls may be anywhere
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := <-errc; err == nil {
			t.Fatal("call succeeded")
		}
	}
	check()
}

func TestDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c := newClient(t, Config{DialTimeout: time.Second})
	if _, err := c.Call(ctxT(t), addr, Message{Type: msgEcho}); err == nil {
		t.Fatal("call to closed port succeeded")
	}
}

func TestErrorResponseEncoding(t *testing.T) {
	f := errorFrame(3, 4, 500, "msg")
	if re := decodeError(f.Body); re.Code != 500 || re.Message != "msg" {
		t.Fatalf("%+v", re)
	}
	if re := decodeError([]byte{1}); re.Code != CodeMalformed {
		t.Fatalf("%+v", re)
	}
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], 7)
	if re := decodeError(b[:]); re.Code != 7 || re.Message != "" {
		t.Fatalf("%+v", re)
	}
	_ = io.EOF
}

// TestStalledPeer: a peer that stops reading fills the socket buffers and
// the bounded queue; callers give up when their contexts end, and Close still
// stops everything.
func TestStalledPeer(t *testing.T) {
	check := checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			accepted <- nc
		}
	}()
	c, err := NewClient(Config{QueueSize: 1, ConnsPerPeer: 1})
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 1<<20)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := c.Call(ctx, ln.Addr().String(), Message{Type: msgEcho, Body: body})
			// The first call to give up while its body is being written closes the connection
			// (its body cannot be taken back): the others fail with it or reach their deadline.
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrConnClosed) {
				t.Errorf("got %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("call returned after %v, long after its deadline", d)
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	(<-accepted).Close()
	check()
}
