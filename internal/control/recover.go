package control

import (
	"github.com/gridmap/gridmap/partition"

	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
)

// Quorum recovery (Node.RecoverQuorum).
//
// Raft needs a majority of its voters to elect a leader and commit. The
// coordinator replaces a dead voter by a live non-voter as soon as the
// member is declared failed, so a cluster survives voters dying one after
// another; but when a majority of the voters dies before that (two of three
// at once), the survivors can never elect a leader again: no table is
// committed, leases lapse, and the cluster stays unavailable. Recovery is an
// operator action, because raft cannot tell dead voters from voters cut off
// by a network partition, and recovering a minority while the majority lives
// on the other side of a partition splits the cluster in two.
//
// The operator calls RecoverQuorum on every surviving member, once failure
// detection on each shows the same live members (Members, Alive). Each
// computes the same configuration from its memberlist view: the live members
// that were in the raft cluster (they gossip InRaft), itself included, with
// the MaxVoters lowest IDs as voters and the others as non-voters. Each then
// shuts its raft instance down, rewrites its stores with raft.RecoverCluster
// to that configuration and starts a new instance on them (the stores are in
// memory; the transport is recreated, since shutting raft down closes it).
// The voters elect a leader among themselves once enough of them recovered;
// the member with the most complete log wins. The new leader then carries on
// as after any election: it adds live members that are not in the
// configuration, and reassigns the dead members' partitions DeadWait after
// it first sees them absent (partitions whose every replica died are lost).
//
// Caveats, as with raft.RecoverCluster: log entries that this member had
// appended but the old cluster had not committed become committed (a table
// the old leader proposed, never acknowledged); and a member that does not
// call RecoverQuorum keeps its old configuration until the new leader adds
// it, which replaces its state with the leader's. Members whose views of
// who is alive differ compute different configurations: wait until they
// agree.

// recoverQuorum implements Node.RecoverQuorum.
func (n *Node) recoverQuorum(ctx context.Context) error {
	if n.closed.Load() {
		return ErrClosed
	}
	return n.raft.replace(func(old *raftInst) (*raftInst, error) {
		conf, err := n.recoveryConfiguration(old.r)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n.giveUpAbsent()
		n.log.Warn("control: recovering raft quorum: restarting raft with the live members", "servers", conf.Servers)
		// Past this point the old instance is gone: a new one is started
		// whatever happens (on the stores as RecoverCluster left them).
		if err := old.r.Shutdown().Error(); err != nil {
			n.log.Warn("control: raft shutdown", "err", err)
		}
		in, err := n.newRaftInst(old.logs, old.snaps, &conf)
		if err != nil {
			n.log.Error("control: quorum recovery failed", "err", err)
			return in, err
		}
		n.log.Info("control: raft restarted with a recovered configuration", "servers", len(conf.Servers))
		return in, nil
	})
}

// recoveryConfiguration checks that r's cluster needs recovering and
// returns the configuration to recover to (see the comment above).
func (n *Node) recoveryConfiguration(r *raft.Raft) (raft.Configuration, error) {
	if r.State() == raft.Leader {
		return raft.Configuration{}, fmt.Errorf("%w: this member is the leader", ErrQuorumIntact)
	}
	if _, id := r.LeaderWithID(); id != "" {
		return raft.Configuration{}, fmt.Errorf("%w: the leader is %s", ErrQuorumIntact, id)
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, err
	}
	cur := f.Configuration().Servers
	if len(cur) == 0 {
		return raft.Configuration{}, fmt.Errorf("%w: never in a raft cluster, nothing to recover", ErrNotMember)
	}
	alive := map[raft.ServerID]bool{raft.ServerID(n.cfg.ID): true}
	var members []raft.Server
	for _, m := range n.ml.Alive() {
		alive[raft.ServerID(m.ID)] = true
		if m.InRaft || m.ID == string(n.cfg.ID) {
			members = append(members, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.TransportAddr)})
		}
	}
	voters, live := 0, 0
	for _, s := range cur {
		if s.Suffrage == raft.Voter {
			voters++
			if alive[s.ID] {
				live++
			}
		}
	}
	if 2*live > voters {
		return raft.Configuration{}, fmt.Errorf("%w: %d of %d voters alive", ErrQuorumIntact, live, voters)
	}
	if !slices.ContainsFunc(members, func(s raft.Server) bool { return s.ID == raft.ServerID(n.cfg.ID) }) {
		members = append(members, raft.Server{ID: raft.ServerID(n.cfg.ID), Address: raft.ServerAddress(n.cfg.TransportAddr)})
	}
	slices.SortFunc(members, func(a, b raft.Server) int { return cmp.Compare(a.ID, b.ID) })
	for i := range members {
		members[i].Suffrage = raft.Nonvoter
		if i < n.cfg.MaxVoters {
			members[i].Suffrage = raft.Voter
		}
	}
	return raft.Configuration{Servers: members}, nil
}

// giveUpAbsent records that the members known now but not alive will not
// come back (the operator's word, by calling RecoverQuorum): if this member
// leads, the partitions only they hold are lost at once instead of waiting
// for them (see noteAwaited).
func (n *Node) giveUpAbsent() {
	alive := map[partition.MemberID]bool{}
	for _, m := range n.ml.Alive() {
		alive[partition.MemberID(m.ID)] = true
	}
	t, dir := n.fsm.snapshot()
	n.givenUpMu.Lock()
	defer n.givenUpMu.Unlock()
	if n.givenUp == nil {
		n.givenUp = map[partition.MemberID]bool{}
	}
	for id := range dir {
		if !alive[id] {
			n.givenUp[id] = true
		}
	}
	for _, id := range t.Members() {
		if !alive[id] {
			n.givenUp[id] = true
		}
	}
}

// givenUpOn reports whether giveUpAbsent recorded id.
func (n *Node) givenUpOn(id partition.MemberID) bool {
	n.givenUpMu.Lock()
	defer n.givenUpMu.Unlock()
	return n.givenUp[id]
}
