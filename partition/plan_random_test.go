package partition

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPlanRandomSequences drives the planner through random joins, graceful
// leaves, deaths and suspicions (see Members.Suspect), often in the middle of a migration, completing a random
// share of the pending copies between events, and checks the invariants
// after every step and the balance at the end.
func TestPlanRandomSequences(t *testing.T) {
	const sequences = 300
	rng := rand.New(rand.NewPCG(20261125, 271))
	for seq := range sequences {
		count := []int{7, 13, 31, 64}[rng.IntN(4)]
		if seq%75 == 0 { // the real size, a few times: slow under -race
			count = DefaultCount
		}
		cfg := PlanConfig{Backups: rng.IntN(4)}
		if rng.IntN(3) == 0 {
			cfg.MaxPendingPerMember = 1 + rng.IntN(5)
		}
		name := fmt.Sprintf("seq%d/count=%d/b=%d/max=%d", seq, count, cfg.Backups, cfg.MaxPendingPerMember)
		runRandomSequence(t, name, rng, count, cfg)
		if t.Failed() {
			return
		}
	}
}

func runRandomSequence(t *testing.T, name string, rng *rand.Rand, count int, cfg PlanConfig) {
	next := 0
	newMember := func() MemberID {
		next++
		return MemberID(fmt.Sprintf("x%03d", next))
	}
	var ms Members
	for range 1 + rng.IntN(5) {
		ms.Active = append(ms.Active, newMember())
	}
	cur := NewTable(count)
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s after %v: %s", name, log, fmt.Sprintf(format, args...))
	}
	plan := func() {
		t.Helper()
		nxt, lost, changed := Plan(cur, ms, cfg)
		if !changed {
			return
		}
		checkInvariants(t, cur, nxt, ms, cfg, false, fail)
		for _, p := range lost {
			for _, m := range cur.Partitions[p].Replicas {
				if newRoster(ms).alive(m) {
					fail("partition %d reported lost though %s is alive", p, m)
				}
			}
		}
		cur = nxt
	}
	completeSome := func(share float64) {
		t.Helper()
		for p, a := range slices.Clone(cur.Partitions) {
			for _, pe := range a.Pending {
				if rng.Float64() >= share {
					continue
				}
				nxt, ok := Complete(cur, ID(p), pe.Member, ms, cfg)
				if !ok {
					fail("Complete(%d, %s) of a pending copy refused", p, pe.Member)
				}
				checkInvariants(t, cur, nxt, ms, cfg, true, fail)
				cur = nxt
			}
		}
	}
	plan()
	for range 4 + rng.IntN(6) {
		live := len(ms.Active)
		switch ev := rng.IntN(12); {
		case ev >= 10 && len(ms.Suspect) > 0:
			m := ms.Suspect[rng.IntN(len(ms.Suspect))]
			ms.Suspect = without(ms.Suspect, m)
			ms.Active = append(ms.Active, m)
			log = append(log, "readmit "+string(m))
		case ev >= 10 && live > 1:
			m := ms.Active[rng.IntN(live)]
			ms.Active = without(ms.Active, m)
			ms.Suspect = append(ms.Suspect, m)
			log = append(log, "suspect "+string(m))
		case ev < 4 || live <= 1:
			m := newMember()
			ms.Active = append(ms.Active, m)
			log = append(log, "join "+string(m))
		case ev < 7:
			m := ms.Active[rng.IntN(live)]
			ms.Active = without(ms.Active, m)
			ms.Leaving = append(ms.Leaving, m)
			log = append(log, "leave "+string(m))
		case ev < 9:
			m := ms.Active[rng.IntN(live)]
			ms.Active = without(ms.Active, m)
			log = append(log, "die "+string(m))
		default:
			// A leaving member dies before its hand-offs finish, or an active one.
			if len(ms.Leaving) > 0 {
				m := ms.Leaving[rng.IntN(len(ms.Leaving))]
				ms.Leaving = without(ms.Leaving, m)
				log = append(log, "leaver dies "+string(m))
			} else {
				m := ms.Active[rng.IntN(live)]
				ms.Active = without(ms.Active, m)
				log = append(log, "die "+string(m))
			}
		}
		// Run a few rounds of the migration, possibly not to the end.
		for range rng.IntN(4) {
			plan()
			completeSome(rng.Float64())
		}
	}
	// Suspects are re-admitted; leavers whose hand-offs finish go away;
	// converge and check the outcome.
	ms.Active = append(ms.Active, ms.Suspect...)
	ms.Suspect = nil
	log = append(log, "readmit all")
	var converged *Table
	for range 2000 {
		plan()
		if pendingCount(cur) == 0 {
			if _, _, changed := Plan(cur, ms, cfg); !changed {
				converged = cur
				break
			}
		}
		completeSome(1)
	}
	if converged == nil {
		fail("no fixed point")
	}
	if len(ms.Active) > 0 {
		for _, m := range ms.Leaving {
			if h := cur.Held(m); len(h) != 0 {
				fail("leaving %s still holds %d partitions", m, len(h))
			}
		}
		checkBalancedOrFail(cur, ms.Active, cfg.Backups, fail)
	}
}

