package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestThreeMembersStartConcurrently(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	eventually(t, 5*time.Second, c.oneLeader)
	for _, tn := range nodes {
		if !tn.LeaseValid() {
			t.Errorf("%s: LeaseValid false in a healthy cluster", tn.LocalID())
		}
		if got := len(tn.Members()); got != 3 {
			t.Errorf("%s: Members() has %d entries", tn.LocalID(), got)
		}
	}
	// The lease holds steadily in a healthy cluster.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		for _, tn := range nodes {
			if !tn.LeaseValid() {
				t.Fatalf("%s: LeaseValid flapped to false in a healthy cluster (last contact %v ago)", tn.LocalID(), time.Since(tn.raft.LastContact()))
			}
		}
	}
	// Watch: the channel of a table closes when a newer one is committed.
	t0, ch := nodes[0].Watch()
	select {
	case <-ch:
		t.Fatal("watch channel closed without a new table")
	default:
	}
	c.add()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("watch channel not closed after a join")
	}
	if t1 := nodes[0].Table(); t1.Epoch <= t0.Epoch {
		t.Fatalf("epoch went from %d to %d", t0.Epoch, t1.Epoch)
	}
	eventually(t, 10*time.Second, c.converged)
}

func TestBootstrapExactlyOneCluster(t *testing.T) {
	for _, size := range []int{3, 5} {
		rounds := 4
		if size == 5 {
			rounds = 2
		}
		if testing.Short() {
			rounds = 1
		}
		for r := range rounds {
			t.Run(fmt.Sprintf("%d-members-round-%d", size, r), func(t *testing.T) {
				c := newTestCluster(t)
				c.voters = 3
				if size == 5 {
					c.voters = 5
				}
				nodes := c.startN(size)
				eventually(t, 5*time.Second, c.oneLeader)
				// Every member is in the same raft configuration.
				want := raftIDs(t, nodes[0])
				if len(want) != size {
					t.Fatalf("raft configuration %v, want %d servers", want, size)
				}
				for _, tn := range nodes[1:] {
					if got := raftIDs(t, tn); fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("%s has configuration %v, %s has %v", tn.LocalID(), got, nodes[0].LocalID(), want)
					}
				}
				eventually(t, 10*time.Second, c.converged)
			})
		}
	}
}

func raftIDs(t *testing.T, tn *testNode) map[raft.ServerID]raft.ServerSuffrage {
	t.Helper()
	f := tn.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	out := map[raft.ServerID]raft.ServerSuffrage{}
	for _, s := range f.Configuration().Servers {
		out[s.ID] = s.Suffrage
	}
	return out
}

func TestJoinAndLeave(t *testing.T) {
	c := newTestCluster(t)
	c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	c.add()
	eventually(t, 10*time.Second, c.converged)

	// A follower leaves, then the leader leaves.
	for _, pick := range []func() *testNode{c.follower, c.leader} {
		tn := pick()
		c.mu.Lock()
		tn.down = true
		c.mu.Unlock()
		if err := leaveDriving(c, tn); err != nil {
			t.Fatalf("%s: Leave: %v", tn.LocalID(), err)
		}
		eventually(t, 10*time.Second, c.converged)
		eventually(t, 5*time.Second, c.oneLeader)
		for _, o := range c.live() {
			for _, m := range o.Members() {
				if m.ID == tn.LocalID() {
					t.Fatalf("%s still lists %s: %+v", o.LocalID(), tn.LocalID(), m)
				}
			}
		}
	}
}

// leaveDriving runs Leave while the member's driver keeps reporting the
// copies it sources, then stops the member.
func leaveDriving(c *testCluster, tn *testNode) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := tn.Leave(ctx)
	tn.shutdown(false)
	return err
}

func TestCrashPromotesAndRestoresBackups(t *testing.T) {
	c := newTestCluster(t)
	c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	victim := c.follower()
	owned := len(victim.Table().Owned(victim.LocalID()))
	if owned == 0 {
		t.Fatal("victim owns nothing")
	}
	c.crash(victim)
	eventually(t, 15*time.Second, c.converged)
}

