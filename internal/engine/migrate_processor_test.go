package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// registerLog registers on s "log", a partition processor that appends its argument to a log in
// its map (key "n" the next index, key "i<index>" each entry, both written in one step) and
// returns the index it appended at. ran, if not nil, is told of every run (not of an answer
// given from the partition's memory of it).
func registerLog(t *testing.T, s *Service, ran func(self partition.MemberID, arg string)) {
	t.Helper()
	err := s.RegisterPartitionProcessor("log", func(_ context.Context, v *PartitionView, arg []byte) ([]byte, error) {
		var n uint64
		if b, ok := v.Get([]byte("n")); ok {
			n = binary.BigEndian.Uint64(b)
		}
		v.Set(fmt.Appendf(nil, "i%d", n), append([]byte(nil), arg...))
		v.Set([]byte("n"), binary.BigEndian.AppendUint64(nil, n+1))
		if ran != nil {
			ran(s.self, string(arg))
		}
		return binary.BigEndian.AppendUint64(nil, n), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readLog returns the log of partition p on member id as its records hold it, and a
// description of what breaks its layout (an entry missing below "n", one at or beyond it: a
// processor applied in part), or "".
func readLog(c *cluster, id partition.MemberID, p partition.ID) ([]string, string) {
	pt := c.Svcs[id].parts[p]
	pt.mu.RLock()
	defer pt.mu.RUnlock()
	var n uint64
	if r := pt.rs.get("log", "n", 0); r.ok {
		n = binary.BigEndian.Uint64(r.value)
	}
	log := make([]string, n)
	var bad []string
	for r := range pt.rs.all("log") {
		if r.key == "n" {
			continue
		}
		var i uint64
		if _, err := fmt.Sscanf(r.key, "i%d", &i); err != nil || i >= n {
			bad = append(bad, fmt.Sprintf("entry %q beyond the log's length %d", r.key, n))
			continue
		}
		log[i] = string(r.value)
	}
	for i, e := range log {
		if e == "" {
			bad = append(bad, fmt.Sprintf("entry %d of %d missing", i, n))
		}
	}
	return log, strings.Join(bad, "; ")
}

// Partition processors race a migration: a member joins while writers run processors on every
// partition, so partitions are copied to it (as owner or backup) while processors keep
// appending, and then handed off. The end of each copy is held back until processors have run
// on partitions being copied, and every fourth answer on its way back is lost, so that the
// router retries (before, during and across the hand-offs). One probe is placed exactly: it
// runs on the old owner of a partition moving to the joiner, its answer is held until the
// joiner owns the partition and then lost, so its retry is answered by the new owner, which
// must answer from the memory the copy brought instead of running it again.
//
// Afterwards, on every replica of the new table: each acknowledged append is in its partition's
// log exactly once, at the index its caller was told; no processor is applied in part; the
// replicas are identical; and no call failed (promise 4).
func TestPartitionProcessorsRaceMigration(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *Config) { cfg.MigrationChunkSize = 64 })
	var runsMu sync.Mutex
	runs := map[string][]partition.MemberID{} // arg -> the members that ran it
	ran := func(self partition.MemberID, arg string) {
		runsMu.Lock()
		runs[arg] = append(runs[arg], self)
		runsMu.Unlock()
	}
	for _, id := range c.Active {
		registerLog(t, c.Svcs[id], ran)
	}
	ctx := t.Context()
	parts := testPartitions
	prober := c.Svc(2) // the probe's member: no writer calls from it

	type ack struct {
		p   partition.ID
		arg string
		idx uint64
	}
	var (
		mu     sync.Mutex
		acked  []ack
		errs   []error
		raced  atomic.Int64 // appends acknowledged on a partition being copied to the joiner
		joiner atomic.Value // partition.MemberID, once it started
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const writers = 8
	for w := range writers {
		m := c.Svc(w%2).mustOpen(t, "log")
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := partition.ID((i*writers + w) % parts)
				arg := fmt.Sprintf("w%d-%d", w, i)
				tab, _ := c.Coord.Watch()
				j, _ := joiner.Load().(partition.MemberID)
				copying := j != "" && tab.IsPending(p, j)
				res, err := m.ExecutePartition(ctx, "log", p, []byte(arg))
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("append %s to partition %d: %w", arg, p, err))
				} else {
					acked = append(acked, ack{p, arg, binary.BigEndian.Uint64(res)})
				}
				mu.Unlock()
				if err == nil && copying {
					raced.Add(1)
				}
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("waited 30s for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("200 appends before the join", func() bool { return count() >= 200 })
	before, _ := c.Coord.Watch()

	// The joiner, and the network's rules: hold back the end of each copy to it until the probe
	// ran and processors ran on partitions being copied (or 10 s passed); hold the probe's
	// answer until the joiner owns its partition, then lose it; lose every fourth other answer.
	j := c.Start()
	registerLog(t, j, ran)
	joiner.Store(j.self)
	const racedEnough = 30
	var (
		probePart                atomic.Int32 // the probe's partition, once chosen
		probeArmed, probeServed  atomic.Bool
		probeLost, probeOnJoiner atomic.Bool
		ops, lost, lostCopying   atomic.Int64
		gate                     = time.Now().Add(10 * time.Second)
	)
	c.Net.SetAnswered(func(from, to string, typ transport.MsgType) bool {
		switch {
		case typ == msgSyncEnd && to == string(j.self):
			for (raced.Load() < racedEnough || !probeServed.Load()) && time.Now().Before(gate) {
				time.Sleep(time.Millisecond)
			}
		case typ == msgOp && from == string(prober.self):
			if !probeArmed.CompareAndSwap(true, false) {
				return false
			}
			if to == string(j.self) {
				probeOnJoiner.Store(true) // the hand-off came first: the probe proves nothing
				return false
			}
			probeServed.Store(true)
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if tab, _ := c.Coord.Watch(); tab.Owner(partition.ID(probePart.Load())) == j.self {
					probeLost.Store(true)
					return true
				}
				time.Sleep(time.Millisecond)
			}
			return false
		case typ == msgOp:
			if ops.Add(1)%4 != 0 {
				return false
			}
			lost.Add(1)
			tab, _ := c.Coord.Watch()
			for p := range tab.Partitions {
				if tab.IsPending(partition.ID(p), j.self) {
					lostCopying.Add(1)
					break
				}
			}
			return true
		}
		return false
	})
	c.Replan(nil)

	// The probe: a partition the joiner is to own, owned now by a member other than the
	// prober (whose own partitions it would serve without the network).
	planned, _ := c.Coord.Watch()
	probeP := partition.ID(-1)
	for p := range parts {
		pid := partition.ID(p)
		if asOwner, pending := pendingRole(planned, pid, j.self); asOwner && pending && planned.Owner(pid) != prober.self {
			probeP = pid
			break
		}
	}
	if probeP < 0 {
		t.Fatal("no partition moves to the joiner from a member other than the prober")
	}
	probePart.Store(int32(probeP))
	probeArmed.Store(true)
	res, err := prober.mustOpen(t, "log").ExecutePartition(ctx, "log", probeP, []byte("probe"))
	if err != nil {
		t.Fatalf("the probe, retried across the hand-off: %v", err)
	}
	probeIdx := binary.BigEndian.Uint64(res)

	after := c.WaitStable()
	n := count()
	waitFor("200 appends after the hand-offs", func() bool { return count() >= n+200 })
	close(stop)
	wg.Wait()
	c.Net.SetAnswered(nil)

	if len(errs) > 0 {
		t.Fatalf("%d processor calls failed during the migration, first: %v", len(errs), errs[0])
	}
	moved := 0
	for p := range parts {
		if after.Owner(partition.ID(p)) == j.self && before.Owner(partition.ID(p)) != j.self {
			moved++
		}
	}
	t.Logf("%d appends acknowledged, %d on partitions being copied; %d answers lost (%d during copies); %d partitions moved to the joiner as owner",
		len(acked), raced.Load(), lost.Load(), lostCopying.Load(), moved)
	if moved == 0 || raced.Load() == 0 || lostCopying.Load() == 0 {
		t.Fatal("the test did not race processors with a migration: nothing moved, ran during a copy, or lost an answer during one")
	}
	if probeOnJoiner.Load() || !probeLost.Load() {
		t.Fatalf("the probe's answer was not lost across the hand-off (served by the joiner first: %v)", probeOnJoiner.Load())
	}
	runsMu.Lock()
	probeRuns := runs["probe"]
	runsMu.Unlock()
	if len(probeRuns) != 1 || probeRuns[0] == j.self {
		t.Fatalf("the probe ran on %v; want once, on the old owner (its retry answered by the joiner from memory)", probeRuns)
	}
	acked = append(acked, ack{probeP, "probe", probeIdx})

	byPart := make(map[partition.ID][]ack)
	for _, a := range acked {
		byPart[a.p] = append(byPart[a.p], a)
	}
	for p := range parts {
		pid := partition.ID(p)
		reps := after.Partitions[p].Replicas
		var first []string
		for ri, r := range reps {
			log, bad := readLog(c, r, pid)
			if bad != "" {
				t.Fatalf("partition %d on %s: %s", p, r, bad)
			}
			if ri == 0 {
				first = log
				seen := make(map[string]bool, len(log))
				for i, e := range log {
					if seen[e] {
						t.Fatalf("partition %d: %q appended twice (second at %d): a retry ran again", p, e, i)
					}
					seen[e] = true
				}
				for _, a := range byPart[pid] {
					if a.idx >= uint64(len(log)) || log[a.idx] != a.arg {
						t.Fatalf("partition %d on its owner %s: the append of %q, acknowledged at %d, is not there (log length %d)", p, r, a.arg, a.idx, len(log))
					}
				}
			} else if strings.Join(log, ",") != strings.Join(first, ",") {
				t.Fatalf("partition %d: backup %s holds %d entries differing from its owner's %d", p, r, len(log), len(first))
			}
		}
	}
}
