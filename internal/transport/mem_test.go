package transport

import (
	"context"
	"errors"
	"testing"
)

func TestMemNetwork(t *testing.T) {
	s, err := NewServer(Config{MaxFrameSize: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	s.Handle(msgEcho, echo)
	s.Handle(msgFail, HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		return Message{}, errors.New("plain failure")
	}))
	n := NewMemNetwork()
	n.Register("m1", s)
	var c Caller = n
	ctx := context.Background()
	body := []byte("body")
	resp, err := c.Call(ctx, "m1", Message{Type: msgEcho, Header: []byte("h"), Body: body})
	if err != nil || string(resp.Header) != "h" || string(resp.Body) != "body" || resp.Type != msgEcho {
		t.Fatalf("%+v %v", resp, err)
	}
	body[0] = 'X'
	if string(resp.Body) != "body" {
		t.Fatal("response aliases the request")
	}
	var re *RemoteError
	if _, err := c.Call(ctx, "m1", Message{Type: 99}); !errors.As(err, &re) || re.Code != CodeUnknownType {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := c.Call(ctx, "m1", Message{Type: msgFail}); !errors.As(err, &re) || re.Code != CodeInternal || re.Message != "plain failure" {
		t.Fatalf("failure: %v", err)
	}
	if _, err := c.Call(ctx, "m1", Message{Type: msgEcho, Body: make([]byte, 1<<10)}); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	n.Unregister("m1")
	if _, err := c.Call(ctx, "m1", Message{Type: msgEcho}); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("unregistered: %v", err)
	}
}
