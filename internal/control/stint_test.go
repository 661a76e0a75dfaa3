package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// A copy belongs to the stint of its target as pending that it began in (partition.Pending.
// Since, partition.CompleteCopy): the report of a copy begun before the stint must not complete
// it. The stint lives in the replicated table, so a coordinator (raft leader) elected after the
// stint began must refuse such a report too, and still accept a copy of the stint.
func TestCopyOfAnEarlierStintRefusedAfterALeaderChange(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	for _, tn := range nodes {
		tn.stopDriving() // copies stay pending until this test reports them
	}
	x := c.add()
	x.stopDriving()
	old := c.leader()
	if old == nil {
		t.Fatal("no leader")
	}
	// A partition with x pending whose owner survives the leader's crash.
	var p partition.ID
	var owner *testNode
	var since uint64
	eventually(t, 10*time.Second, func() error {
		tab := old.Table()
		for i := range tab.Count() {
			id := partition.ID(i)
			j := slices.IndexFunc(tab.Partitions[i].Pending, func(pe partition.Pending) bool { return pe.Member == x.LocalID() })
			o := tab.Owner(id)
			if j < 0 || o == old.LocalID() {
				continue
			}
			for _, tn := range nodes {
				if tn.LocalID() == o {
					p, owner, since = id, tn, tab.Partitions[i].Pending[j].Since
					return nil
				}
			}
		}
		return fmt.Errorf("no partition with %s pending under an owner other than the leader (epoch %d)", x.LocalID(), tab.Epoch)
	})
	if since == 0 {
		t.Fatalf("partition %d: %s pending since epoch 0", p, x.LocalID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	report := func(epoch uint64) error {
		for {
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			err := owner.ReportSynced(rctx, p, x.LocalID(), epoch)
			rcancel()
			if err == nil || errors.Is(err, ErrStale) || ctx.Err() != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond) // no leader yet: try again
		}
	}
	if err := report(since - 1); !errors.Is(err, ErrStale) {
		t.Fatalf("the leader took the report of a copy begun before the stint: %v, want ErrStale", err)
	}

	c.crash(old)
	eventually(t, 10*time.Second, c.oneLeader)
	if l := c.leader(); l == nil || l == old {
		t.Fatal("no new leader")
	}
	if err := report(since - 1); !errors.Is(err, ErrStale) {
		t.Fatalf("after the leader change, the report of a copy begun before the stint: %v, want ErrStale", err)
	}
	tab := owner.Table()
	if slices.Contains(tab.Partitions[p].Replicas, x.LocalID()) {
		t.Fatalf("a copy of an earlier stint made %s a replica of partition %d: %v", x.LocalID(), p, tab.Partitions[p].Replicas)
	}
	j := slices.IndexFunc(tab.Partitions[p].Pending, func(pe partition.Pending) bool { return pe.Member == x.LocalID() })
	if j < 0 {
		t.Fatalf("the new leader dropped %s from partition %d's pending members: %+v", x.LocalID(), p, tab.Partitions[p])
	}
	if got := tab.Partitions[p].Pending[j].Since; got < since {
		t.Fatalf("the new leader moved %s's stint on partition %d back from epoch %d to %d", x.LocalID(), p, since, got)
	}
	// A copy of the stint completes it under the new leader.
	if err := report(tab.Epoch); err != nil {
		t.Fatalf("the report of a copy of the stint: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		if tab := owner.Table(); !slices.Contains(tab.Partitions[p].Replicas, x.LocalID()) {
			return fmt.Errorf("partition %d: %s not a replica: %+v", p, x.LocalID(), tab.Partitions[p])
		}
		return nil
	})
}
