package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// relay is an AsyncHandler that answers on the reader when the request body is "now", declines
// "worker" (ServeMsg answers it on a worker), and for anything else forwards the request to a
// second server with Client.CallAsync and answers from that call's completion.
type relay struct {
	c       *Client
	next    string
	inline  atomic.Int64 // requests answered by TryServe
	workers atomic.Int64 // requests answered by ServeMsg
	inBurst atomic.Int64 // relayed answers sent within a burst of the client's reader
}

func (r *relay) ServeMsg(ctx context.Context, req Message) (Message, error) {
	r.workers.Add(1)
	return Message{Body: append([]byte("worker:"), req.Body...)}, nil
}

func (r *relay) TryServe(ctx context.Context, req Message, reply Reply) bool {
	switch string(req.Body) {
	case "worker":
		return false
	case "now":
		r.inline.Add(1)
		reply.Send(Message{Body: []byte("now")}, nil)
		return true
	}
	r.inline.Add(1)
	fwd := Message{Type: msgEcho, Body: req.Body}
	if !r.c.CallAsync(ctx, r.next, fwd, time.Minute, &relayed{r: r, reply: reply}) {
		// No connection yet: answer from a goroutine of our own with a blocking call.
		go func() {
			m, err := r.c.Call(ctx, r.next, fwd)
			if err != nil {
				reply.Send(Message{}, err)
				return
			}
			reply.Send(Message{Body: append([]byte("relayed:"), m.Body...)}, nil)
		}()
	}
	return true
}

// relayed completes a relayed call; its answer goes out within the burst of the reader
// delivering the forwarded response when there is one.
type relayed struct {
	r     *relay
	reply Reply
}

func (d *relayed) CallDone(m Message, err error) { d.CallDoneIn(nil, m, err) }

func (d *relayed) CallDoneIn(b *Burst, m Message, err error) {
	if b != nil {
		d.r.inBurst.Add(1)
	}
	if err != nil {
		d.reply.SendIn(b, Message{}, &RemoteError{Code: 101, Message: err.Error()})
		return
	}
	d.reply.SendIn(b, Message{Body: append([]byte("relayed:"), m.Body...)}, nil)
}

