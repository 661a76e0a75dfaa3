package transport

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

const (
	msgEcho  MsgType = 10
	msgBlock MsgType = 11
	msgFail  MsgType = 12
	msgPanic MsgType = 13
	msgSink  MsgType = 14
)

// echo returns the request's header and body.
var echo = HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
	return Message{Header: req.Header, Body: req.Body}, nil
})

// sink discards the request and answers with an empty response.
var sink = HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
	return Message{}, nil
})

// block waits until ctx ends.
var block = HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
	<-ctx.Done()
	return Message{}, ctx.Err()
})

type testServer struct {
	*Server
	addr string
	done chan error // Serve's result
}

func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, cfg, ln)
}

func startServerOn(t testing.TB, cfg Config, ln net.Listener) *testServer {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Handle(msgEcho, echo)
	s.Handle(msgBlock, block)
	s.Handle(msgFail, HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		return Message{}, &RemoteError{Code: 100, Message: string(req.Body)}
	}))
	s.Handle(msgPanic, HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		panic("boom")
	}))
	ts := &testServer{Server: s, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return ts
}

func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// checkGoroutines returns a function that fails t unless the number of
// goroutines falls back to the current one before a deadline.
func checkGoroutines(t testing.TB) func() {
	t.Helper()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("goroutine leak: %d before, %d now\n%s", before, n, buf)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustEcho(t testing.TB, c *Client, addr string, hdr, body string) {
	t.Helper()
	resp, err := c.Call(ctxT(t), addr, Message{Type: msgEcho, Header: []byte(hdr), Body: []byte(body)})
	if err != nil {
		t.Fatalf("echo: %v", err)
	}
	if string(resp.Header) != hdr || string(resp.Body) != body || resp.Type != msgEcho {
		t.Fatalf("echo: got type %d header %q body %q", resp.Type, trunc(resp.Header), trunc(resp.Body))
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%s...(%d bytes)", b[:40], len(b))
	}
	return string(b)
}

var _ = strings.Repeat
