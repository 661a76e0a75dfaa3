package transport

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{})
	mustEcho(t, c, s.addr, "hdr", "body")
	mustEcho(t, c, s.addr, "", "")
	mustEcho(t, c, s.addr, "only header", "")
	mustEcho(t, c, s.addr, "", "only body")
}

func TestRemoteErrors(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{})
	ctx := ctxT(t)
	_, err := c.Call(ctx, s.addr, Message{Type: msgFail, Body: []byte("nope")})
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != 100 || re.Message != "nope" {
		t.Fatalf("fail handler: got %v", err)
	}
	_, err = c.Call(ctx, s.addr, Message{Type: 99})
	if !errors.As(err, &re) || re.Code != CodeUnknownType {
		t.Fatalf("unknown type: got %v", err)
	}
	_, err = c.Call(ctx, s.addr, Message{Type: msgPanic})
	if !errors.As(err, &re) || re.Code != CodeInternal {
		t.Fatalf("panic: got %v", err)
	}
	mustEcho(t, c, s.addr, "still", "serving")
}

func TestErrorCodeMapping(t *testing.T) {
	errApp := errors.New("app failure")
	s := startServer(t, Config{ErrorCode: func(err error) uint16 {
		if errors.Is(err, errApp) {
			return 150
		}
		return CodeInternal
	}})
	s.Handle(20, HandlerFunc(func(ctx context.Context, req Message) (Message, error) { return Message{}, errApp }))
	c := newClient(t, Config{})
	_, err := c.Call(ctxT(t), s.addr, Message{Type: 20})
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != 150 || re.Message != "app failure" {
		t.Fatalf("got %v", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{ConnsPerPeer: 2})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hdr := []byte{byte(i), byte(i >> 8)}
			body := bytes.Repeat([]byte{byte(i)}, i)
			resp, err := c.Call(ctx, s.addr, Message{Type: msgEcho, Header: hdr, Body: body})
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(resp.Header, hdr) || !bytes.Equal(resp.Body, body) {
				errs <- errors.New("mismatched response")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestHandleTwicePanics: a second handler for a message type is a programming error (two
// services picked the same type), not a silent replacement.
func TestHandleTwicePanics(t *testing.T) {
	s, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := HandlerFunc(func(ctx context.Context, req Message) (Message, error) { return req, nil })
	s.Handle(30, h)
	s.Handle(31, h)
	defer func() {
		if recover() == nil {
			t.Fatal("registering type 30 twice did not panic")
		}
	}()
	s.Handle(30, h)
}
