package transport

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// laneConns returns how many connections of the small and the bulk lane to
// addr are live.
func laneConns(c *Client, addr string) (small, bulk int) {
	c.mu.RLock()
	p := c.peers[addr]
	c.mu.RUnlock()
	if p == nil {
		return 0, 0
	}
	n := p.small
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		live := s.cc != nil && !s.cc.isDead()
		s.mu.Unlock()
		if live && i < n {
			small++
		} else if live {
			bulk++
		}
	}
	return small, bulk
}

// TestLanes checks that small requests never dial the bulk lane and that
// large ones travel on it.
func TestLanes(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{ConnsPerPeer: 2})
	for range 10 {
		mustEcho(t, c, s.addr, "h", "small")
	}
	if small, bulk := laneConns(c, s.addr); small != 2 || bulk != 0 {
		t.Fatalf("after small calls: %d small, %d bulk connections; want 2, 0", small, bulk)
	}
	large := string(bytes.Repeat([]byte{'x'}, bulkFrame))
	for range 10 {
		mustEcho(t, c, s.addr, "h", large)
	}
	if small, bulk := laneConns(c, s.addr); small != 2 || bulk != 2 {
		t.Fatalf("after large calls: %d small, %d bulk connections; want 2, 2", small, bulk)
	}
}

// TestMixedSizes runs small and large calls (up to several MiB, on both
// sides of the bulk threshold and of the writer's writev threshold)
// concurrently and checks every echo.
func TestMixedSizes(t *testing.T) {
	s := startServer(t, Config{})
	c := newClient(t, Config{})
	sizes := []int{0, 1, 255, largeBody - 1, largeBody, bulkFrame - PrefixSize - 1, bulkFrame - PrefixSize, bulkFrame, 1 << 20, 3<<20 + 7}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 12 {
				size := sizes[(g*5+i)%len(sizes)]
				hdr := []byte(fmt.Sprintf("g%d-i%d", g, i))
				body := bytes.Repeat([]byte{byte(g*31 + i)}, size)
				resp, err := c.Call(ctxT(t), s.addr, Message{Type: msgEcho, Header: hdr, Body: body})
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(resp.Header, hdr) || !bytes.Equal(resp.Body, body) {
					t.Errorf("g%d i%d size %d: echo differs (header %q, %d body bytes)", g, i, size, resp.Header, len(resp.Body))
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSmallNotBehindLarge checks that small calls complete while a
// connection is stuck in the middle of a large request: the server serves one
// request per connection at a time, its only slot is held by a blocked
// handler, so after reading the next large request it stops reading, and the
// one after that stays half-sent.
func TestSmallNotBehindLarge(t *testing.T) {
	s := startServer(t, Config{MaxInFlight: 1})
	c := newClient(t, Config{ConnsPerPeer: 1, BulkConnsPerPeer: 1})
	mustEcho(t, c, s.addr, "warm", "up")
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s.Handle(40, HandlerFunc(func(ctx context.Context, req Message) (Message, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Message{}, nil
	}))
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	big := func() {
		if _, err := c.Call(ctx, s.addr, Message{Type: 40, Body: make([]byte, 16<<20)}); err != nil {
			t.Error(err)
		}
	}
	wg.Go(big)
	<-started
	wg.Go(big)
	wg.Go(big)
	waitFor(t, "large requests to be queued", func() bool {
		c.mu.RLock()
		p := c.peers[s.addr]
		c.mu.RUnlock()
		b := &p.slots[1]
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.cc == nil {
			return false
		}
		b.cc.mu.Lock()
		defer b.cc.mu.Unlock()
		return len(b.cc.pending) == 3
	})
	for range 20 {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := c.Call(sctx, s.addr, Message{Type: msgEcho, Body: []byte("small")})
		scancel()
		if err != nil || string(resp.Body) != "small" {
			t.Fatalf("small call behind large ones: %q, %v", resp.Body, err)
		}
	}
}
