package transport

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestStatsCountTraffic counts a known exchange: the client's bytes out are the server's bytes
// in, and each side reads one frame per call.
func TestStatsCountTraffic(t *testing.T) {
	var ss, cs Stats
	srv, err := NewServer(Config{Stats: &ss})
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle(7, HandlerFunc(func(_ context.Context, m Message) (Message, error) {
		return Message{Type: 7, Header: m.Header, Body: make([]byte, 100)}, nil
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	cl, err := NewClient(Config{Stats: &cs})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const calls = 5
	for range calls {
		if _, err := cl.Call(context.Background(), ln.Addr().String(), Message{Type: 7, Header: []byte("hdr"), Body: make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	c, s := cs.Snapshot(), ss.Snapshot()
	req, resp := uint64(PrefixSize+3+1000), uint64(PrefixSize+3+100)
	if c.FramesIn != calls || s.FramesIn != calls {
		t.Fatalf("frames in: client %d, server %d, want %d each", c.FramesIn, s.FramesIn, calls)
	}
	if s.BytesIn != calls*req || c.BytesIn != calls*resp {
		t.Fatalf("bytes in: server %d (want %d), client %d (want %d)", s.BytesIn, calls*req, c.BytesIn, calls*resp)
	}
	// The server counts a response once its write returned, which may be after the client
	// read it: poll.
	deadline := time.Now().Add(10 * time.Second)
	for c.BytesOut != s.BytesIn || ss.Snapshot().BytesOut != c.BytesIn {
		if time.Now().After(deadline) {
			t.Fatalf("bytes out: client %d, server %d; in: server %d, client %d", c.BytesOut, ss.Snapshot().BytesOut, s.BytesIn, c.BytesIn)
		}
		time.Sleep(time.Millisecond)
	}
}
