package partition

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestFirstAssignment(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		for b := 0; b <= 2; b++ {
			active := members("m", n)
			cfg := PlanConfig{Backups: b}
			next, lost, changed := Plan(NewTable(DefaultCount), Members{Active: active}, cfg)
			if !changed || len(lost) != 0 || next.Epoch != 1 {
				t.Fatalf("n=%d b=%d: changed=%v lost=%v epoch=%d", n, b, changed, lost, next.Epoch)
			}
			if pendingCount(next) != 0 {
				t.Fatalf("n=%d b=%d: first assignment has pending copies", n, b)
			}
			checkBalanced(t, next, active, b)
			if again, _, changed := Plan(next, Members{Active: active}, cfg); changed || again != next {
				t.Fatalf("n=%d b=%d: second Plan changed the table", n, b)
			}
		}
	}
}

func TestMembershipChange(t *testing.T) {
	tests := []struct {
		name           string
		before, after  int // active members before and after
		leaving        bool
		backups        int
		maxMoved       float64 // bound on the share of replica slots that move
		onlyLeaversMov bool
	}{
		{name: "join 1->2 b=1", before: 1, after: 2, backups: 1, maxMoved: 0.51},
		{name: "join 2->3 b=1", before: 2, after: 3, backups: 1, maxMoved: 0.36},
		{name: "join 3->4 b=1", before: 3, after: 4, backups: 1, maxMoved: 0.27},
		{name: "join 3->4 b=0", before: 3, after: 4, backups: 0, maxMoved: 0.27},
		{name: "join 4->5 b=2", before: 4, after: 5, backups: 2, maxMoved: 0.22},
		{name: "join 9->10 b=1", before: 9, after: 10, backups: 1, maxMoved: 0.12},
		{name: "leave 4->3 b=1", before: 4, after: 3, leaving: true, backups: 1, maxMoved: 0.26, onlyLeaversMov: true},
		{name: "leave 3->2 b=1", before: 3, after: 2, leaving: true, backups: 1, maxMoved: 0.34, onlyLeaversMov: true},
		{name: "leave 2->1 b=1", before: 2, after: 1, leaving: true, backups: 1, maxMoved: 0.01, onlyLeaversMov: true},
		{name: "leave 5->4 b=2", before: 5, after: 4, leaving: true, backups: 2, maxMoved: 0.21, onlyLeaversMov: true},
		{name: "leave 10->9 b=1", before: 10, after: 9, leaving: true, backups: 1, maxMoved: 0.11, onlyLeaversMov: true},
		{name: "death 4->3 b=1", before: 4, after: 3, backups: 1, maxMoved: 0.26, onlyLeaversMov: true},
		{name: "death 5->4 b=2", before: 5, after: 4, backups: 2, maxMoved: 0.21, onlyLeaversMov: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := PlanConfig{Backups: tc.backups}
			all := members("m", max(tc.before, tc.after))
			before := start(t, DefaultCount, all[:tc.before], cfg)
			ms := Members{Active: all[:tc.after]}
			var gone []MemberID
			if tc.after < tc.before {
				gone = all[tc.after:tc.before]
			}
			if tc.leaving {
				ms.Leaving = gone
			}
			after, st := converge(t, before, ms, cfg)
			checkBalanced(t, after, all[:tc.after], tc.backups)
			for _, m := range gone {
				if h := after.Held(m); len(h) != 0 {
					t.Fatalf("%s still holds %d partitions", m, len(h))
				}
			}
			moved := movedFraction(before, after)
			t.Logf("moved %.1f%% of replica slots, %.1f%% of owners; %d plans, %d completes, %d cancelled",
				100*moved, 100*ownersMoved(before, after), st.Plans, st.Completes, st.Cancelled)
			if moved > tc.maxMoved {
				t.Errorf("moved %.3f of replica slots, want <= %.3f", moved, tc.maxMoved)
			}
			if st.Cancelled != 0 {
				t.Errorf("%d pending copies cancelled while membership stood still", st.Cancelled)
			}
			if tc.onlyLeaversMov {
				for p := range before.Partitions {
					if slices.ContainsFunc(before.Partitions[p].Replicas, func(m MemberID) bool { return slices.Contains(gone, m) }) {
						continue
					}
					if !slices.Equal(before.Partitions[p].Replicas, after.Partitions[p].Replicas) {
						t.Errorf("partition %d moved although no departing member held it: %v -> %v",
							p, before.Partitions[p].Replicas, after.Partitions[p].Replicas)
					}
				}
			}
		})
	}
}

