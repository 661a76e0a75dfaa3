package node

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/examples/socorro/processor"
	"github.com/gridmap/gridmap/queue"
)

// In queue mode the collectors offer crash IDs to the work queue and any node's processors take
// them: every crash is processed once, by nodes that do not own it too, and the queue drains.
func TestQueueMode(t *testing.T) {
	dump, err := os.ReadFile("../minidump/testdata/test.dmp")
	if err != nil {
		t.Fatal(err)
	}
	nodes := startClusterWith(t, 3, func(i int, c *Config) {
		c.Mode = ModeQueue
		c.Dumps, c.DumpSizes = [][]byte{dump}, smallDumps(t)
		c.Processors = 2
	})
	// Every node generates until 30 crashes are in; listeners are off, the sweepers asleep
	// (an hour): only the queue's takers can process them.
	if err := nodes[0].Command(context.Background(), "s5"); err != nil {
		t.Fatal(err)
	}
	collected := func() (n uint64) {
		for _, nd := range nodes {
			n += nd.Rates().CollectedTotal
		}
		return n
	}
	waitFor(t, time.Minute, "30 crashes collected", func() bool { return collected() >= 30 })
	if err := nodes[0].Command(context.Background(), "stop"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every generator stopped", func() bool {
		for _, nd := range nodes {
			if nd.GeneratorRate() != 0 {
				return false
			}
		}
		return true
	})
	// Reports in flight when the generators stopped still arrive: wait until the count holds.
	var total uint64
	waitFor(t, 30*time.Second, "the collected count to settle", func() bool {
		n := collected()
		settled := n == total
		total = n
		return settled && n > 0
	})

	m := nodes[1].Member()
	processed, err := gridmap.GetMap[string, *processor.Crash](m, ProcessedMap)
	if err != nil {
		t.Fatal(err)
	}
	work, err := queue.New[string](m.Queues(), WorkQueue)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "every collected crash processed and the queue empty", func() bool {
		n, err := processed.Size(context.Background())
		size, qerr := work.Size(context.Background())
		return err == nil && qerr == nil && uint64(n) == total && size == 0
	})
	var done uint64
	busy := 0
	for _, nd := range nodes {
		r := nd.Rates()
		done += r.ProcessedTotal
		if r.ProcessedTotal > 0 {
			busy++
		}
	}
	if done != total {
		t.Fatalf("%d crashes processed by the nodes' counts, %d collected", done, total)
	}
	if busy < 2 {
		t.Fatalf("only %d node processed crashes: the queue's takers on every node should share them", busy)
	}
}
