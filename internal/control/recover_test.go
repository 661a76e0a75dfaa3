package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// crashAll crashes members concurrently (as at one moment).
func (c *testCluster) crashAll(ns ...*testNode) {
	var wg sync.WaitGroup
	for _, tn := range ns {
		wg.Go(func() { c.crash(tn) })
	}
	wg.Wait()
}

func TestRecoverQuorumRefusedWhenHealthy(t *testing.T) {
	c := newTestCluster(t)
	c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	eventually(t, 5*time.Second, c.oneLeader)
	for _, tn := range []*testNode{c.leader(), c.follower()} {
		before := raftIDs(t, tn)
		if err := tn.RecoverQuorum(context.Background()); !errors.Is(err, ErrQuorumIntact) {
			t.Fatalf("%s: RecoverQuorum on a healthy cluster = %v, want ErrQuorumIntact", tn.LocalID(), err)
		}
		if after := raftIDs(t, tn); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("%s: configuration changed from %v to %v", tn.LocalID(), before, after)
		}
	}
	// One voter down: a majority is still alive, and the survivors elect a
	// leader anyway.
	c.crash(c.leader())
	if err := c.follower().RecoverQuorum(context.Background()); !errors.Is(err, ErrQuorumIntact) {
		t.Fatalf("RecoverQuorum with 2 of 3 voters alive = %v, want ErrQuorumIntact", err)
	}
	eventually(t, 15*time.Second, c.converged)
}

// noQuorum checks that tn cannot commit: no leader known, no lease, and a
// barrier (a commit) fails.
func noQuorum(tn *testNode) error {
	if _, id := tn.raft.LeaderWithID(); id != "" {
		return fmt.Errorf("%s still knows leader %s", tn.LocalID(), id)
	}
	if tn.LeaseValid() {
		return fmt.Errorf("%s still holds its lease", tn.LocalID())
	}
	if err := tn.raft.Barrier(100 * time.Millisecond).Error(); err == nil {
		return fmt.Errorf("%s committed a barrier", tn.LocalID())
	}
	return nil
}

// recoverAll calls RecoverQuorum on the survivors once each sees exactly the
// survivors alive.
func recoverAll(t *testing.T, survivors []*testNode) {
	t.Helper()
	eventually(t, 15*time.Second, func() error {
		for _, tn := range survivors {
			if got := tn.ml.NumAlive(); got != len(survivors) {
				return fmt.Errorf("%s sees %d members alive", tn.LocalID(), got)
			}
		}
		return nil
	})
	for _, tn := range survivors {
		if err := tn.RecoverQuorum(context.Background()); err != nil {
			t.Fatalf("%s: RecoverQuorum: %v", tn.LocalID(), err)
		}
	}
}

// TestRecoverQuorumAfterLosingMajority: three voters, two die at once; the
// survivor is stuck until RecoverQuorum, then leads alone, owns every
// partition, and a fresh member joins it.
func TestRecoverQuorumAfterLosingMajority(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	survivor := c.follower()
	var dead []*testNode
	for _, tn := range nodes {
		if tn != survivor {
			dead = append(dead, tn)
		}
	}
	c.crashAll(dead...)
	// Right after the crash failure detection still counts the dead voters
	// alive: recovery is refused.
	if err := survivor.RecoverQuorum(context.Background()); !errors.Is(err, ErrQuorumIntact) {
		t.Fatalf("RecoverQuorum before the deaths are detected = %v, want ErrQuorumIntact", err)
	}
	eventually(t, 10*time.Second, func() error { return noQuorum(survivor) })
	epoch := survivor.Table().Epoch

	recoverAll(t, []*testNode{survivor})
	eventually(t, 10*time.Second, func() error {
		if !survivor.IsLeader() {
			return errors.New("survivor does not lead")
		}
		return nil
	})
	if ids := raftIDs(t, survivor); len(ids) != 1 || ids[raft.ServerID(survivor.LocalID())] != raft.Voter {
		t.Fatalf("configuration after recovery: %v", ids)
	}
	eventually(t, 10*time.Second, c.converged) // the survivor owns every partition
	if e := survivor.Table().Epoch; e <= epoch {
		t.Fatalf("no table committed after recovery: epoch %d, was %d", e, epoch)
	}
	if err := survivor.RecoverQuorum(context.Background()); !errors.Is(err, ErrQuorumIntact) {
		t.Fatalf("RecoverQuorum on the recovered leader = %v, want ErrQuorumIntact", err)
	}
	fresh := c.add()
	eventually(t, 10*time.Second, c.converged)
	if ids := raftIDs(t, survivor); ids[raft.ServerID(fresh.LocalID())] != raft.Voter {
		t.Fatalf("fresh member is not a voter: %v", ids)
	}
}

// TestRecoverQuorumFiveMembers: five members with three voters; the three
// voters die at once; the two surviving non-voters recover and carry on.
func TestRecoverQuorumFiveMembers(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startN(5)
	eventually(t, 10*time.Second, c.converged)
	eventually(t, 5*time.Second, c.oneLeader)
	ids := raftIDs(t, nodes[0])
	var voters, survivors []*testNode
	for _, tn := range nodes {
		if ids[raft.ServerID(tn.LocalID())] == raft.Voter {
			voters = append(voters, tn)
		} else {
			survivors = append(survivors, tn)
		}
	}
	if len(voters) != 3 || len(survivors) != 2 {
		t.Fatalf("configuration %v", ids)
	}
	c.crashAll(voters...)
	for _, tn := range survivors {
		eventually(t, 10*time.Second, func() error { return noQuorum(tn) })
	}
	recoverAll(t, survivors)
	eventually(t, 15*time.Second, c.oneLeader)
	eventually(t, 15*time.Second, c.converged)
	for _, tn := range survivors {
		got := raftIDs(t, tn)
		want := map[raft.ServerID]raft.ServerSuffrage{}
		for _, s := range survivors {
			want[raft.ServerID(s.LocalID())] = raft.Voter
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: configuration %v, want %v", tn.LocalID(), got, want)
		}
	}
	c.add()
	eventually(t, 15*time.Second, c.converged)
	eventually(t, 5*time.Second, c.oneLeader)
	if got := raftIDs(t, c.leader()); len(got) != 3 || slices.ContainsFunc(voters, func(tn *testNode) bool { _, ok := got[raft.ServerID(tn.LocalID())]; return ok }) {
		t.Fatalf("configuration after the join: %v", got)
	}
}