func TestDeadOwnerPromotedAtOnce(t *testing.T) {
	for _, b := range []int{1, 2} {
		cfg := PlanConfig{Backups: b}
		all := members("m", 4)
		before := start(t, DefaultCount, all, cfg)
		dead := all[1]
		next, lost, changed := Plan(before, Members{Active: without(all, dead)}, cfg)
		if !changed || len(lost) != 0 {
			t.Fatalf("b=%d: changed=%v lost=%v, want a change and nothing lost", b, changed, lost)
		}
		for p := range next.Partitions {
			id := ID(p)
			if next.Owner(id) == "" || next.Owner(id) == dead {
				t.Fatalf("b=%d: partition %d owner %q after %s died", b, p, next.Owner(id), dead)
			}
			if before.Owner(id) == dead && next.Owner(id) != before.Backups(id)[0] {
				t.Fatalf("b=%d: partition %d: owner %s, want first backup %s promoted", b, p, next.Owner(id), before.Backups(id)[0])
			}
			if next.IsReplica(id, dead) || next.IsPending(id, dead) {
				t.Fatalf("b=%d: partition %d still names the dead member", b, p)
			}
		}
		after, _ := converge(t, next, Members{Active: without(all, dead)}, cfg)
		checkBalanced(t, after, without(all, dead), b)
	}
}

func TestSimultaneousDeaths(t *testing.T) {
	tests := []struct {
		name     string
		backups  int
		wantLost bool
	}{
		{"b=1 loses the partitions held only by the dead", 1, true},
		{"b=2 survives two deaths", 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := PlanConfig{Backups: tc.backups}
			all := members("m", 5)
			before := start(t, DefaultCount, all, cfg)
			dead := all[:2]
			var want []ID
			for p, a := range before.Partitions {
				if !slices.ContainsFunc(a.Replicas, func(m MemberID) bool { return !slices.Contains(dead, m) }) {
					want = append(want, ID(p))
				}
			}
			if tc.wantLost != (len(want) > 0) {
				t.Fatalf("setup: %d partitions held only by the dead", len(want))
			}
			live := Members{Active: without(all, dead...)}
			next, lost, _ := Plan(before, live, cfg)
			if !slices.Equal(lost, want) {
				t.Fatalf("lost %v, want %v", lost, want)
			}
			for p := range next.Partitions {
				a := next.Partitions[p]
				if len(a.Replicas) == 0 {
					t.Fatalf("partition %d unassigned after the deaths", p)
				}
				if slices.Contains(lost, ID(p)) && (len(a.Pending) != 0 || len(a.Replicas) != tc.backups+1) {
					t.Fatalf("lost partition %d not assigned directly: %v", p, a)
				}
			}
			after, _ := converge(t, next, live, cfg)
			checkBalanced(t, after, live.Active, tc.backups)
		})
	}
}

