package memnet

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A pair carries bytes both ways, buffers a write nobody reads yet (as a socket does, unlike
// net.Pipe), honours deadlines, and reports the peer's close as EOF.
func TestPipe(t *testing.T) {
	a, b, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	// Buffered: this write returns although b reads nothing yet.
	if err := a.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(make([]byte, 16<<10)); err != nil {
		t.Fatalf("a 16 KiB write did not fit the buffer: %v", err)
	}
	got := make([]byte, 16<<10)
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("%q %v", buf, err)
	}
	if err := a.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := a.Read(buf); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v", err)
	}
	b.Close()
	if err := a.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %v", err)
	}
}

// Dial reaches Accept; a closed listener refuses dials, ends Accept, and closes what was
// dialed but never accepted.
func TestListener(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	closed := 0
	l := NewListener(addr, func() { closed++ })
	if l.Addr() != addr {
		t.Fatal("address")
	}
	ctx := context.Background()
	c, err := l.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(s, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("%q %v", buf, err)
	}
	pending, err := l.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Close()
	if closed != 1 {
		t.Fatalf("onClose ran %d times", closed)
	}
	if _, err := l.Accept(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if _, err := l.Dial(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Close: %v", err)
	}
	if err := pending.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := pending.Read(buf); err != io.EOF {
		t.Fatalf("a connection never accepted was not closed: %v", err)
	}
	c.Close()
	s.Close()
}

// A dialer waiting on a full backlog gives up when its context ends.
func TestListenerBacklogFull(t *testing.T) {
	l := NewListener(&net.TCPAddr{}, nil)
	defer l.Close()
	for range backlog {
		c, err := l.Dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Dial(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial on a full backlog: %v", err)
	}
}

// Cut blocks a pair both ways and closes its tracked connections, and only its own; Mend and
// MendAll restore reachability; a connection closed by its owner is forgotten.
func TestLinks(t *testing.T) {
	var l Links
	if l.Blocked("a", "b") {
		t.Fatal("zero Links blocks")
	}
	a, b, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ab := l.Track("a", "b", a)
	x, y, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	ac := l.Track("a", "c", x)
	defer ac.Close()

	l.Cut("b", "a")
	if !l.Blocked("a", "b") || !l.Blocked("b", "a") || l.Blocked("a", "c") {
		t.Fatal("Cut is not both ways, or cut another pair")
	}
	buf := make([]byte, 1)
	if err := b.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(buf); err != io.EOF {
		t.Fatalf("the cut connection's peer reads %v, want EOF", err)
	}
	if _, err := ac.Write([]byte("x")); err != nil {
		t.Fatalf("the other pair's connection broke: %v", err)
	}
	if _, err := ab.Write([]byte("x")); err == nil {
		t.Fatal("the cut connection still writes")
	}
	p, q, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if l.Track("a", "b", p) != nil {
		t.Fatal("a connection tracked across a cut")
	}
	l.Mend("a", "b")
	if l.Blocked("a", "b") {
		t.Fatal("Mend did not restore the pair")
	}
	l.Cut("a", "c")
	l.MendAll()
	if l.Blocked("a", "c") {
		t.Fatal("MendAll did not restore every pair")
	}
	if err := ac.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	l.mu.Lock()
	left := len(l.conns[pair("a", "c")])
	l.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d closed connections still tracked", left)
	}
}