// checkInvariants checks one step: a valid table, epoch +1, only live members,
// no live owner replaced without hand-off, at most Backups+2 replicas (the
// extra one being an owner that is handing off), and pending copies within
// MaxPendingPerMember after a Plan.
func checkInvariants(t *testing.T, prev, next *Table, ms Members, cfg PlanConfig, complete bool, fail func(string, ...any)) {
	t.Helper()
	if err := next.Validate(); err != nil {
		fail("invalid table: %v", err)
	}
	if next.Epoch != prev.Epoch+1 {
		fail("epoch %d -> %d", prev.Epoch, next.Epoch)
	}
	ro := newRoster(ms)
	incoming := map[MemberID]int{}
	for p := range next.Partitions {
		a, old := &next.Partitions[p], &prev.Partitions[p]
		if len(a.Replicas) > cfg.Backups+2 {
			fail("partition %d has %d replicas", p, len(a.Replicas))
		}
		if !complete {
			for _, m := range a.Replicas {
				if !ro.alive(m) {
					fail("partition %d: dead %s still a replica", p, m)
				}
			}
			for _, m := range a.Replicas[min(1, len(a.Replicas)):] {
				if ro.suspect[m] {
					fail("partition %d: suspect %s still a backup", p, m)
				}
			}
			for _, pe := range a.Pending {
				if ro.suspect[pe.Member] {
					fail("partition %d: suspect %s still pending", p, pe.Member)
				}
			}
		}
		if len(a.Replicas) == 0 && slices.ContainsFunc(old.Replicas, ro.alive) {
			fail("partition %d lost its replicas %v though one is alive", p, old.Replicas)
		}
		for _, pe := range a.Pending {
			if !isPromotion(a, pe) && !slices.Contains(old.Pending, pe) {
				incoming[pe.Member]++
			}
		}
		if len(old.Replicas) > 0 && ro.alive(old.Replicas[0]) && next.Owner(ID(p)) != old.Replicas[0] {
			if !complete || !prev.IsPending(ID(p), next.Owner(ID(p))) {
				fail("partition %d: live owner %s replaced by %s without hand-off", p, old.Replicas[0], next.Owner(ID(p)))
			}
		}
	}
	if !complete && cfg.MaxPendingPerMember > 0 {
		total := map[MemberID]int{}
		for _, a := range next.Partitions {
			for _, pe := range a.Pending {
				if !isPromotion(&a, pe) {
					total[pe.Member]++
				}
			}
		}
		for m, n := range incoming {
			if n > 0 && total[m] > cfg.MaxPendingPerMember {
				fail("%s got new copies beyond the limit: %d pending", m, total[m])
			}
		}
	}
}

func checkBalancedOrFail(tbl *Table, active []MemberID, backups int, fail func(string, ...any)) {
	r := min(backups+1, len(active))
	owners, replicas := map[MemberID]int{}, map[MemberID]int{}
	for p, a := range tbl.Partitions {
		if len(a.Replicas) != r || len(a.Pending) != 0 {
			fail("partition %d: replicas %v pending %v, want %d replicas", p, a.Replicas, a.Pending, r)
		}
		for _, m := range a.Replicas {
			if !slices.Contains(active, m) {
				fail("partition %d: replica %s not active", p, m)
			}
			replicas[m]++
		}
		owners[a.Replicas[0]]++
	}
	if lo, hi := spread(owners, active); hi-lo > 1 {
		fail("owners per member %d..%d: %v", lo, hi, owners)
	}
	if lo, hi := spread(replicas, active); hi-lo > 1 {
		fail("replicas per member %d..%d: %v", lo, hi, replicas)
	}
}
