package control

import "github.com/hashicorp/raft"

// awaitRaft returns f's error once raft answers it, or ErrClosed once the node stops first.
//
// Why not f.Error(): hashicorp/raft (v1.8) leaves some futures unanswered at shutdown. A
// committed entry still queued for the FSM when raft shuts down is dropped with its future
// (runFSM returns without draining its queue), and Apply, Barrier and membership-change futures
// do not watch raft's shutdown. A node goroutine blocked on such a future made Close wait for it
// forever: seen once, a load-tool run whose members never finished closing after the VM had been
// suspended. The goroutine reading the answer ends when raft answers; for a future raft dropped
// it stays blocked on a channel nothing else holds, one per future lost at shutdown.
func (n *Node) awaitRaft(f raft.Future) error {
	answer := make(chan error, 1)
	go func() { answer <- f.Error() }()
	select {
	case err := <-answer:
		return err
	case <-n.stop:
		return ErrClosed
	}
}
