package transport

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// The rules of the message network: a member down, a targeted drop, a call never answered, an
// answer lost after the receiver served it, a cut pair; CallTimeout's and CallAsync's contracts
// are Client's.
func TestMemNetworkRules(t *testing.T) {
	s, err := NewServer(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var served atomic.Int64
	s.Handle(msgEcho, HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		served.Add(1)
		return Message{Body: req.Body}, nil
	}))
	n := NewMemNetwork()
	n.Register("m1", s)
	c := n.Caller("m0")
	ctx := context.Background()
	ping := Message{Type: msgEcho, Body: []byte("p")}
	mustReach := func(what string) {
		t.Helper()
		if resp, err := c.Call(ctx, "m1", ping); err != nil || string(resp.Body) != "p" {
			t.Fatalf("%s: %q %v", what, resp.Body, err)
		}
	}
	mustFail := func(what string) {
		t.Helper()
		before := served.Load()
		if _, err := c.Call(ctx, "m1", ping); !errors.Is(err, ErrConnClosed) {
			t.Fatalf("%s: %v, want ErrConnClosed", what, err)
		}
		if c.CallAsync(ctx, "m1", ping, time.Second, CallbackFunc(func(Message, error) { t.Error("called") })) {
			t.Fatalf("%s: CallAsync started a call to an unreachable member", what)
		}
		if served.Load() != before {
			t.Fatalf("%s: the receiver served the call", what)
		}
	}
	mustReach("open network")

	n.SetDown("m1", true)
	mustFail("receiver down")
	n.SetDown("m1", false)
	n.SetDown("m0", true)
	mustFail("caller down")
	n.SetDown("m0", false)
	mustReach("up again")

	n.SetDrop(func(from, to string, typ MsgType) bool { return from == "m0" && to == "m1" && typ == msgEcho })
	mustFail("dropped")
	if _, err := n.Caller("m2").Call(ctx, "m1", ping); err != nil {
		t.Fatalf("the drop rule hit another caller: %v", err)
	}
	n.SetDrop(nil)

	n.Cut("m0", "m1")
	mustFail("cut")
	n.MendAll()
	mustReach("mended")

	n.SetHang(func(from, to string, typ MsgType) bool { return true })
	if _, err := c.CallTimeout(ctx, "m1", ping, 20*time.Millisecond); !errors.Is(err, ErrCallTimeout) {
		t.Fatalf("hung call: %v, want ErrCallTimeout", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = c.CallTimeout(cctx, "m1", ping, time.Minute)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrCallTimeout) {
		t.Fatalf("hung call, caller's deadline: %v, want the context's error", err)
	}
	n.SetHang(nil)

	n.SetAnswered(func(from, to string, typ MsgType) bool { return true })
	before := served.Load()
	if _, err := c.Call(ctx, "m1", ping); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("lost answer: %v, want ErrConnClosed", err)
	}
	if served.Load() != before+1 {
		t.Fatal("lost answer: the receiver did not serve the call")
	}
	n.SetAnswered(nil)

	got := make(chan error, 1)
	if !c.CallAsync(ctx, "m1", ping, time.Second, CallbackFunc(func(resp Message, err error) {
		if err == nil && string(resp.Body) != "p" {
			err = fmt.Errorf("answer %q", resp.Body)
		}
		got <- err
	})) {
		t.Fatal("CallAsync declined a reachable member")
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// A call's handler runs under the server's context, not the caller's: the caller stops waiting
// when its context ends, the receiver goes on (Serving counts it) until the server closes.
func TestMemNetworkServerContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := NewServer(Config{})
		if err != nil {
			t.Fatal(err)
		}
		s.Handle(msgEcho, HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
			<-ctx.Done()
			return Message{}, ctx.Err()
		}))
		n := NewMemNetwork()
		n.Register("m1", s)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := n.Caller("m0").Call(ctx, "m1", Message{Type: msgEcho})
			errc <- err
		}()
		synctest.Wait() // the handler is running
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("caller's cancel: %v", err)
		}
		synctest.Wait()
		if n.Serving() != 1 {
			t.Fatalf("Serving %d after the caller left, want 1: the handler's context is the server's", n.Serving())
		}
		s.Close()
		synctest.Wait()
		if n.Serving() != 0 {
			t.Fatalf("Serving %d after the server closed, want 0", n.Serving())
		}
	})
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