func TestAsyncHandler(t *testing.T) {
	back := startServer(t, Config{})
	front := startServer(t, Config{})
	rc := newClient(t, Config{})
	r := &relay{c: rc, next: back.addr}
	front.Handle(msgSink, r)
	c := newClient(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, tc := range []struct{ body, want string }{{"now", "now"}, {"worker", "worker:worker"}, {"x", "relayed:x"}} {
		m, err := c.Call(ctx, front.addr, Message{Type: msgSink, Body: []byte(tc.body)})
		if err != nil || string(m.Body) != tc.want {
			t.Fatalf("%s: got %q, %v; want %q", tc.body, m.Body, err, tc.want)
		}
	}
	// Many concurrent relayed calls, each answered once and with its own body.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			for j := range 50 {
				body := fmt.Sprintf("%d-%d", i, j)
				m, err := c.Call(ctx, front.addr, Message{Type: msgSink, Body: []byte(body)})
				if err != nil || string(m.Body) != "relayed:"+body {
					errs <- fmt.Errorf("%s: got %q, %v", body, m.Body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if r.workers.Load() != 1 || r.inline.Load() != 2+64*50 {
		t.Fatalf("served inline %d, on workers %d", r.inline.Load(), r.workers.Load())
	}
	t.Logf("%d of %d relayed answers sent within a burst", r.inBurst.Load(), 1+64*50)
}

func TestCallAsyncDeclines(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{})
	called := false
	// No connection to the peer yet: declined, done not called.
	if c.CallAsync(context.Background(), s.addr, Message{Type: msgEcho}, time.Second, CallbackFunc(func(Message, error) { called = true })) {
		t.Fatal("CallAsync took a call without a connection")
	}
	// Bulk-lane sizes are declined too.
	if _, err := c.Call(context.Background(), s.addr, Message{Type: msgEcho}); err != nil {
		t.Fatal(err)
	}
	if c.CallAsync(context.Background(), s.addr, Message{Type: msgEcho, Body: make([]byte, bulkFrame)}, time.Second, CallbackFunc(func(Message, error) { called = true })) {
		t.Fatal("CallAsync took a bulk request")
	}
	if called {
		t.Fatal("done called for a declined call")
	}
	_ = c.Close()
	if c.CallAsync(context.Background(), s.addr, Message{Type: msgEcho}, time.Second, CallbackFunc(func(Message, error) {})) {
		t.Fatal("CallAsync took a call after Close")
	}
}

func TestCallAsyncConnectionLoss(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{})
	ctx := context.Background()
	if _, err := c.Call(ctx, s.addr, Message{Type: msgEcho}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	if !c.CallAsync(context.Background(), s.addr, Message{Type: msgBlock}, 0, CallbackFunc(func(_ Message, err error) { done <- err })) {
		t.Fatal("CallAsync declined with a live connection")
	}
	_ = s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrConnClosed) {
			t.Fatalf("got %v, want ErrConnClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no completion after the server closed")
	}
}

func TestCallTimeouts(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{})
	ctx := context.Background()
	if _, err := c.CallTimeout(ctx, s.addr, Message{Type: msgEcho}, time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.CallTimeout(ctx, s.addr, Message{Type: msgBlock}, 100*time.Millisecond)
	if !errors.Is(err, ErrCallTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrCallTimeout", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("timed out after %v, before the timeout", d)
	}
	done := make(chan error, 1)
	if !c.CallAsync(context.Background(), s.addr, Message{Type: msgBlock}, 100*time.Millisecond, CallbackFunc(func(_ Message, err error) { done <- err })) {
		t.Fatal("CallAsync declined with a live connection")
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrCallTimeout) {
			t.Fatalf("got %v, want ErrCallTimeout", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("asynchronous call never timed out")
	}
	// The connection survives timeouts.
	if _, err := c.Call(ctx, s.addr, Message{Type: msgEcho, Body: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
}

// A CallTimeout is bounded while the peer is being dialed, too: a peer whose host does not
// answer SYNs would otherwise hold the call for DialTimeout.
func TestCallTimeoutBoundsDial(t *testing.T) {
	c := newClient(t, Config{DialTimeout: time.Minute})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c.dialHook = func(ctx context.Context, addr string) (net.Conn, error) {
		select { // a dial that hangs, as to an unreachable host
		case <-release:
		case <-ctx.Done():
		}
		return nil, errors.New("unreachable")
	}
	start := time.Now()
	_, err := c.CallTimeout(context.Background(), "192.0.2.1:7000", Message{Type: msgEcho}, 100*time.Millisecond)
	if !errors.Is(err, ErrCallTimeout) {
		t.Fatalf("got %v, want ErrCallTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timed out after %v, want about 100ms", d)
	}
}

// gate answers "open:<id>" by forwarding it with CallAsync (held while the reader serves a
// burst) and opening gate id when the forwarded call completes, and answers "wait:<id>" on a
// worker once gate id is open: a worker waiting for a held request.
type gate struct {
	c     *Client
	next  string
	gates sync.Map // id -> chan struct{}
}

func (g *gate) ch(id string) chan struct{} {
	ch, _ := g.gates.LoadOrStore(id, make(chan struct{}))
	return ch.(chan struct{})
}

func (g *gate) ServeMsg(ctx context.Context, req Message) (Message, error) {
	id := strings.TrimPrefix(string(req.Body), "wait:")
	select {
	case <-g.ch(id):
		return Message{Body: req.Body}, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

func (g *gate) TryServe(ctx context.Context, req Message, reply Reply) bool {
	id, ok := strings.CutPrefix(string(req.Body), "open:")
	if !ok {
		return false
	}
	if !g.c.CallAsync(ctx, g.next, Message{Type: msgEcho, Body: req.Body}, time.Minute, CallbackFunc(func(m Message, err error) {
		close(g.ch(id))
		reply.Send(m, err)
	})) {
		close(g.ch(id))
		reply.Send(Message{Body: req.Body}, nil)
	}
	return true
}

// TestBurstSettlesBeforeBlocking sends bursts in which workers wait for requests the reader
// holds, with room for only two workers: the reader must write what it holds before it waits
// for a worker slot, or nothing moves.
func TestBurstSettlesBeforeBlocking(t *testing.T) {
	back := startServer(t, Config{})
	front := startServer(t, Config{MaxInFlight: 2})
	g := &gate{c: newClient(t, Config{}), next: back.addr}
	front.Handle(msgSink, g)
	// A connection to back exists before the bursts, so that CallAsync takes the requests.
	if _, err := g.c.Call(context.Background(), back.addr, Message{Type: msgEcho}); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", front.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	const rounds = 20
	id := uint64(0)
	for r := range rounds {
		buf := []byte{}
		if r == 0 {
			buf = append(buf, 'G')
		}
		// open, then four workers waiting for it: the third wait finds no free worker slot.
		key := fmt.Sprint(r)
		for i, body := range []string{"open:" + key, "wait:" + key, "wait:" + key, "wait:" + key, "wait:" + key} {
			id++
			_ = i
			buf = AppendFrame(buf, Frame{Kind: KindRequest, Type: msgSink, ID: id, Body: []byte(body)})
		}
		if _, err := nc.Write(buf); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(nc)
		for range 5 {
			f, err := ReadFrame(br, 1<<20)
			if err != nil {
				t.Fatalf("round %d: %v (the reader held requests while blocked?)", r, err)
			}
			if f.Kind != KindResponse {
				t.Fatalf("round %d: frame kind %d: %s", r, f.Kind, f.Body)
			}
		}
	}
}

// TestAbandonedLargeRequestNotSent gives up a large request while it waits in the queue behind
// another one the peer is slow to read: the call returns at its deadline and not a byte of the
// abandoned request reaches the peer, while the connection keeps serving the first request.
func TestAbandonedLargeRequestNotSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := make(chan struct{})
	seen := make(chan []uint64, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		<-start // stall until the second request has been given up
		br := bufio.NewReader(nc)
		var b [1]byte
		if _, err := br.Read(b[:]); err != nil {
			return
		}
		var ids []uint64
		for {
			// The first (32 MiB) request may take long to read on a loaded machine; after it,
			// a quiet half second means nothing else was sent (the abandoned request was queued
			// behind it and would follow at once).
			idle := 500 * time.Millisecond
			if len(ids) == 0 {
				idle = 30 * time.Second
			}
			_ = nc.SetReadDeadline(time.Now().Add(idle))
			f, err := ReadFrame(br, 64<<20)
			if err != nil {
				seen <- ids
				return
			}
			ids = append(ids, f.ID)
			if _, err := nc.Write(AppendFrame(nil, Frame{Kind: KindResponse, Type: f.Type, ID: f.ID})); err != nil {
				seen <- ids
				return
			}
		}
	}()
	c := newClient(t, Config{BulkConnsPerPeer: 1})
	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := c.Call(ctx, ln.Addr().String(), Message{Type: msgEcho, Body: make([]byte, 32<<20)})
		first <- err
	}()
	// Wait until the first request occupies the writer, then queue a second and give it up.
	waitFor(t, "the first request to be pending", func() bool {
		c.mu.RLock()
		p := c.peers[ln.Addr().String()]
		c.mu.RUnlock()
		if p == nil {
			return false
		}
		s := &p.slots[p.small]
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cc == nil {
			return false
		}
		s.cc.mu.Lock()
		defer s.cc.mu.Unlock()
		return len(s.cc.pending) == 1 && s.cc.busy.Load()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	began := time.Now()
	_, err = c.Call(ctx, ln.Addr().String(), Message{Type: msgEcho, Body: make([]byte, 1<<20)})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("abandoned call: %v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("abandoned call returned after %v", d)
	}
	close(start)
	if err := <-first; err != nil {
		t.Fatalf("first call: %v", err)
	}
	ids := <-seen
	if len(ids) != 1 {
		t.Fatalf("peer received requests %v, want only the first", ids)
	}
}
