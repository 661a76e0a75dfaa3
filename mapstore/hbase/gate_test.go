package hbase

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestByteGate: the bytes in flight never pass the limit, a request larger than the limit goes
// alone, waiters go in order, and a waiter whose context ends takes nothing.
func TestByteGate(t *testing.T) {
	ctx := context.Background()
	g := newByteGate(100)
	a, err := g.acquire(ctx, 60)
	if err != nil || a != 60 {
		t.Fatalf("acquire 60: %d, %v", a, err)
	}
	// 50 does not fit beside 60: it waits; a later 10 that would fit waits behind it (in order).
	got := make(chan string, 3)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := g.acquire(ctx, 50)
		if err != nil {
			t.Error(err)
			return
		}
		got <- "50"
		g.release(n)
	}()
	waitFor(t, func() bool { return waiters(g) == 1 })
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := g.acquire(ctx, 10)
		if err != nil {
			t.Error(err)
			return
		}
		got <- "10"
		g.release(n)
	}()
	waitFor(t, func() bool { return waiters(g) == 2 })
	// A waiter whose context ends leaves the line and holds nothing.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		_, err := g.acquire(cctx, 30)
		done <- err
	}()
	waitFor(t, func() bool { return waiters(g) == 3 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled acquire: %v", err)
	}
	// The 10 would fit beside the 60 but waits behind the 50.
	if waiters(g) != 2 || g.inUse() != 60 {
		t.Fatalf("after cancel: %d waiters, %d in use", waiters(g), g.inUse())
	}
	g.release(a)
	wg.Wait()
	if len(got) != 2 {
		t.Fatalf("%d of the 2 waiters went", len(got))
	}
	if g.inUse() != 0 {
		t.Fatalf("%d bytes in use after every release", g.inUse())
	}
	// Larger than the limit: takes the whole limit and goes alone.
	big, err := g.acquire(ctx, 1000)
	if err != nil || big != 100 {
		t.Fatalf("acquire 1000: %d, %v", big, err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer tcancel()
	if _, err := g.acquire(tctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire beside an oversized request: %v, want to wait", err)
	}
	g.release(big)
}

// TestByteGateBound: many concurrent users never hold more than the limit together.
func TestByteGateBound(t *testing.T) {
	g := newByteGate(64)
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				want := int64(1 + (i*7+j*13)%40)
				n, err := g.acquire(context.Background(), want)
				if err != nil {
					t.Error(err)
					return
				}
				cur := inFlight.Add(n)
				for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
				}
				inFlight.Add(-n)
				g.release(n)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 64 || p == 0 {
		t.Fatalf("peak in flight %d, want 1..64", p)
	}
	if g.inUse() != 0 {
		t.Fatalf("%d bytes in use at the end", g.inUse())
	}
}

func waiters(g *byteGate) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiters)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
