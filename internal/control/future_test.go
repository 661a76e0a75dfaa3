package control

import (
	"errors"
	"testing"
	"testing/synctest"
)

// heldFuture is a raft.Future answered when the test says so, or never.
type heldFuture struct{ answer chan error }

func (f heldFuture) Error() error { return <-f.answer }

// TestAwaitRaft checks that a node goroutine waiting on a raft future gets its answer, and is
// let go when the node stops even if raft never answers (raft drops some futures at shutdown).
// In a synctest bubble, "let go" is checked exactly: once every goroutine of the bubble is
// blocked (synctest.Wait), the waiter must have returned, instead of giving it 10 seconds.
func TestAwaitRaft(t *testing.T) {
	synctest.Test(t, testAwaitRaft)
}

func testAwaitRaft(t *testing.T) {
	n := &Node{stop: make(chan struct{})}
	errX := errors.New("raft said no")
	answered := heldFuture{answer: make(chan error, 1)}
	answered.answer <- errX
	if err := n.awaitRaft(answered); err != errX {
		t.Fatalf("answered future: %v, want %v", err, errX)
	}

	dropped := heldFuture{answer: make(chan error)}
	defer close(dropped.answer) // lets the reading goroutine end
	done := make(chan error, 1)
	go func() { done <- n.awaitRaft(dropped) }()
	synctest.Wait()
	select {
	case err := <-done:
		t.Fatalf("awaitRaft returned %v before the node stopped", err)
	default:
	}
	close(n.stop)
	synctest.Wait()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("unanswered future after stop: %v, want ErrClosed", err)
		}
	default:
		t.Fatal("awaitRaft still waits for a future raft never answers after the node stopped")
	}
}
