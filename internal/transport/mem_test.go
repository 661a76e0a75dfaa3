package transport

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
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

// As a stream network, MemNetwork carries the real protocol without sockets on a network:
// gridmap calls (small and bulk lanes) and raft connections reach a Server listening on it,
// ports are assigned like the kernel's, and a closed listener's address refuses dials.
func TestMemNetworkStreams(t *testing.T) {
	n := NewMemNetwork()
	ln, err := n.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Listen(ln.Addr().String()); err == nil {
		t.Fatal("two listeners at one address")
	}
	other, err := n.Listen("127.0.0.1:0")
	if err != nil || other.Addr().String() == ln.Addr().String() {
		t.Fatalf("second port: %v %v", other.Addr(), err)
	}
	other.Close()
	if _, err := n.Listen("localhost:1"); err == nil {
		t.Fatal("a host name accepted: addresses must be IPs")
	}

	cfg := Config{Dial: n.Dial}
	s := startServerOn(t, cfg, ln)
	c := newClient(t, cfg)
	mustEcho(t, c, s.addr, "small", "lane")
	mustEcho(t, c, s.addr, "bulk", string(make([]byte, 1<<20)))

	layer := s.RaftLayer(ln.Addr())
	accepted := make(chan error, 1)
	go func() {
		nc, err := layer.Accept()
		if err == nil {
			nc.Close()
		}
		accepted <- err
	}()
	rc, err := layer.Dial(raft.ServerAddress(s.addr), 5*time.Second)
	if err != nil {
		t.Fatalf("raft dial: %v", err)
	}
	rc.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("raft accept: %v", err)
	}

	if _, err := n.Dial(context.Background(), other.Addr().String()); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("dial to a closed listener: %v", err)
	}
	if _, err := layer.Dial(raft.ServerAddress(other.Addr().String()), time.Second); err == nil {
		t.Fatal("raft dial to a closed listener succeeded")
	}
}

// DialFrom dials as one member: a Cut between it and the target refuses new connections and
// breaks the open ones (calls fail instead of hanging), and Mend lets calls through again.
func TestMemNetworkCut(t *testing.T) {
	n := NewMemNetwork()
	ln, err := n.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := startServerOn(t, Config{}, ln)
	c := newClient(t, Config{Dial: n.DialFrom("127.0.0.1:9")})
	mustEcho(t, c, s.addr, "before", "cut")
	n.Cut(s.addr, "127.0.0.1:9")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Call(ctx, s.addr, Message{Type: msgEcho}); err == nil {
		t.Fatal("a call crossed the cut")
	}
	if _, err := n.DialFrom("127.0.0.1:9")(ctx, s.addr); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("dial across the cut: %v", err)
	}
	if _, err := n.DialFrom("127.0.0.1:8")(ctx, s.addr); err != nil {
		t.Fatalf("another member's dial: %v", err)
	}
	n.Mend(s.addr, "127.0.0.1:9")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Call(ctx, s.addr, Message{Type: msgEcho})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call through after Mend: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // the client may hold the failed dial briefly
	}
}
