package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/examples/socorro/generator"
	"github.com/gridmap/gridmap/examples/socorro/gridstore"
	"github.com/gridmap/gridmap/examples/socorro/processor"
)

// Overload degrades to back-pressure: clients posting far more than a small cluster with a small
// submit budget takes get 503s (and send again after Retry-After), every crash a node answered is
// saved and processed, no save fails, and the cluster stays whole all along: no partition lost,
// every member alive in every member's view, the table safe at the end.
func TestOverloadBackPressure(t *testing.T) {
	dump, err := os.ReadFile("../minidump/testdata/test.dmp")
	if err != nil {
		t.Fatal(err)
	}
	const budget = 256 << 10
	nodes := startClusterWith(t, 3, func(i int, c *Config) { c.SubmitBudget = budget })
	var targets []string
	for _, nd := range nodes {
		targets = append(targets, nd.URL())
	}
	sizes, err := generator.NewSizes(generator.Point{P: 0, Size: 100 << 10}, generator.Point{P: 1, Size: 300 << 10})
	if err != nil {
		t.Fatal(err)
	}
	// 32 clients in flight at 200 reports a second (about 40 MB/s): several times what three
	// 256 KiB budgets admit at once. A refused report is sent again until it is taken.
	drv, err := generator.New(generator.Config{Targets: targets, Dumps: [][]byte{dump}, Rate: 200, Concurrency: 32,
		DumpSizes: &sizes, Attempts: 1000, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	// The cluster's health, watched from every member while the load runs.
	var (
		healthMu sync.Mutex
		problems []string
		// suspicions counts the views in which a member was not alive: logged, not failed,
		// since failure detection on a loaded shared machine (LocalTimings, -race) also
		// suspects members with no load at all.
		suspicions int
	)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-tick.C:
			}
			for _, nd := range nodes {
				c := nd.Member().Cluster()
				if lost := c.LostPartitions(); len(lost) > 0 {
					healthMu.Lock()
					problems = append(problems, fmt.Sprintf("%s: partitions lost %v", nd.cfg.Name, lost))
					healthMu.Unlock()
				}
				for _, m := range c.Members() {
					if !m.Alive {
						healthMu.Lock()
						suspicions++
						healthMu.Unlock()
					}
				}
			}
		}
	})
	defer func() { stopWatch(); wg.Wait() }()

	ctx, stop := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- drv.Run(ctx) }()
	waitFor(t, time.Minute, "503s from every node and crashes accepted", func() bool {
		for _, nd := range nodes {
			if nd.Rates().Refused == 0 || nd.Rates().CollectedTotal == 0 {
				return false
			}
		}
		return true
	})
	// Keep the pressure on a little longer: the cluster must stay whole under it.
	time.Sleep(3 * time.Second) // a duration of load, not a wait for a condition
	stop()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("generator: %v", err)
	}
	st := drv.Stats()
	t.Logf("generator: %+v", st)
	if st.Busy == 0 || st.Failed != 0 || st.Accepted == 0 || st.Accepted+st.Discarded != st.Sent {
		t.Errorf("generator %+v: want 503s, every report accepted in the end, no failure", st)
	}

	// Every answered crash is in the grid and processed.
	answered := drv.Answered()
	processed, err := gridmap.GetMap[string, *processor.Crash](nodes[0].Member(), ProcessedMap)
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	waitFor(t, 2*time.Minute, "every answered crash processed", func() bool {
		for _, id := range answered {
			if ok, err := processed.ContainsKey(bg, id); err != nil || !ok {
				return false
			}
		}
		return true
	})
	for _, id := range answered {
		if ok, err := nodes[1].reports.ContainsKey(bg, id); err != nil || !ok {
			t.Errorf("answered crash %s not in %s: %v %v", id, gridstore.ReportsMap, ok, err)
		}
	}
	var refused uint64
	for _, nd := range nodes {
		refused += nd.Rates().Refused
	}
	t.Logf("%d crashes answered and processed; %d submissions refused with 503", len(answered), refused)
	stopWatch()
	wg.Wait()
	healthMu.Lock()
	defer healthMu.Unlock()
	if len(problems) > 0 {
		t.Errorf("partitions were lost under the load (%d observations), first: %v", len(problems), problems[:min(len(problems), 5)])
	}
	t.Logf("views with a member not alive during the load: %d", suspicions)
	waitFor(t, time.Minute, "the cluster safe after the load", func() bool { return nodes[0].Member().Cluster().Safe() })
}
