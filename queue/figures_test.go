package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/gridmaptest"
	"github.com/gridmap/gridmap/queue"
)

// A member's queue figures are the items it holds of each queue, as owner and as backup.
func ExampleService_Figures() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)
	jobs, _ := queue.New[string](member.Queues(), "jobs")
	jobs.Offer(ctx, "a")
	jobs.Offer(ctx, "b")
	jobs.Poll(ctx)
	for _, f := range member.Queues().Figures() {
		fmt.Printf("%s: %d items owned, %d backed up\n", f.Name, f.Size, f.BackupSize)
	}
	// Output: jobs: 1 items owned, 0 backed up
}

// Summed over the members, a queue's figures are its size once as owner and once per backup;
// a queue emptied by Clear stays listed with no items, a queue never offered to is not listed.
func TestFiguresCountItemsOnOwnerAndBackup(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3, gridmaptest.WithPartitionCount(31))
	ctx := testContext(t)
	jobs := open[int](t, c.Member(0), "jobs")
	done := open[int](t, c.Member(1), "done")
	open[int](t, c.Member(2), "unused")
	for i := range 5 {
		if err := jobs.Offer(ctx, i); err != nil {
			t.Fatal(err)
		}
		if err := done.Offer(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, ok, err := jobs.Poll(ctx); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	if err := done.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	// listed: the members listing the queue, its owner and its backup.
	type sums struct{ size, backup, listed int }
	want := map[string]sums{"jobs": {3, 3, 2}, "done": {0, 0, 2}}
	var got map[string]sums
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = map[string]sums{}
		for _, m := range c.Members() {
			for _, f := range m.Queues().Figures() {
				s := got[f.Name]
				got[f.Name] = sums{s.size + f.Size, s.backup + f.BackupSize, s.listed + 1}
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue figures summed over the members: %+v, want %+v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