func TestLeavingMemberHandsOffAndEndsWithNothing(t *testing.T) {
	for _, tc := range []struct{ n, b, maxPending int }{{2, 1, 0}, {3, 1, 0}, {4, 2, 0}, {4, 1, 5}, {1, 0, 0}} {
		t.Run(fmt.Sprintf("n=%d b=%d maxPending=%d", tc.n, tc.b, tc.maxPending), func(t *testing.T) {
			cfg := PlanConfig{Backups: tc.b, MaxPendingPerMember: tc.maxPending}
			all := members("m", tc.n)
			cur := start(t, DefaultCount, all, cfg)
			leaver := all[0]
			ms := Members{Active: all[1:], Leaving: []MemberID{leaver}}
			next, lost, _ := Plan(cur, ms, cfg)
			if len(lost) != 0 {
				t.Fatalf("lost %v on a graceful leave", lost)
			}
			for p := range cur.Partitions {
				id := ID(p)
				if cur.Owner(id) == leaver && next.Owner(id) != leaver {
					t.Fatalf("partition %d: leaving owner replaced by Plan, not by a hand-off", p)
				}
				if next.Owner(id) == leaver && len(all) > 1 && tc.maxPending == 0 {
					a := next.Partitions[p]
					if !slices.ContainsFunc(a.Pending, func(pe Pending) bool { return pe.AsOwner }) {
						t.Fatalf("partition %d owned by the leaver has no pending owner: %v", p, a.Pending)
					}
				}
			}
			after, _ := converge(t, cur, ms, cfg)
			if len(all) == 1 {
				// Nobody to hand off to: the leaver keeps serving.
				if len(after.Owned(leaver)) != DefaultCount {
					t.Fatalf("sole leaving member gave up partitions with nobody to take them")
				}
				return
			}
			if h := after.Held(leaver); len(h) != 0 {
				t.Fatalf("leaver still holds %v", h)
			}
			checkBalanced(t, after, all[1:], tc.b)
		})
	}
}

func TestCompleteStaleReportIsNoOp(t *testing.T) {
	cfg := PlanConfig{Backups: 1}
	all := members("m", 4)
	cur := start(t, DefaultCount, all[:3], cfg)
	ms := Members{Active: all}
	next, _, _ := Plan(cur, ms, cfg)
	var p ID = -1
	for i, a := range next.Partitions {
		if len(a.Pending) > 0 {
			p = ID(i)
			break
		}
	}
	if p < 0 {
		t.Fatal("join planned no copies")
	}
	m := next.Partitions[p].Pending[0].Member
	tests := []struct {
		name string
		tbl  *Table
		p    ID
		m    MemberID
		ms   Members
	}{
		{"member not pending", next, p, all[0], ms},
		{"already completed", mustComplete(t, next, p, m, ms, cfg), p, m, ms},
		{"partition out of range", next, ID(DefaultCount), m, ms},
		{"negative partition", next, -1, m, ms},
		{"pending member died", next, p, m, Members{Active: all[:3]}},
	}
	for _, tc := range tests {
		got, changed := Complete(tc.tbl, tc.p, tc.m, tc.ms, cfg)
		if changed || got != tc.tbl {
			t.Errorf("%s: changed=%v, want the same table back", tc.name, changed)
		}
	}
}

func mustComplete(t *testing.T, cur *Table, p ID, m MemberID, ms Members, cfg PlanConfig) *Table {
	t.Helper()
	next, ok := Complete(cur, p, m, ms, cfg)
	if !ok {
		t.Fatalf("Complete(%d, %s) refused", p, m)
	}
	return next
}

