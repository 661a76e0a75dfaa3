package partition_test

import (
	"fmt"

	"github.com/gridmap/gridmap/partition"
)

func ExampleOf() {
	// Equal keys land in the same partition, in every map and on every member.
	p := partition.Of([]byte("crash-2026-11-25-0042"), partition.DefaultCount)
	fmt.Println(p == partition.Of([]byte("crash-2026-11-25-0042"), partition.DefaultCount))
	fmt.Println(p >= 0 && p < partition.DefaultCount)
	fmt.Println(partition.Of([]byte("foobar"), partition.DefaultCount))
	// Output:
	// true
	// true
	// 28
}

func ExamplePlan() {
	cfg := partition.PlanConfig{Backups: 1}
	members := partition.Members{Active: []partition.MemberID{"a", "b", "c"}}

	// First assignment: nothing to copy, every partition is assigned at once.
	table, _, _ := partition.Plan(partition.NewTable(partition.DefaultCount), members, cfg)
	fmt.Println("epoch", table.Epoch, "owned:", len(table.Owned("a")), len(table.Owned("b")), len(table.Owned("c")))

	// "d" joins: Plan asks owners to copy partitions to it.
	members.Active = append(members.Active, "d")
	table, _, _ = partition.Plan(table, members, cfg)
	copies := 0
	for p, a := range table.Partitions {
		for _, pe := range a.Pending {
			// The owner streams partition p to pe.Member, then reports it.
			table, _ = partition.Complete(table, partition.ID(p), pe.Member, members, cfg)
			copies++
		}
	}
	fmt.Println("copies", copies, "owned by d:", len(table.Owned("d")), "held by d:", len(table.Held("d")))
	// Output:
	// epoch 1 owned: 91 90 90
	// copies 135 owned by d: 67 held by d: 135
}
