package control

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// An asymmetric partition: the victim keeps gossiping (memberlist reports it
// alive) but raft cannot reach it. The leader must treat it as failed after
// RaftContactTimeout, wait DeadWait after removing it from raft, and only
// then reassign its partitions; the victim's lease must be gone by then.
// While raft still cannot reach it, the probation re-admissions must never
// give it partitions back.
func TestRaftOnlyPartitionIsTreatedAsFailure(t *testing.T) {
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
	if len(victim.Table().Owned(victim.LocalID())) == 0 {
		t.Fatal("victim owns nothing")
	}

	cut := time.Now()
	victim.cutRaft()
	c.mu.Lock()
	victim.down = true
	c.mu.Unlock()

	var lost, reassigned time.Time
	deadline := time.Now().Add(20 * time.Second)
	for reassigned.IsZero() {
		now := time.Now()
		if lost.IsZero() && !victim.LeaseValid() {
			lost = now
		}
		if !slices.Contains(observer.Table().Members(), victim.LocalID()) {
			reassigned = now
		}
		if now.After(deadline) {
			t.Fatalf("the raft-isolated member's partitions were not reassigned within 20s (lease lost: %v)", !lost.IsZero())
		}
		time.Sleep(time.Millisecond)
	}
	if lost.IsZero() || !lost.Before(reassigned) {
		t.Fatalf("lease lost at %v, partitions reassigned at +%v", lost.Sub(cut), reassigned.Sub(cut))
	}
	t.Logf("raft cut at +0: lease lost at +%v, partitions reassigned at +%v (RaftContactTimeout %v, DeadWait %v)",
		lost.Sub(cut).Round(time.Millisecond), reassigned.Sub(cut).Round(time.Millisecond),
		victim.cfg.Timings.RaftContactTimeout, victim.cfg.DeadWait())
	// Memberlist still reports the victim alive: the failure came from raft.
	alive := false
	for _, m := range observer.Members() {
		if m.ID == victim.LocalID() {
			alive = m.Alive
		}
	}
	if !alive {
		t.Fatal("memberlist declared the victim dead: the test did not isolate raft only")
	}
	eventually(t, 15*time.Second, c.converged)

	// Quarantine and probation: re-admissions (after DeadWait, then longer)
	// never hand the victim partitions or a lease while raft cannot reach it.
	for end := time.Now().Add(3 * victim.cfg.DeadWait()); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for _, tn := range c.live() {
			tb := tn.Table()
			if slices.Contains(tb.Members(), victim.LocalID()) {
				t.Fatalf("epoch %d gives the raft-isolated member partitions again", tb.Epoch)
			}
		}
		if victim.LeaseValid() {
			t.Fatal("the raft-isolated member holds a lease")
		}
	}
	if err := c.converged(); err != nil {
		t.Fatal(fmt.Errorf("after the quarantine period: %w", err))
	}
}
