package control

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// votersReplaced checks that the leader's raft configuration has
// c.voters voters, all of them live members (gone may still be a
// non-voter).
func (c *testCluster) votersReplaced(gone *testNode) error {
	l := c.leader()
	if l == nil {
		return fmt.Errorf("no leader")
	}
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	live := map[raft.ServerID]bool{}
	for _, tn := range c.live() {
		live[raft.ServerID(tn.LocalID())] = true
	}
	voters := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			if !live[s.ID] {
				return fmt.Errorf("voter %s is not alive", s.ID)
			}
			voters++
		}
	}
	if want := min(c.voters, len(live)); voters != want {
		return fmt.Errorf("%d voters, want %d: %v", voters, want, f.Configuration().Servers)
	}
	return nil
}

// pickVoter returns a voter that is (or is not) the leader.
func (c *testCluster) pickVoter(t *testing.T, leader bool) *testNode {
	t.Helper()
	l := c.leader()
	if l == nil {
		t.Fatal("no leader")
	}
	if leader {
		return l
	}
	ids := raftIDs(t, l)
	for _, tn := range c.live() {
		if tn != l && ids[raft.ServerID(tn.LocalID())] == raft.Voter {
			return tn
		}
	}
	t.Fatalf("no voter besides the leader: %v", ids)
	return nil
}

// replaceVoter crashes a voter (the leader or not) and waits until the
// voters are complete again and the partitions reassigned; it returns both
// durations, measured from the crash.
func replaceVoter(t *testing.T, c *testCluster, leader bool, limit time.Duration) (replaced, reassigned time.Duration) {
	t.Helper()
	victim := c.pickVoter(t, leader)
	start := time.Now()
	c.crash(victim)
	eventually(t, limit, func() error { return c.votersReplaced(victim) })
	replaced = time.Since(start)
	eventually(t, limit, c.converged)
	reassigned = time.Since(start)
	return replaced, reassigned
}

// TestDeadVoterReplaced: five members, three voters: a crashed voter (a
// follower, then the leader) is replaced by a live non-voter, and its
// partitions are reassigned.
func TestDeadVoterReplaced(t *testing.T) {
	for _, leader := range []bool{false, true} {
		t.Run(fmt.Sprintf("leader=%v", leader), func(t *testing.T) {
			c := newTestCluster(t)
			c.startN(5)
			eventually(t, 10*time.Second, c.converged)
			eventually(t, 5*time.Second, c.oneLeader)
			replaced, reassigned := replaceVoter(t, c, leader, 15*time.Second)
			t.Logf("LocalTimings: voter replaced %v, partitions reassigned %v after the crash", replaced.Round(time.Millisecond), reassigned.Round(time.Millisecond))
		})
	}
}

// TestVotersDieOneAfterAnother: voters crash one after another, each once
// the previous one was replaced, alternately the leader and not, and a
// fresh member joins after each crash; raft keeps its voters and the cluster
// keeps committing tables.
func TestVotersDieOneAfterAnother(t *testing.T) {
	c := newTestCluster(t)
	c.startN(5)
	eventually(t, 10*time.Second, c.converged)
	eventually(t, 5*time.Second, c.oneLeader)
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	for i := range rounds {
		epoch := c.leader().Table().Epoch
		replaceVoter(t, c, i%2 == 1, 15*time.Second)
		// Leadership may still be settling right after the replacement (a
		// new leader elected, the old one stepping down): ask whichever
		// member leads once there is one.
		eventually(t, 5*time.Second, func() error {
			l := c.leader()
			if l == nil {
				return errors.New("no leader")
			}
			if e := l.Table().Epoch; e <= epoch {
				return fmt.Errorf("round %d: epoch %d, was %d", i, e, epoch)
			}
			return nil
		})
		c.add()
		eventually(t, 15*time.Second, c.converged)
		eventually(t, 5*time.Second, c.oneLeader)
	}
}

// TestMeasureVoterReplacement measures, once per preset, how long replacing a
// crashed voter (the leader or not) and reassigning its partitions takes.
// It is a one-off measurement, not a check: run it with
// GRIDMAP_MEASURE=1 go test -run TestMeasureVoterReplacement -v.
func TestMeasureVoterReplacement(t *testing.T) {
	if os.Getenv("GRIDMAP_MEASURE") == "" {
		t.Skip("set GRIDMAP_MEASURE=1 to measure")
	}
	presets := []struct {
		name string
		t    Timings
	}{{"local", LocalTimings()}, {"default", DefaultTimings()}, {"wan", WANTimings()}}
	for _, p := range presets {
		if f := os.Getenv("GRIDMAP_MEASURE_PRESET"); f != "" && f != p.name {
			continue
		}
		for _, leader := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/leader=%v", p.name, leader), func(t *testing.T) {
				c := newTestCluster(t)
				c.timings = p.t
				c.startN(5)
				eventually(t, 30*time.Second, c.converged)
				eventually(t, 10*time.Second, c.oneLeader)
				replaced, reassigned := replaceVoter(t, c, leader, 120*time.Second)
				t.Logf("%s: voter replaced %v, partitions reassigned %v after the crash", p.name, replaced.Round(time.Millisecond), reassigned.Round(time.Millisecond))
			})
		}
	}
}

// TestUnresponsiveVoterSwappedBeforeDeclaredFailed: a voter whose raft
// traffic stops while it keeps gossiping (so failure detection never
// declares it dead, and RaftContactTimeout is set far away) is swapped for a
// healthy non-voter within a few heartbeat timeouts; it stays in raft as a
// non-voter.
func TestUnresponsiveVoterSwappedBeforeDeclaredFailed(t *testing.T) {
	c := newTestCluster(t)
	c.timings = LocalTimings()
	c.timings.RaftContactTimeout = time.Minute
	c.startN(5)
	eventually(t, 10*time.Second, c.converged)
	eventually(t, 5*time.Second, c.oneLeader)
	victim := c.pickVoter(t, false)
	start := time.Now()
	victim.cutRaft()
	c.mu.Lock()
	victim.down = true // not a live member for votersReplaced
	c.mu.Unlock()
	eventually(t, 10*time.Second, func() error { return c.votersReplaced(victim) })
	t.Logf("voter swapped %v after its raft traffic stopped", time.Since(start).Round(time.Millisecond))
	if s, ok := raftIDs(t, c.leader())[raft.ServerID(victim.LocalID())]; !ok || s != raft.Nonvoter {
		t.Fatalf("victim %s: in configuration %v as %v, want a non-voter", victim.LocalID(), ok, s)
	}
}
