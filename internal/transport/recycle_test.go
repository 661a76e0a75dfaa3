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
