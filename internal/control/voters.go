package control

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/partition"
)

// Fast voter replacement.
//
// A dead voter costs raft its fault tolerance until it is replaced: with
// three voters, a second death before the replacement loses the majority for
// good (see RecoverQuorum). The coordinator replaces a voter when the member
// is declared failed (memberlist, or RaftContactTimeout of failing
// heartbeats: about 5 to 6 seconds with DefaultTimings). It does not wait
// that long to swap it for a healthy non-voter: once the leader's heartbeats
// to a voter have failed for voterFailAfter, the voter is demoted to
// non-voter and a live non-voter whose heartbeats succeed is promoted in its
// place. Both are raft configuration changes only: the demoted member keeps
// its raft seat and its partitions until it is declared failed (then it is
// removed, and its partitions reassigned after DeadWait, as before), and if
// it was only slow it stays a non-voter, which costs nothing.

// voterFailAfter is how long the leader's heartbeats to a voter must have
// failed before the voter is swapped for a healthy non-voter: twice the raft
// heartbeat timeout (1s with LocalTimings, 2s with DefaultTimings, 4s with
// WANTimings), well above the gaps of a live but busy member (a heartbeat
// fails only when its RPC errs or times out).
func (n *Node) voterFailAfter() time.Duration { return 2 * n.cfg.Timings.RaftHeartbeatTimeout }

// replaceFailingVoters swaps, per round, at most one voter whose heartbeats
// have failed for voterFailAfter for a live, healthy non-voter, while the
// voters left still form a majority that answers. It returns the new server
// list.
func (n *Node) replaceFailingVoters(servers []raft.Server, alive map[partition.MemberID]membership.Member, now time.Time) ([]raft.Server, error) {
	failing := n.health.unreachable(now, n.voterFailAfter(), n.cfg.Timings.RaftHeartbeatTimeout+n.netTimeout)
	if len(failing) == 0 {
		return servers, nil
	}
	bad := func(s raft.Server) bool {
		_, f := failing[partition.MemberID(s.ID)]
		return f
	}
	victim, voters, healthy := -1, 0, 0
	for i, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		switch {
		case !bad(s):
			healthy++
		case victim < 0 && s.ID != raft.ServerID(n.cfg.ID):
			victim = i
		}
	}
	// Without the victim, the healthy voters must be a majority of the
	// voters left, or the demotion could not commit.
	if victim < 0 || 2*healthy <= voters-1 {
		return servers, nil
	}
	_, dir := n.fsm.snapshot()
	probation := n.adm.onProbation()
	spare := -1
	for i, s := range servers {
		id := partition.MemberID(s.ID)
		if _, ok := alive[id]; ok && s.Suffrage != raft.Voter && !bad(s) && !dir[id].Leaving && !dir[id].Removed && !probation[id] {
			spare = i
			break
		}
	}
	if spare < 0 {
		return servers, nil
	}
	v, s := servers[victim], servers[spare]
	if err := n.awaitRaft(n.raft.DemoteVoter(v.ID, 0, raftTimeout)); err != nil {
		return servers, err
	}
	servers[victim].Suffrage = raft.Nonvoter
	if err := n.awaitRaft(n.raft.AddVoter(s.ID, s.Address, 0, raftTimeout)); err != nil {
		return servers, err
	}
	servers[spare].Suffrage = raft.Voter
	n.log.Warn("control: raft heartbeats to a voter fail; replaced it by a healthy non-voter",
		"voter", v.ID, "failing_for", now.Sub(failing[partition.MemberID(v.ID)]).Round(time.Millisecond), "promoted", s.ID)
	return servers, nil
}
