package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestWriterBatching queues frames of many sizes (small ones copied into the
// batch, large ones written with writev) before the writer starts, so batches
// fill and overflow at every offset, and checks the byte stream.
func TestWriterBatching(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	const n = 20000
	c := newWconn(a, n, nil)
	var want []Frame
	for i := range n {
		size := (i * 7919) % 41
		if i%5000 == 4999 {
			size = largeBody + i
		}
		f := Frame{Kind: KindRequest, Type: MsgType(i), ID: uint64(i), Header: bytes.Repeat([]byte{byte(i)}, i%13), Body: bytes.Repeat([]byte{byte(i + 1)}, size)}
		want = append(want, f)
		if err := c.enqueue(context.Background(), outFrame{f: f}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.writeLoop([]byte{'G'})
	}()
	br := bufio.NewReader(b)
	if p, err := br.ReadByte(); err != nil || p != 'G' {
		t.Fatalf("preamble %q %v", p, err)
	}
	for i, w := range want {
		f, err := ReadFrame(br, DefaultMaxFrameSize)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.ID != w.ID || f.Type != w.Type || !bytes.Equal(f.Header, w.Header) || !bytes.Equal(f.Body, w.Body) {
			t.Fatalf("frame %d differs", i)
		}
	}
	c.shutdown(ErrClosed)
	<-done
}

// TestExpiredDeadlineKeepsConnection checks that a call whose deadline has already passed when
// it is written (directly, by the calling goroutine) fails with the deadline and leaves the
// connection usable.
func TestExpiredDeadlineKeepsConnection(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{ConnsPerPeer: 1})
	mustEcho(t, c, s.addr, "h", "b")
	cc, err := c.conn(context.Background(), s.addr, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := c.Call(ctx, s.addr, Message{Type: msgEcho}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	for range 100 {
		mustEcho(t, c, s.addr, "h", "b")
	}
	if cc.isDead() {
		t.Fatal("connection shut down")
	}
}
