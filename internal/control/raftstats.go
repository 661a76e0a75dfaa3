package control

// RaftStats is this member's raft state at one moment, for metrics and the console.
type RaftStats struct {
	// State is "Leader", "Follower", "Candidate" or "Shutdown".
	State string
	// Term is the current raft term; LastIndex the index of the last log entry; AppliedIndex
	// the last one applied to the partition table.
	Term, LastIndex, AppliedIndex uint64
}

// RaftStats returns this member's raft state.
func (n *Node) RaftStats() RaftStats {
	r := n.raft.inst().r
	return RaftStats{State: r.State().String(), Term: r.CurrentTerm(), LastIndex: r.LastIndex(), AppliedIndex: r.AppliedIndex()}
}
