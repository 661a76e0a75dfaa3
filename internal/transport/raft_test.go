package transport

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestRaftLayerAcceptDial(t *testing.T) {
	s := startServer(t, Config{})
	adv := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 7000}
	layer := s.RaftLayer(adv)
	if layer.Addr() != adv {
		t.Fatalf("Addr %v", layer.Addr())
	}
	type accepted struct {
		nc  net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		nc, err := layer.Accept()
		acc <- accepted{nc, err}
	}()
	out, err := layer.Dial(raft.ServerAddress(s.addr), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := out.Write([]byte("hello raft")); err != nil {
		t.Fatal(err)
	}
	a := <-acc
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.nc.Close()
	buf := make([]byte, 10)
	_ = a.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(a.nc, buf); err != nil || string(buf) != "hello raft" {
		t.Fatalf("read %q %v", buf, err)
	}
	// And back.
	if _, err := a.nc.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	_ = out.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(out, buf[:4]); err != nil || string(buf[:4]) != "pong" {
		t.Fatalf("read %q %v", buf[:4], err)
	}
	// Gridmap traffic on the same port is unaffected.
	c := newClient(t, Config{})
	mustEcho(t, c, s.addr, "shared", "port")

	// Closing the layer stops Accept but not the server.
	if err := layer.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := layer.Accept(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	mustEcho(t, c, s.addr, "layer", "closed")
	// A raft connection arriving now is closed.
	late, err := layer.Dial(raft.ServerAddress(s.addr), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	_ = late.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := late.Read(buf); err == nil {
		t.Fatal("raft conn to closed layer stays open")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("raft conn to closed layer stays open (timeout)")
	}
	// The already accepted connection belongs to raft and still works.
	if _, err := a.nc.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
}

func TestRaftNetworkTransport(t *testing.T) {
	s1 := startServer(t, Config{})
	s2 := startServer(t, Config{})
	l1 := s1.RaftLayer(nil)
	l2 := s2.RaftLayer(nil)
	// With a nil advertise address, Addr is the listener's once Serve runs.
	waitFor(t, "Serve to register its listener", func() bool {
		return l1.Addr().String() == s1.addr && l2.Addr().String() == s2.addr
	})
	t1 := raft.NewNetworkTransport(l1, 2, 10*time.Second, io.Discard)
	t2 := raft.NewNetworkTransport(l2, 2, 10*time.Second, io.Discard)
	defer t1.Close()
	defer t2.Close()
	go func() {
		for rpc := range t2.Consumer() {
			if req, ok := rpc.Command.(*raft.RequestVoteRequest); ok {
				rpc.Respond(&raft.RequestVoteResponse{Term: req.Term, Granted: true}, nil)
			} else {
				rpc.Respond(nil, errors.New("unexpected"))
			}
		}
	}()
	var resp raft.RequestVoteResponse
	err := t1.RequestVote("s2", raft.ServerAddress(s2.addr), &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}, Term: 7}, &resp)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Granted || resp.Term != 7 {
		t.Fatalf("resp %+v", resp)
	}
}

func TestServerCloseUnblocksRaftAccept(t *testing.T) {
	s := startServer(t, Config{})
	layer := s.RaftLayer(nil)
	errc := make(chan error, 1)
	go func() {
		_, err := layer.Accept()
		errc <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept still blocked after Server.Close")
	}
}
