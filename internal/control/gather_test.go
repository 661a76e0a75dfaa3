package control

import (
	"testing"
	"time"
)

// The coordinator's batching of copy completion reports, with the window
// staged by the test: a report waits for others until the window ends, and
// requests of any other kind do not wait.

func gatherNode() *Node {
	return &Node{reqs: make(chan *request), stop: make(chan struct{})}
}

func req(op uint8) *request { return &request{rpcReq: rpcReq{Op: op}, reply: make(chan error, 1)} }

func TestGatherWaitsForMoreCompletions(t *testing.T) {
	n := gatherNode()
	end := make(chan time.Time)
	var asked time.Duration
	window := func(d time.Duration) <-chan time.Time { asked = d; return end }
	first, second, third := req(reqSync), req(reqSync), req(reqSuspect)
	done := make(chan []*request, 1)
	go func() { done <- n.gather([]*request{first}, window) }()
	// n.reqs is unbuffered: each send completes only if gather is still
	// collecting.
	for _, r := range []*request{second, third} {
		select {
		case n.reqs <- r:
		case got := <-done:
			t.Fatalf("gather returned %d requests without waiting for the window", len(got))
		}
	}
	close(end)
	got := <-done
	if len(got) != 3 || got[0] != first || got[1] != second || got[2] != third {
		t.Fatalf("gathered %v, want the 3 requests in order", got)
	}
	if asked != syncBatchWindow {
		t.Fatalf("window of %v, want %v", asked, syncBatchWindow)
	}
}

func TestGatherDoesNotWaitWithoutCompletions(t *testing.T) {
	n := gatherNode()
	n.reqs = make(chan *request, 4)
	queued := req(reqLeave)
	n.reqs <- queued
	window := func(time.Duration) <-chan time.Time {
		t.Fatal("a batch without a completion report waited")
		return nil
	}
	got := n.gather([]*request{req(reqSuspect)}, window)
	if len(got) != 2 || got[1] != queued {
		t.Fatalf("gathered %v, want the request and the queued one", got)
	}
}

func TestGatherStopsAtTheBatchBound(t *testing.T) {
	n := gatherNode()
	n.reqs = make(chan *request, maxBatch+10)
	for range maxBatch + 10 {
		n.reqs <- req(reqSync)
	}
	window := func(time.Duration) <-chan time.Time {
		t.Fatal("a full batch waited")
		return nil
	}
	if got := n.gather([]*request{req(reqSync)}, window); len(got) != maxBatch {
		t.Fatalf("gathered %d requests, want %d", len(got), maxBatch)
	}
	if left := len(n.reqs); left != 11 {
		t.Fatalf("%d requests left queued, want 11", left)
	}
}

func TestGatherEndsWhenTheNodeStops(t *testing.T) {
	n := gatherNode()
	window := func(time.Duration) <-chan time.Time { return make(chan time.Time) } // never ends
	close(n.stop)
	if got := n.gather([]*request{req(reqSync)}, window); len(got) != 1 {
		t.Fatalf("gathered %d requests, want 1", len(got))
	}
}
