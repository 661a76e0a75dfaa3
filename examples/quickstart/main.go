// Command quickstart is gridmap in one screen: two members in one process form a cluster, share
// a map whose entries are written behind to a store, and a local entry listener on each member
// sees the changes of the entries that member owns.
//
//	go run ./examples/quickstart
//
// In production each member is its own process (or pod) and the store is a database; here both
// members share one in-memory store (mapstore/memstore) so the program needs nothing else.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sync/atomic"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// orders is the number of entries the program writes.
const orders = 20

// run starts the two members, writes, reads and flushes, and prints what happened to out.
func run(ctx context.Context, out io.Writer) error {
	// Every member of a cluster configures the same maps. The store stands for the database.
	store := memstore.New()
	maps := map[string]dmap.MapConfig{
		"orders": {Store: store, Persistence: mapstore.Config{WriteDelay: 100 * time.Millisecond}},
	}

	// The first member founds the cluster (no seeds); LocalTimings suit members on one machine.
	first, err := gridmap.Start(ctx, gridmap.Config{Name: "first", Timings: gridmap.LocalTimings(), Maps: maps})
	if err != nil {
		return err
	}
	defer first.Close(ctx)
	// The second joins it through its gossip address.
	second, err := gridmap.Start(ctx, gridmap.Config{
		Name:    "second",
		Seeds:   []string{first.GossipAddr()},
		Timings: gridmap.LocalTimings(),
		Maps:    maps,
	})
	if err != nil {
		return err
	}
	defer second.Close(ctx) // Close hands this member's partitions to the other first
	// WaitSafe: both members own partitions and every partition has its backup.
	if err := first.Cluster().WaitSafe(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "members:", len(first.Cluster().Members()))

	// A local listener on each member: it runs where the entry lives, once per change.
	var seen atomic.Int64
	for _, m := range []*gridmap.Member{first, second} {
		om, err := gridmap.GetMap[string, int](m, "orders")
		if err != nil {
			return err
		}
		h, err := om.AddLocalEntryListener(ctx, func(e dmap.EntryEvent[string, int]) {
			seen.Add(1)
		}, dmap.ListenerOptions[string]{})
		if err != nil {
			return err
		}
		defer h.Remove()
	}

	// Write through one member, read through the other: the map is one map.
	viaFirst, err := gridmap.GetMap[string, int](first, "orders")
	if err != nil {
		return err
	}
	viaSecond, err := gridmap.GetMap[string, int](second, "orders")
	if err != nil {
		return err
	}
	for i := range orders {
		if err := viaFirst.Put(ctx, fmt.Sprintf("order-%02d", i), i*10); err != nil {
			return err
		}
	}
	v, err := viaSecond.Get(ctx, "order-07")
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "order-07 read through the second member:", v)
	size, err := viaSecond.Size(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "entries:", size)

	// Write-behind: the puts were acknowledged before the store saw them; Flush waits until
	// every earlier write is stored.
	if err := viaFirst.Flush(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "entries in the store after Flush:", store.Len())

	// Listeners run on their own goroutines: wait (with the caller's deadline) for all events.
	for seen.Load() < orders {
		select {
		case <-ctx.Done():
			return fmt.Errorf("listeners saw %d of %d events: %w", seen.Load(), orders, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Fprintln(out, "events seen by the local listeners:", seen.Load())
	return nil
}