func TestLeaderCrash(t *testing.T) {
	c := newTestCluster(t)
	c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	old := c.leader()
	if old == nil {
		t.Fatal("no leader")
	}
	c.crash(old)
	eventually(t, 10*time.Second, c.oneLeader)
	eventually(t, 15*time.Second, c.converged)
}

func TestLeaseEndsBeforeReassignment(t *testing.T) {
	c := newTestCluster(t)
	c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	victim := c.follower()
	var observer *testNode
	for _, tn := range c.live() {
		if tn != victim {
			observer = tn
		}
	}
	if !victim.LeaseValid() {
		t.Fatal("victim has no lease before the cut")
	}

	// Sample the victim's lease every millisecond from the cut on.
	leaseLost := make(chan time.Time, 1)
	stopSampling := make(chan struct{})
	defer close(stopSampling)
	cut := time.Now()
	victim.cutOff()
	c.mu.Lock()
	victim.down = true
	c.mu.Unlock()
	go func() {
		for {
			if !victim.LeaseValid() {
				leaseLost <- time.Now()
				return
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()

	// Record when the first table without the victim is committed.
	reassignedCh := make(chan time.Time, 1)
	go func() {
		for {
			tb, ch := observer.Watch()
			if !slices.Contains(tb.Members(), victim.LocalID()) {
				reassignedCh <- time.Now()
				return
			}
			select {
			case <-ch:
			case <-stopSampling:
				return
			}
		}
	}()
	var reassigned time.Time
	select {
	case reassigned = <-reassignedCh:
	case <-time.After(15 * time.Second):
		t.Fatal("the victim's partitions were not reassigned within 15s")
	}
	var lost time.Time
	select {
	case lost = <-leaseLost:
	default:
		t.Fatal("victim still holds its lease after the others reassigned its partitions")
	}
	if !lost.Before(reassigned) {
		t.Fatalf("lease lost at +%v, reassigned at +%v", lost.Sub(cut), reassigned.Sub(cut))
	}
	if d := lost.Sub(cut); d > victim.cfg.Timings.LeaseDuration+500*time.Millisecond {
		t.Errorf("lease lasted %v after the cut, LeaseDuration is %v", d, victim.cfg.Timings.LeaseDuration)
	}
	t.Logf("lease lost at +%v, partitions reassigned at +%v (DeadWait %v)", lost.Sub(cut), reassigned.Sub(cut), victim.cfg.DeadWait())
	eventually(t, 10*time.Second, c.converged)
}

func TestVoterReplacement(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startN(5)
	eventually(t, 10*time.Second, c.converged)
	if got := voterCount(t, nodes[0]); got != 3 {
		t.Fatalf("%d voters, want 3", got)
	}
	// Kill voters one at a time; each time the survivors keep (or regain)
	// a leader, refill the voter seats from non-voters, and reassign.
	for kill := range 3 {
		var victim *testNode
		for _, tn := range c.live() {
			if s := raftIDs(t, tn)[raft.ServerID(tn.LocalID())]; s == raft.Voter && (victim == nil || kill%2 == 0 && tn.IsLeader()) {
				victim = tn
			}
		}
		c.crash(victim)
		live := c.live()
		eventually(t, 10*time.Second, c.oneLeader)
		eventually(t, 15*time.Second, func() error {
			want := min(3, len(live))
			for _, tn := range live {
				if got := voterCount(t, tn); got != want {
					return fmt.Errorf("after %d kills %s sees %d voters, want %d", kill+1, tn.LocalID(), got, want)
				}
			}
			return c.converged()
		})
	}
}

func voterCount(t *testing.T, tn *testNode) int {
	n := 0
	for _, s := range raftIDs(t, tn) {
		if s == raft.Voter {
			n++
		}
	}
	return n
}

func TestReportSyncedStale(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := nodes[0].ReportSynced(ctx, 0, nodes[1].LocalID(), nodes[0].Table().Epoch)
	if !errors.Is(err, ErrStale) {
		t.Fatalf("ReportSynced of a member that is not pending: %v, want ErrStale", err)
	}
}
