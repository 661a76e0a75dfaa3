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

	"github.com/gridmap/gridmap/partition"
)

// TestLostPartitionsMarkedAndReset kills the owner and the backup of some
// partitions at once (Backups 1) and checks that the committed table marks
// exactly those partitions lost, that ResetLost clears the marks, and that
// with RecreateLost they are only dated. Four members, so that raft keeps
// its majority: a voter and the non-voter die.
func TestLostPartitionsMarkedAndReset(t *testing.T) {
	for _, recreate := range []bool{false, true} {
		t.Run(fmt.Sprintf("RecreateLost=%v", recreate), func(t *testing.T) {
			c := newTestCluster(t)
			c.tune = func(cfg *Config) { cfg.Plan.RecreateLost = recreate }
			c.startN(4)
			eventually(t, 10*time.Second, c.converged)
			eventually(t, 5*time.Second, c.oneLeader)
			leader := c.leader()
			var voter, nonVoter *testNode
			voters := raftIDs(t, leader)
			for _, tn := range c.live() {
				switch {
				case tn == leader:
				case voters[raft.ServerID(tn.LocalID())] == raft.Voter:
					voter = tn
				default:
					nonVoter = tn
				}
			}
			if voter == nil || nonVoter == nil {
				t.Fatalf("setup: want a voter and a non-voter besides the leader, configuration %v", voters)
			}
			victims := []*testNode{voter, nonVoter}
			before := leader.Table()
			dead := []partition.MemberID{victims[0].LocalID(), victims[1].LocalID()}
			var want []partition.ID
			for p, a := range before.Partitions {
				if !slices.ContainsFunc(a.Replicas, func(m partition.MemberID) bool { return !slices.Contains(dead, m) }) {
					want = append(want, partition.ID(p))
				}
			}
			if len(want) == 0 {
				t.Fatalf("setup: no partition held only by %v", dead)
			}
			var wg sync.WaitGroup
			for _, v := range victims {
				wg.Go(func() { c.crash(v) })
			}
			wg.Wait()

			// The loss is marked in a table of its own epoch, on every
			// survivor, and the partitions are assigned afresh.
			eventually(t, 20*time.Second, func() error {
				if err := c.converged(); err != nil {
					return err
				}
				for _, tn := range c.live() {
					if err := checkLost(tn.Table(), before.Epoch, want, !recreate); err != nil {
						return fmt.Errorf("%s: %w", tn.LocalID(), err)
					}
				}
				return nil
			})
			marked := leader.Table()
			if recreate {
				return
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			follower := c.follower()
			if err := follower.ResetLost(ctx, []partition.ID{partition.ID(c.partCnt)}); !errors.Is(err, ErrNoPartition) {
				t.Fatalf("ResetLost of a partition out of range: %v, want ErrNoPartition", err)
			}
			// One partition, then the rest.
			if err := follower.ResetLost(ctx, want[:1]); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, func() error {
				if got := leader.Table().Lost(); !slices.Equal(got, want[1:]) {
					return fmt.Errorf("lost after resetting %d: %v, want %v", want[0], got, want[1:])
				}
				return nil
			})
			if err := follower.ResetLost(ctx, nil); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, func() error {
				for _, tn := range c.live() {
					tb := tn.Table()
					if err := checkLost(tb, before.Epoch, want, false); err != nil {
						return fmt.Errorf("%s after reset: %w", tn.LocalID(), err)
					}
					for _, p := range want {
						if got, was := tb.Partitions[p].LostAt, marked.Partitions[p].LostAt; got != was {
							return fmt.Errorf("%s: partition %d LostAt %d after reset, was %d", tn.LocalID(), p, got, was)
						}
					}
				}
				return nil
			})
			// Nothing left to reset: a no-op that still answers.
			if err := follower.ResetLost(ctx, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkLost checks that exactly the partitions in want carry a LostAt
// after epoch (and no later than the table's epoch), marked Lost as
// wantMark says, and that the others carry no mark.
func checkLost(tb *partition.Table, epoch uint64, want []partition.ID, wantMark bool) error {
	if err := tb.Validate(); err != nil {
		return err
	}
	for p, a := range tb.Partitions {
		if !slices.Contains(want, partition.ID(p)) {
			if a.Lost || a.LostAt != 0 {
				return fmt.Errorf("epoch %d: partition %d not lost but marked %d/%v", tb.Epoch, p, a.LostAt, a.Lost)
			}
			continue
		}
		if a.LostAt <= epoch || a.LostAt > tb.Epoch || a.Lost != wantMark {
			return fmt.Errorf("epoch %d: lost partition %d marked LostAt %d Lost %v, want LostAt in (%d, %d], Lost %v",
				tb.Epoch, p, a.LostAt, a.Lost, epoch, tb.Epoch, wantMark)
		}
	}
	return nil
}

// Members whose process may still be there (their address answers, with their own ID, though
// gossip and raft lost them: a stopped process or a network cut looks the same from the
// leader) are waited for: the partitions only they hold keep them as replicas, unmarked, for
// LostGrace, and only then are marked lost. (Members whose address refuses connections are
// lost at once: TestLostPartitionsMarkedAndReset.)
func TestLostWaitsForMembersThatMayReturn(t *testing.T) {
	c := newTestCluster(t)
	const grace = 6 * time.Second
	c.tune = func(cfg *Config) { cfg.LostGrace = grace }
	c.startN(4)
	eventually(t, 10*time.Second, c.converged)
	eventually(t, 5*time.Second, c.oneLeader)
	leader := c.leader()
	var voter, nonVoter *testNode
	voters := raftIDs(t, leader)
	for _, tn := range c.live() {
		switch {
		case tn == leader:
		case voters[raft.ServerID(tn.LocalID())] == raft.Voter:
			voter = tn
		default:
			nonVoter = tn
		}
	}
	if voter == nil || nonVoter == nil {
		t.Fatalf("setup: want a voter and a non-voter besides the leader, configuration %v", voters)
	}
	before := leader.Table()
	gone := []partition.MemberID{voter.LocalID(), nonVoter.LocalID()}
	var want []partition.ID
	for p, a := range before.Partitions {
		if !slices.ContainsFunc(a.Replicas, func(m partition.MemberID) bool { return !slices.Contains(gone, m) }) {
			want = append(want, partition.ID(p))
		}
	}
	if len(want) == 0 {
		t.Fatalf("setup: no partition held only by %v", gone)
	}
	// Their control planes stop (gossip, raft); their transports keep answering the probe.
	c.mu.Lock()
	voter.down, nonVoter.down = true, true
	c.mu.Unlock()
	start := time.Now()
	for _, tn := range []*testNode{voter, nonVoter} {
		tn.stopOnce.Do(func() {
			close(tn.drvStop)
			<-tn.drvDone
			tn.Close()
		})
	}
	t.Cleanup(func() {
		for _, tn := range []*testNode{voter, nonVoter} {
			tn.srv.Close()
			tn.cli.Close()
		}
	})

	// The other partitions fail over; the ones only they hold wait, unmarked.
	eventually(t, 20*time.Second, func() error {
		tb := leader.Table()
		for p, a := range tb.Partitions {
			waiting := slices.Contains(want, partition.ID(p))
			if a.Lost || a.LostAt != 0 {
				return fmt.Errorf("epoch %d: partition %d marked lost %v/%d after %v", tb.Epoch, p, a.Lost, a.LostAt, time.Since(start))
			}
			holdsGone := slices.ContainsFunc(a.Replicas, func(m partition.MemberID) bool { return slices.Contains(gone, m) })
			if waiting && (!slices.Equal(a.Replicas, before.Partitions[p].Replicas) || len(a.Pending) > 0) {
				return fmt.Errorf("epoch %d: waiting partition %d is %+v, was %v", tb.Epoch, p, a, before.Partitions[p].Replicas)
			}
			if !waiting && holdsGone {
				return fmt.Errorf("epoch %d: partition %d still lists a vanished member: %v", tb.Epoch, p, a.Replicas)
			}
		}
		return nil
	})
	if time.Since(start) >= grace {
		t.Fatalf("the failover took %v, beyond LostGrace %v: the test cannot tell waiting from losing", time.Since(start), grace)
	}
	// Once LostGrace has passed, they are lost.
	eventually(t, grace+20*time.Second, func() error {
		return checkLost(leader.Table(), before.Epoch, want, true)
	})
	if d := time.Since(start); d < grace {
		t.Fatalf("partitions marked lost %v after the members vanished, before LostGrace %v", d, grace)
	}
}
