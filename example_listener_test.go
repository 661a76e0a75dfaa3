package gridmap_test

import (
	"context"
	"fmt"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
)

// A local entry listener runs on the member that owns each entry, in order per key: the
// Socorro processor reacts to new reports where they live, and sweeps LocalEntries for what it
// may have missed (after a failover, or an Overflow notice).
func Example_localEntryListener() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	reports, _ := gridmap.GetMap[string, string](member, "reports")

	events := make(chan dmap.EntryEvent[string, string], 16)
	h, err := reports.AddLocalEntryListener(ctx, func(e dmap.EntryEvent[string, string]) { events <- e },
		dmap.ListenerOptions[string]{IncludeValues: true, QueueSize: 1024})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Remove()

	reports.Put(ctx, "crash-1", "new")
	reports.Put(ctx, "crash-1", "processed")
	reports.Delete(ctx, "crash-1")
	for range 3 {
		e := <-events
		fmt.Printf("%v %s old=%q new=%q\n", e.Kind, e.Key, e.OldValue, e.NewValue)
	}
	// Output:
	// Added crash-1 old="" new="new"
	// Updated crash-1 old="new" new="processed"
	// Removed crash-1 old="processed" new=""
}

// A cluster-wide listener receives the events of every owner; its predicate, registered by
// name on every member, runs on the owners, so only matching events cross the network.
func Example_clusterEntryListener() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	// Every member registers the predicate at start, before anyone listens with it.
	err = dmap.RegisterPredicate(member.Maps(), "min-severity", func(e dmap.EntryEvent[string, int], min int) bool {
		return e.NewValue >= min
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	severities, _ := gridmap.GetMap[string, int](member, "severities")

	events := make(chan dmap.EntryEvent[string, int], 16)
	h, err := severities.AddEntryListener(ctx, func(e dmap.EntryEvent[string, int]) { events <- e },
		dmap.ListenerOptions[string]{IncludeValues: true, Predicate: "min-severity", PredicateArg: 5})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Remove()

	severities.Put(ctx, "crash-1", 3)
	severities.Put(ctx, "crash-2", 7)
	severities.Put(ctx, "crash-3", 9)
	for range 2 {
		e := <-events
		fmt.Println(e.Kind, e.Key, e.NewValue)
	}
	// Output:
	// Added crash-2 7
	// Added crash-3 9
}

// Partition listeners tell an application when partitions move to or from this member, and
// when one is lost (no copy left), so that it can resync from its source of truth.
func Example_partitionListener() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	h, err := member.Cluster().AddPartitionListener(ctx, func(e dmap.PartitionEvent) {
		if e.Kind == dmap.PartitionLost {
			fmt.Println("resync partition", e.Partition)
		}
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Remove()
	fmt.Println("listening")
	// Output: listening
}