func TestPlanIsDeterministic(t *testing.T) {
	cfg := PlanConfig{Backups: 2, MaxPendingPerMember: 7}
	all := members("m", 6)
	base := start(t, DefaultCount, all[:4], cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	want, wantLost, _ := Plan(base, Members{Active: all[1:], Leaving: all[:1]}, cfg)
	for range 20 {
		active := slices.Clone(all[1:])
		rng.Shuffle(len(active), func(i, j int) { active[i], active[j] = active[j], active[i] })
		active = append(active, active[0]) // duplicates do not matter
		got, lost, _ := Plan(base, Members{Active: active, Leaving: all[:1]}, cfg)
		if !got.Equal(want) || !slices.Equal(lost, wantLost) {
			t.Fatal("Plan differs for the same membership in another order")
		}
	}
}

func TestMaxPendingPerMember(t *testing.T) {
	cfg := PlanConfig{Backups: 1, MaxPendingPerMember: 4}
	all := members("m", 5)
	cur := start(t, DefaultCount, all[:3], cfg)
	ms := Members{Active: all}
	rounds := 0
	for ; rounds < 1000; rounds++ {
		next, _, changed := Plan(cur, ms, cfg)
		if !changed && pendingCount(cur) == 0 {
			break
		}
		incoming := map[MemberID]int{}
		for _, a := range next.Partitions {
			for _, pe := range a.Pending {
				if !isPromotion(&a, pe) {
					incoming[pe.Member]++
				}
			}
		}
		for m, n := range incoming {
			if n > cfg.MaxPendingPerMember {
				t.Fatalf("%s has %d incoming copies, limit %d", m, n, cfg.MaxPendingPerMember)
			}
		}
		cur = next
		// Complete one copy per member per round, like a slow cluster.
		done := map[MemberID]bool{}
		for p, a := range cur.Partitions {
			for _, pe := range a.Pending {
				if !done[pe.Member] {
					done[pe.Member] = true
					cur = mustComplete(t, cur, ID(p), pe.Member, ms, cfg)
					break
				}
			}
		}
	}
	checkBalanced(t, cur, all, cfg.Backups)
	t.Logf("converged in %d rounds", rounds)
}

func TestEpochGrowsOnEveryChange(t *testing.T) {
	cfg := PlanConfig{Backups: 1}
	all := members("m", 3)
	tbl := NewTable(31)
	seen := tbl.Epoch
	step := func(next *Table, changed bool) {
		t.Helper()
		if changed && next.Epoch <= seen {
			t.Fatalf("epoch %d after %d", next.Epoch, seen)
		}
		if !changed && next.Epoch != seen {
			t.Fatalf("epoch moved without a change")
		}
		seen = next.Epoch
		tbl = next
	}
	for _, ms := range []Members{{Active: all[:1]}, {Active: all}, {Active: all[1:], Leaving: all[:1]}, {Active: all[2:]}, {}, {Active: all}} {
		for range 50 {
			next, _, changed := Plan(tbl, ms, cfg)
			step(next, changed)
			if !changed {
				break
			}
			for p, a := range tbl.Partitions {
				for _, pe := range a.Pending {
					next, changed := Complete(tbl, ID(p), pe.Member, ms, cfg)
					step(next, changed)
				}
			}
		}
	}
}

func TestNoActiveMembers(t *testing.T) {
	cfg := PlanConfig{Backups: 1}
	all := members("m", 2)
	cur := start(t, 17, all, cfg)
	// Everyone is leaving: nobody to hand off to, nothing changes.
	if _, _, changed := Plan(cur, Members{Leaving: all}, cfg); changed {
		t.Fatal("Plan changed the table with nobody to hand off to")
	}
	// Everyone died: all partitions lost once, then assigned when a member comes.
	next, lost, changed := Plan(cur, Members{}, cfg)
	if !changed || len(lost) != 17 {
		t.Fatalf("changed=%v lost=%d, want all 17 lost", changed, len(lost))
	}
	if again, lost, changed := Plan(next, Members{}, cfg); changed || len(lost) != 0 || again != next {
		t.Fatal("lost partitions reported twice")
	}
	fresh := []MemberID{"n01"}
	next, lost, _ = Plan(next, Members{Active: fresh}, cfg)
	if len(lost) != 0 {
		t.Fatalf("unassigned partitions reported lost again: %v", lost)
	}
	checkBalanced(t, next, fresh, cfg.Backups)
}

func BenchmarkPlan(b *testing.B) {
	cfg := PlanConfig{Backups: 1}
	all := members("m", 11)
	first, _, _ := Plan(NewTable(DefaultCount), Members{Active: all[:10]}, cfg)
	b.Run("first-assignment/271x10", func(b *testing.B) {
		for b.Loop() {
			Plan(NewTable(DefaultCount), Members{Active: all[:10]}, cfg)
		}
	})
	b.Run("join/271x10", func(b *testing.B) {
		for b.Loop() {
			Plan(first, Members{Active: all}, cfg)
		}
	})
	b.Run("stable/271x10", func(b *testing.B) {
		for b.Loop() {
			Plan(first, Members{Active: all[:10]}, cfg)
		}
	})
}

func TestOwnerDiesDuringHandOff(t *testing.T) {
	cfg := PlanConfig{Backups: 1}
	all := members("m", 4)
	cur := start(t, DefaultCount, all[:3], cfg)
	ms := Members{Active: all}
	cur, _, _ = Plan(cur, ms, cfg)
	var p ID = -1
	for i, a := range cur.Partitions {
		if len(a.Pending) == 1 && a.Pending[0].AsOwner {
			p = ID(i)
			break
		}
	}
	if p < 0 {
		t.Fatal("join planned no hand-off")
	}
	oldOwner, backup, newOwner := cur.Owner(p), cur.Backups(p)[0], cur.Partitions[p].Pending[0].Member
	ms = Members{Active: without(all, oldOwner)}
	next, lost, _ := Plan(cur, ms, cfg)
	if len(lost) != 0 {
		t.Fatalf("lost %v", lost)
	}
	// The backup takes over at once; the hand-off goes on from it.
	if next.Owner(p) != backup || !next.IsPending(p, newOwner) {
		t.Fatalf("partition %d: %v, want owner %s with %s pending", p, next.Partitions[p], backup, newOwner)
	}
	after, _ := converge(t, next, ms, cfg)
	checkBalanced(t, after, ms.Active, cfg.Backups)
}

// A pending entry records the epoch of its stint; it keeps it while the member stays pending
// across plans, gets a new one once dropped and added again, and a copy begun before the
// current stint does not complete it.
func TestPendingStintSince(t *testing.T) {
	cfg := PlanConfig{Backups: 1}
	all := members("m", 4)
	cur := start(t, DefaultCount, all[:3], cfg)
	ms := Members{Active: all}
	t1, _, _ := Plan(cur, ms, cfg)
	var p ID = -1
	for i, a := range t1.Partitions {
		if len(a.Pending) > 0 {
			p = ID(i)
			break
		}
	}
	if p < 0 {
		t.Fatal("join planned no copies")
	}
	m := t1.Partitions[p].Pending[0].Member
	if got := t1.Partitions[p].Pending[0].Since; got != t1.Epoch {
		t.Fatalf("new pending entry Since = %d, want the plan's epoch %d", got, t1.Epoch)
	}
	// Another change elsewhere: the stint goes on.
	t2 := t1.Clone()
	t2.Epoch++
	if again, _, _ := Plan(t2, ms, cfg); again.Partitions[p].Pending[0].Since != t1.Epoch {
		t.Fatalf("replanned pending entry Since = %d, want %d", again.Partitions[p].Pending[0].Since, t1.Epoch)
	}
	// m suspected: its pending entries go; then active again: a new stint.
	t3, _, _ := Plan(t1, Members{Active: without(all, m), Suspect: []MemberID{m}}, cfg)
	if pendingIndex(t3.Partitions[p].Pending, m) >= 0 {
		t.Fatalf("suspect %s still pending for partition %d", m, p)
	}
	t4, _, _ := Plan(t3, ms, cfg)
	i := pendingIndex(t4.Partitions[p].Pending, m)
	if i < 0 {
		t.Fatalf("%s not pending again for partition %d", m, p)
	}
	if got := t4.Partitions[p].Pending[i].Since; got != t4.Epoch {
		t.Fatalf("re-added pending entry Since = %d, want %d", got, t4.Epoch)
	}
	if _, changed := CompleteCopy(t4, p, m, t1.Epoch, ms, cfg); changed {
		t.Errorf("a copy begun at epoch %d completed the stint that began at %d", t1.Epoch, t4.Epoch)
	}
	if _, changed := CompleteCopy(t4, p, m, t4.Epoch, ms, cfg); !changed {
		t.Errorf("a copy begun in the current stint was refused")
	}
}
