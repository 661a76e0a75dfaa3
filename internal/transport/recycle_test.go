package transport

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
)

// A handler registered with InlineRecycling that gives its requests back gets later ones in
// the same buffer, each intact, and the bytes given back are overwritten at once (poisoned in
// tests), so a handler that kept them would see it. A request the handler does not give back,
// and a request for any other handler, stays as it came, whatever is recycled after it.
func TestRecycledRequestBuffers(t *testing.T) {
	const (
		msgRecycle MsgType = 30 // gives every request back
		msgKeep    MsgType = 31 // InlineRecycling too, but keeps every tenth request
		msgWorker  MsgType = 32 // an ordinary handler calling Recycle: no effect
	)
	s := startServer(t, Config{})
	var mu sync.Mutex
	type keptReq struct {
		m    Message
		want string
	}
	var kept []keptReq
	keepIt := func(req Message) {
		mu.Lock()
		kept = append(kept, keptReq{req, fmt.Sprintf("%s|%s", req.Header, req.Body)})
		mu.Unlock()
	}
	bufs := map[*byte]int{} // first byte of each recycled request's buffer -> requests in it
	s.Handle(msgRecycle, InlineRecycling(HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		resp := Message{Body: fmt.Appendf(nil, "%s|%s", req.Header, req.Body)} // a copy
		bufs[&req.Header[0]]++
		req.Recycle()
		if !bytes.Equal(req.Header, bytes.Repeat([]byte{0xEE}, len(req.Header))) {
			return Message{}, fmt.Errorf("recycled header %q not poisoned", req.Header)
		}
		return resp, nil
	})))
	var n int
	s.Handle(msgKeep, InlineRecycling(HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		if n++; n%10 == 0 {
			keepIt(req)
		} else {
			req.Recycle()
		}
		return Message{}, nil
	})))
	s.Handle(msgWorker, HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		keepIt(req)
		req.Recycle()
		return Message{}, nil
	}))

	c := newClient(t, Config{ConnsPerPeer: 1})
	ctx := ctxT(t)
	recycled := 0
	for i := range 300 {
		typ := []MsgType{msgRecycle, msgRecycle, msgRecycle, msgKeep, msgWorker}[i%5]
		hdr, body := fmt.Sprintf("h%03d", i), bytes.Repeat([]byte{byte('a' + i%26)}, 100+i%50)
		resp, err := c.Call(ctx, s.addr, Message{Type: typ, Header: []byte(hdr), Body: body})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if typ == msgRecycle {
			recycled++
			if want := fmt.Sprintf("%s|%s", hdr, body); string(resp.Body) != want {
				t.Fatalf("call %d: handler saw %q, sent %q", i, resp.Body, want)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range kept {
		if got := fmt.Sprintf("%s|%s", k.m.Header, k.m.Body); got != k.want {
			t.Errorf("a request kept by its handler changed afterwards: %q, was %q", got, k.want)
		}
	}
	if len(kept) < 65 {
		t.Fatalf("only %d requests kept", len(kept))
	}
	if len(bufs) > recycled/4 {
		t.Errorf("%d recycled requests came in %d buffers: given-back buffers are not reused", recycled, len(bufs))
	}
}

// recycler is an AsyncHandler for AsyncRecycling: it answers "now" at once, declines "worker"
// (ServeMsg keeps the request), keeps "keep" and answers it later, and answers anything else
// later from a goroutine, from a copy, having given the request back.
type recycler struct {
	mu   sync.Mutex
	kept []keptMsg
	bufs map[*byte]int // first byte of each given-back request's buffer -> requests in it
}

type keptMsg struct {
	m    Message
	want string
}

func (r *recycler) keep(req Message) {
	r.mu.Lock()
	r.kept = append(r.kept, keptMsg{req, fmt.Sprintf("%s|%s", req.Header, req.Body)})
	r.mu.Unlock()
}

func (r *recycler) ServeMsg(ctx context.Context, req Message) (Message, error) {
	r.keep(req)
	req.Recycle() // not the reader's any more: no effect
	return Message{Body: fmt.Appendf(nil, "worker:%s", req.Header)}, nil
}

func (r *recycler) TryServe(ctx context.Context, req Message, reply Reply) bool {
	switch {
	case bytes.HasPrefix(req.Body, []byte("worker")):
		return false
	case bytes.HasPrefix(req.Body, []byte("keep")):
		r.keep(req)
		go reply.Send(Message{Body: fmt.Appendf(nil, "kept:%s", req.Header)}, nil)
		return true
	}
	answer := fmt.Appendf(nil, "%s|%s", req.Header, req.Body) // a copy
	r.mu.Lock()
	r.bufs[&req.Header[0]]++
	r.mu.Unlock()
	req.Recycle()
	if !bytes.Equal(req.Header, bytes.Repeat([]byte{0xEE}, len(req.Header))) {
		reply.Send(Message{}, fmt.Errorf("recycled header %q not poisoned", req.Header))
		return true
	}
	go reply.Send(Message{Body: answer}, nil)
	return true
}

// TestAsyncRecycledRequestBuffers: requests the TryServe of an AsyncRecycling handler gives back
// are read into one buffer over and over, and are answered right although the answer goes out
// after the buffer was reused; requests it keeps, declines (served by ServeMsg on a worker) or
// answers at once stay as they came, whatever is recycled after them.
func TestAsyncRecycledRequestBuffers(t *testing.T) {
	const msgAsync MsgType = 33
	s := startServer(t, Config{})
	r := &recycler{bufs: map[*byte]int{}}
	s.Handle(msgAsync, AsyncRecycling(r))
	c := newClient(t, Config{ConnsPerPeer: 1})
	ctx := ctxT(t)
	recycled, keptWant := 0, 0
	for i := range 400 {
		kind := "x"
		switch i % 22 {
		case 20:
			kind = "keep"
			keptWant++
		case 21:
			kind = "worker"
			keptWant++
		}
		hdr := fmt.Sprintf("h%03d", i)
		body := append([]byte(kind), bytes.Repeat([]byte{byte('a' + i%26)}, 100+i%50)...)
		resp, err := c.Call(ctx, s.addr, Message{Type: msgAsync, Header: []byte(hdr), Body: body})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		want := map[string]string{"keep": "kept:" + hdr, "worker": "worker:" + hdr}[kind]
		if kind == "x" {
			recycled++
			want = fmt.Sprintf("%s|%s", hdr, body)
		}
		if string(resp.Body) != want {
			t.Fatalf("call %d: answer %q, want %q", i, resp.Body, want)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.kept {
		if got := fmt.Sprintf("%s|%s", k.m.Header, k.m.Body); got != k.want {
			t.Errorf("a request kept by its handler changed afterwards: %q, was %q", got, k.want)
		}
	}
	if len(r.kept) != keptWant {
		t.Fatalf("%d requests kept, want %d", len(r.kept), keptWant)
	}
	if len(r.bufs) > recycled/4 {
		t.Errorf("%d recycled requests came in %d buffers: given-back buffers are not reused", recycled, len(r.bufs))
	}
}
