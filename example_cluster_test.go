package gridmap_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gridmap/gridmap"
)

// A rolling restart stops a member only once the cluster is safe: every partition backed up,
// nothing moving. Here three members start on one machine (LocalTimings: fast failure
// detection), wait until they are safe, and one leaves; the others restore the backups.
func ExampleCluster_WaitSafe() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := gridmap.Config{Timings: gridmap.LocalTimings()}
	first, err := gridmap.Start(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer first.Close(ctx)
	cfg.Seeds = []string{first.GossipAddr()}
	second, err := gridmap.Start(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Close(ctx)
	third, err := gridmap.Start(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}

	cluster := first.Cluster()
	if err := cluster.WaitSafe(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("members:", len(cluster.Members()), "safe:", cluster.Safe())

	// Restart the third member: stop it, and wait until the others are safe again before
	// touching the next one.
	if err := third.Close(ctx); err != nil {
		fmt.Println(err)
		return
	}
	if err := cluster.WaitSafe(ctx); err != nil {
		fmt.Println(err)
		return
	}
	p := cluster.Partition(0)
	fmt.Println("safe:", cluster.Safe(), "partition 0 has a backup:", len(p.Backups) == 1 && p.Owner != p.Backups[0])
	// Output:
	// members: 3 safe: true
	// safe: true partition 0 has a backup: true
}

// BackupCount left unset keeps one backup of every partition; new(0) asks for none, for data
// that can be rebuilt (a cache) and should not pay for copies. Member identities, here
// Partition.Owner and Member.ID, share one type and compare as they are.
func ExampleConfig_backupCount() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := gridmap.Config{Timings: gridmap.LocalTimings(), BackupCount: new(0)}
	first, err := gridmap.Start(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer first.Close(ctx)
	cfg.Seeds = []string{first.GossipAddr()}
	second, err := gridmap.Start(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Close(ctx)

	cluster := first.Cluster()
	if err := cluster.WaitSafe(ctx); err != nil {
		fmt.Println(err)
		return
	}
	p := cluster.Partition(0)
	fmt.Println("owned by a member:", p.Owner == first.ID() || p.Owner == second.ID(), "backups:", len(p.Backups))
	// Output: owned by a member: true backups: 0
}
