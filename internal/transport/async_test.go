package transport

import (
	"context"
	"errors"
	"fmt"
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
	if !r.c.CallAsync(r.next, fwd, time.Minute, CallbackFunc(func(m Message, err error) {
		if err != nil {
			reply.Send(Message{}, &RemoteError{Code: 101, Message: err.Error()})
			return
		}
		reply.Send(Message{Body: append([]byte("relayed:"), m.Body...)}, nil)
	})) {
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
}

func TestCallAsyncDeclines(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{})
	called := false
	// No connection to the peer yet: declined, done not called.
	if c.CallAsync(s.addr, Message{Type: msgEcho}, time.Second, CallbackFunc(func(Message, error) { called = true })) {
		t.Fatal("CallAsync took a call without a connection")
	}
	// Bulk-lane sizes are declined too.
	if _, err := c.Call(context.Background(), s.addr, Message{Type: msgEcho}); err != nil {
		t.Fatal(err)
	}
	if c.CallAsync(s.addr, Message{Type: msgEcho, Body: make([]byte, bulkFrame)}, time.Second, CallbackFunc(func(Message, error) { called = true })) {
		t.Fatal("CallAsync took a bulk request")
	}
	if called {
		t.Fatal("done called for a declined call")
	}
	_ = c.Close()
	if c.CallAsync(s.addr, Message{Type: msgEcho}, time.Second, CallbackFunc(func(Message, error) {})) {
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
	if !c.CallAsync(s.addr, Message{Type: msgBlock}, 0, CallbackFunc(func(_ Message, err error) { done <- err })) {
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
	if !c.CallAsync(s.addr, Message{Type: msgBlock}, 100*time.Millisecond, CallbackFunc(func(_ Message, err error) { done <- err })) {
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
