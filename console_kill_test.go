package gridmap

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gridmap/gridmap/internal/browsertest"
	"github.com/gridmap/gridmap/internal/console"
	"github.com/gridmap/gridmap/internal/freeport"
)

// consoleCluster reads the cluster as the console at addr shows it (the JSON its page renders).
func consoleCluster(addr string) (console.Cluster, error) {
	var c console.Cluster
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/api/cluster")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&c)
	return c, err
}

// waitConsole polls the console at addr until ok accepts what it shows, or fails after d.
func waitConsole(t *testing.T, addr string, d time.Duration, what string, ok func(console.Cluster) bool) console.Cluster {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := consoleCluster(addr)
		if err == nil && ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not shown within %v (last: %+v, err %v)", what, d, c, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the console, not waiting for a fixed time
	}
}

// TestConsoleDropsKilledMember kills a member process with SIGKILL and watches another member's
// console: the dead member leaves the member list within the failure-detection time (plus the
// coordinator's dead wait), and its partitions show as moved to the survivors.
func TestConsoleDropsKilledMember(t *testing.T) {
	addr, err := freeport.Addr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	gossip := []string{freeGossipAddr(t), freeGossipAddr(t), freeGossipAddr(t)}
	children := startChildrenWith(t, gossip, func(i int) []string {
		if i == 0 {
			return []string{"GRIDMAP_CONSOLE=" + addr}
		}
		return nil
	}, nil)
	before := waitConsole(t, addr, 60*time.Second, "3 members answering, cluster safe", func(c console.Cluster) bool {
		n := 0
		for _, m := range c.Members {
			if m.Alive && m.Error == "" && m.PartitionsOwned > 0 {
				n++
			}
		}
		return n == 3 && c.Safe
	})
	victim := children[2]
	if before.Owners[victim.id] == 0 {
		t.Fatalf("the victim owns no partitions before the kill: %+v", before.Owners)
	}
	// The page too, where a browser is at hand (always in CI): the same JSON, rendered.
	var page context.Context
	if browsertest.Find() != "" || os.Getenv("CI") == "true" {
		page = browsertest.Start(t, 3*time.Minute)
		if err := chromedp.Do(page, chromedp.Navigate("http://"+addr+"/"), chromedp.WaitVisible(chromedp.CSS(`#members tbody tr.alive`))); err != nil {
			t.Fatalf("open the console: %v", err)
		}
		rows := browsertest.WaitPage(t, page, 20*time.Second, "3 alive members on the page",
			`Array.from(document.querySelectorAll('#members tbody tr.alive')).map(r => r.dataset.id)`,
			func(ids []string) bool { return len(ids) == 3 })
		if !slices.Contains(rows, victim.id) {
			t.Fatalf("the page lists %v, not the victim %s", rows, victim.id)
		}
	}

	// The budget: gossip's detection at its slowest (probe, then the longest suspicion), then
	// the coordinator's wait before reassigning (see Timings), and slack for a loaded machine.
	tm := LocalTimings().WithDefaults()
	budget := tm.ProbeInterval + tm.ProbeTimeout +
		time.Duration(tm.SuspicionMult*tm.SuspicionMaxTimeoutMult)*tm.ProbeInterval +
		tm.LeaseDuration*5/4 + tm.RaftLeaderLeaseTimeout + 10*time.Second
	killed := time.Now()
	victim.kill()
	after := waitConsole(t, addr, budget, "the killed member gone and its partitions moved", func(c console.Cluster) bool {
		owned := 0
		for _, m := range c.Members {
			if m.ID == victim.id {
				return false
			}
			owned += m.PartitionsOwned
		}
		return len(c.Members) == 2 && c.Owners[victim.id] == 0 && c.Backups[victim.id] == 0 &&
			owned == c.PartitionCount && c.Owners[children[0].id]+c.Owners[children[1].id] == c.PartitionCount
	})
	t.Logf("gone from the console %v after SIGKILL (budget %v); owners before %v, after %v",
		time.Since(killed).Round(time.Millisecond), budget, before.Owners, after.Owners)
	if page != nil {
		// Within a refresh or two of the API showing it.
		browsertest.WaitPage(t, page, 10*time.Second, "the page without the victim, the survivors owning every partition",
			`Array.from(document.querySelectorAll('#members tbody tr')).map(r => [r.dataset.id, Number(r.querySelector('.owned').textContent)])`,
			func(rows [][]any) bool {
				total := 0.0
				for _, r := range rows {
					if r[0] == victim.id {
						return false
					}
					n, _ := r[1].(float64)
					total += n
				}
				return len(rows) == 2 && total == float64(after.PartitionCount)
			})
	}
	// The victim's partitions go first to whichever survivor held their backups (possibly all
	// to one), then the planner balances the owners: each survivor ends up owning more than
	// before.
	balanced := waitConsole(t, addr, budget, "the survivors sharing the victim's partitions", func(c console.Cluster) bool {
		return len(c.Members) == 2 && c.Owners[children[0].id] > before.Owners[children[0].id] &&
			c.Owners[children[1].id] > before.Owners[children[1].id] &&
			c.Owners[children[0].id]+c.Owners[children[1].id] == c.PartitionCount
	})
	t.Logf("owners once balanced: %v", balanced.Owners)
}
