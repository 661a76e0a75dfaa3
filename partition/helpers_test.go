package partition

import (
	"fmt"
	"slices"
	"testing"
)

// members returns n member IDs named prefix01, prefix02, ...
func members(prefix string, n int) []MemberID {
	ms := make([]MemberID, n)
	for i := range ms {
		ms[i] = MemberID(fmt.Sprintf("%s%02d", prefix, i+1))
	}
	return ms
}

func without(ms []MemberID, drop ...MemberID) []MemberID {
	return slices.DeleteFunc(slices.Clone(ms), func(m MemberID) bool { return slices.Contains(drop, m) })
}

// convergeStats counts what converge did.
type convergeStats struct {
	Plans     int // plans that changed the table
	Completes int // pending copies completed
	Cancelled int // pending entries a plan removed without completion
}

// converge drives the table to a fixed point the way the coordinator does:
// Plan, then Complete every pending copy it asked for (in partition order),
// until Plan has nothing left to change. After every step it checks that the
// table is valid, that the epoch grew by one, and that no live owner was
// replaced other than through a hand-off.
func converge(t *testing.T, cur *Table, ms Members, cfg PlanConfig) (*Table, convergeStats) {
	t.Helper()
	var st convergeStats
	for round := 0; ; round++ {
		if round > 1000 {
			t.Fatalf("no fixed point after %d rounds", round)
		}
		next, _, changed := Plan(cur, ms, cfg)
		if !changed {
			if next != cur {
				t.Fatalf("unchanged Plan returned a new table")
			}
			if pendingCount(cur) == 0 {
				return cur, st
			}
		} else {
			checkStep(t, cur, next, ms, false)
			st.Plans++
			for p := range cur.Partitions {
				for _, pe := range cur.Partitions[p].Pending {
					if !next.IsPending(ID(p), pe.Member) {
						st.Cancelled++
					}
				}
			}
		}
		cur = next
		type job struct {
			p ID
			m MemberID
		}
		var jobs []job
		for p, a := range cur.Partitions {
			for _, pe := range a.Pending {
				jobs = append(jobs, job{ID(p), pe.Member})
			}
		}
		for _, j := range jobs {
			next, ok := Complete(cur, j.p, j.m, ms, cfg)
			if !ok {
				t.Fatalf("Complete(%d, %s) of a pending copy was refused", j.p, j.m)
			}
			checkStep(t, cur, next, ms, true)
			if !next.IsReplica(j.p, j.m) && slices.Contains(ms.Active, j.m) {
				t.Fatalf("Complete(%d, %s): active member not a replica afterwards", j.p, j.m)
			}
			st.Completes++
			cur = next
		}
	}
}

// checkStep checks one transition of the table.
func checkStep(t *testing.T, prev, next *Table, ms Members, complete bool) {
	t.Helper()
	if err := next.Validate(); err != nil {
		t.Fatalf("invalid table after step: %v", err)
	}
	if next.Epoch != prev.Epoch+1 {
		t.Fatalf("epoch %d -> %d, want +1", prev.Epoch, next.Epoch)
	}
	ro := newRoster(ms)
	for p := range prev.Partitions {
		old, now := prev.Owner(ID(p)), next.Owner(ID(p))
		if old == "" || old == now || !ro.alive(old) {
			continue
		}
		// A live owner changes only through the Complete of its hand-off.
		if !complete || !prev.IsPending(ID(p), now) {
			t.Fatalf("partition %d: live owner %s replaced by %s without hand-off", p, old, now)
		}
	}
}

func pendingCount(t *Table) int {
	n := 0
	for _, a := range t.Partitions {
		n += len(a.Pending)
	}
	return n
}

// checkBalanced checks a converged table: every partition has
// min(backups+1, active) distinct active replicas and nothing pending, owners
// per member are within one of each other, replicas per member within one.
func checkBalanced(t *testing.T, tbl *Table, active []MemberID, backups int) {
	t.Helper()
	if len(active) == 0 {
		return
	}
	r := min(backups+1, len(active))
	owners, replicas := map[MemberID]int{}, map[MemberID]int{}
	for p, a := range tbl.Partitions {
		if len(a.Replicas) != r || len(a.Pending) != 0 {
			t.Fatalf("partition %d: replicas %v pending %v, want %d replicas and nothing pending", p, a.Replicas, a.Pending, r)
		}
		for _, m := range a.Replicas {
			if !slices.Contains(active, m) {
				t.Fatalf("partition %d: replica %s is not active", p, m)
			}
			replicas[m]++
		}
		owners[a.Replicas[0]]++
	}
	if lo, hi := spread(owners, active); hi-lo > 1 {
		t.Errorf("owners per member %d..%d, want within one: %v", lo, hi, owners)
	}
	if lo, hi := spread(replicas, active); hi-lo > 1 {
		t.Errorf("replicas per member %d..%d, want within one: %v", lo, hi, replicas)
	}
}

func spread(counts map[MemberID]int, active []MemberID) (lo, hi int) {
	lo = int(^uint(0) >> 1)
	for _, m := range active {
		lo, hi = min(lo, counts[m]), max(hi, counts[m])
	}
	return lo, hi
}

type slot struct {
	p ID
	m MemberID
}

func slotSet(tbl *Table) map[slot]bool {
	s := map[slot]bool{}
	for p, a := range tbl.Partitions {
		for _, m := range a.Replicas {
			s[slot{ID(p), m}] = true
		}
	}
	return s
}

// movedFraction is the share of after's replica slots that before did not have.
func movedFraction(before, after *Table) float64 {
	b, a := slotSet(before), slotSet(after)
	moved := 0
	for s := range a {
		if !b[s] {
			moved++
		}
	}
	return float64(moved) / float64(len(a))
}

// ownersMoved is the share of partitions whose owner changed.
func ownersMoved(before, after *Table) float64 {
	n := 0
	for p := range before.Partitions {
		if before.Owner(ID(p)) != after.Owner(ID(p)) {
			n++
		}
	}
	return float64(n) / float64(before.Count())
}

// start returns a converged table for active members with the given backups.
func start(t *testing.T, count int, active []MemberID, cfg PlanConfig) *Table {
	t.Helper()
	tbl, _ := converge(t, NewTable(count), Members{Active: active}, cfg)
	checkBalanced(t, tbl, active, cfg.Backups)
	return tbl
}
