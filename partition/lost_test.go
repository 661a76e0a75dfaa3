package partition

import (
	"errors"
	"slices"
	"testing"
)

// table builds a table of the given assignments at epoch.
func table(epoch uint64, as ...Assignment) *Table {
	return &Table{Epoch: epoch, Partitions: as}
}

func TestPlanMarksLostPartitions(t *testing.T) {
	a, b, c, d := MemberID("a"), MemberID("b"), MemberID("c"), MemberID("d")
	tests := []struct {
		name     string
		cur      *Table
		alive    []MemberID
		recreate bool
		wantLost []ID
	}{
		{
			name:     "owner and backup die",
			cur:      table(7, Assignment{Replicas: []MemberID{a, b}}, Assignment{Replicas: []MemberID{c, a}}),
			alive:    []MemberID{c, d},
			wantLost: []ID{0},
		},
		{
			name:     "owner and backup die, recreate",
			cur:      table(7, Assignment{Replicas: []MemberID{a, b}}, Assignment{Replicas: []MemberID{c, a}}),
			alive:    []MemberID{c, d},
			recreate: true,
			wantLost: []ID{0},
		},
		{
			name:     "a pending copy is not a replica",
			cur:      table(7, Assignment{Replicas: []MemberID{a, b}, Pending: []Pending{{Member: c}}}, Assignment{Replicas: []MemberID{c, d}}),
			alive:    []MemberID{c, d},
			wantLost: []ID{0},
		},
		{
			name:     "a pending owner is not a replica",
			cur:      table(7, Assignment{Replicas: []MemberID{a, b}, Pending: []Pending{{Member: c, AsOwner: true}}}, Assignment{Replicas: []MemberID{d, c}}),
			alive:    []MemberID{c, d},
			wantLost: []ID{0},
		},
		{
			name:     "promoted backup whose restoring copy was in flight",
			cur:      table(7, Assignment{Replicas: []MemberID{b}, Pending: []Pending{{Member: c}}}, Assignment{Replicas: []MemberID{c, d}}),
			alive:    []MemberID{c, d},
			wantLost: []ID{0},
		},
		{
			name:  "one backup survives",
			cur:   table(7, Assignment{Replicas: []MemberID{a, b, c}}, Assignment{Replicas: []MemberID{c, a, d}}),
			alive: []MemberID{c, d},
		},
		{
			name:     "lost again keeps the newest epoch",
			cur:      table(7, Assignment{Replicas: []MemberID{a, b}, LostAt: 3, Lost: true}, Assignment{Replicas: []MemberID{c, d}, LostAt: 4}),
			alive:    []MemberID{c, d},
			wantLost: []ID{0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := PlanConfig{Backups: 1, RecreateLost: tc.recreate}
			next, lost, changed := Plan(tc.cur, Members{Active: tc.alive}, cfg)
			if !changed || next.Epoch != tc.cur.Epoch+1 {
				t.Fatalf("changed=%v epoch %d, want a change to epoch %d", changed, next.Epoch, tc.cur.Epoch+1)
			}
			if !slices.Equal(lost, tc.wantLost) {
				t.Fatalf("lost %v, want %v", lost, tc.wantLost)
			}
			if err := next.Validate(); err != nil {
				t.Fatal(err)
			}
			for p := range next.Partitions {
				got, was := next.Partitions[p], tc.cur.Partitions[p]
				if slices.Contains(tc.wantLost, ID(p)) {
					if got.LostAt != next.Epoch || got.Lost == tc.recreate {
						t.Errorf("partition %d: LostAt %d Lost %v, want LostAt %d Lost %v", p, got.LostAt, got.Lost, next.Epoch, !tc.recreate)
					}
					// Assigned afresh, directly: nothing to copy.
					if len(got.Replicas) != 2 || len(got.Pending) != 0 {
						t.Errorf("lost partition %d not assigned afresh: %+v", p, got)
					}
					continue
				}
				if got.LostAt != was.LostAt || got.Lost != was.Lost {
					t.Errorf("partition %d: marks %d/%v changed to %d/%v", p, was.LostAt, was.Lost, got.LostAt, got.Lost)
				}
			}
			// Reported once.
			if again, lost, _ := Plan(next, Members{Active: tc.alive}, cfg); len(lost) != 0 || !sameMarks(again, next) {
				t.Fatalf("second plan: lost %v, marks changed", lost)
			}
		})
	}
}

func sameMarks(t, o *Table) bool {
	for p := range t.Partitions {
		if t.Partitions[p].Lost != o.Partitions[p].Lost || t.Partitions[p].LostAt != o.Partitions[p].LostAt {
			return false
		}
	}
	return true
}

// Marks of partitions that migrate, are promoted or are handed off survive
// every Plan and Complete.
func TestLostMarksSurviveMigration(t *testing.T) {
	cfg := PlanConfig{Backups: 1}
	all := members("m", 5)
	cur := start(t, 64, all[:3], cfg).Clone()
	for p := range cur.Partitions {
		if p%3 == 0 {
			cur.Partitions[p].LostAt, cur.Partitions[p].Lost = uint64(p+1), p%2 == 0
		}
	}
	check := func(tbl *Table) {
		t.Helper()
		for p, a := range tbl.Partitions {
			if wantAt := uint64(p + 1); p%3 == 0 && (a.LostAt != wantAt || a.Lost != (p%2 == 0)) ||
				p%3 != 0 && (a.LostAt != 0 || a.Lost) {
				t.Fatalf("epoch %d partition %d: marks %d/%v", tbl.Epoch, p, a.LostAt, a.Lost)
			}
		}
	}
	// A join (migrations and hand-offs), a death (promotions), a leave.
	for _, ms := range []Members{
		{Active: all},
		{Active: without(all, all[0])},
		{Active: all[1:4], Leaving: all[4:]},
	} {
		for range 100 {
			next, lost, changed := Plan(cur, ms, cfg)
			if len(lost) != 0 {
				t.Fatalf("lost %v", lost)
			}
			check(next)
			if !changed && pendingCount(cur) == 0 {
				break
			}
			cur = next
			for p, a := range slices.Clone(cur.Partitions) {
				for _, pe := range a.Pending {
					cur = mustComplete(t, cur, ID(p), pe.Member, ms, cfg)
					check(cur)
				}
			}
		}
		if pendingCount(cur) != 0 {
			t.Fatal("no fixed point")
		}
	}
}

func TestResetLost(t *testing.T) {
	cur := table(9,
		Assignment{Replicas: []MemberID{"a"}, LostAt: 4, Lost: true},
		Assignment{Replicas: []MemberID{"b"}, LostAt: 2},
		Assignment{Replicas: []MemberID{"a"}, LostAt: 9, Lost: true},
		Assignment{Replicas: []MemberID{"b"}},
	)
	tests := []struct {
		name     string
		parts    []ID
		wantLost []ID // still lost afterwards
		changed  bool
	}{
		{"every lost partition", nil, nil, true},
		{"one of them", []ID{2}, []ID{0}, true},
		{"both, listed twice", []ID{0, 2, 0}, nil, true},
		{"not lost", []ID{1, 3}, []ID{0, 2}, false},
		{"out of range", []ID{-1, 4}, []ID{0, 2}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := cur.Clone()
			next, changed := ResetLost(cur, tc.parts)
			if changed != tc.changed {
				t.Fatalf("changed=%v, want %v", changed, tc.changed)
			}
			if !cur.Equal(before) {
				t.Fatal("ResetLost modified its input")
			}
			if !changed {
				if next != cur {
					t.Fatal("unchanged ResetLost returned a new table")
				}
				return
			}
			if next.Epoch != cur.Epoch+1 {
				t.Fatalf("epoch %d, want %d", next.Epoch, cur.Epoch+1)
			}
			if got := next.Lost(); !slices.Equal(got, tc.wantLost) {
				t.Fatalf("lost afterwards %v, want %v", got, tc.wantLost)
			}
			for p, a := range next.Partitions {
				if a.LostAt != cur.Partitions[p].LostAt || !slices.Equal(a.Replicas, cur.Partitions[p].Replicas) {
					t.Fatalf("partition %d changed beyond its Lost mark: %+v", p, a)
				}
			}
			if err := next.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLostMarksAreAChange(t *testing.T) {
	base := table(3, Assignment{Replicas: []MemberID{"a"}}, Assignment{Replicas: []MemberID{"a"}})
	lost := base.Clone()
	lost.Partitions[1].LostAt, lost.Partitions[1].Lost = 3, true
	at := base.Clone()
	at.Partitions[1].LostAt = 3
	if base.Equal(lost) || base.Equal(at) || lost.Equal(at) {
		t.Fatal("tables differing only in Lost or LostAt compare equal")
	}
	// Everyone died and nobody can take the partitions: they are only
	// unassigned and marked, and that is a change.
	next, gone, changed := Plan(base, Members{}, PlanConfig{})
	if !changed || len(gone) != 2 || !slices.Equal(next.Lost(), []ID{0, 1}) || next.Partitions[0].LostAt != 4 {
		t.Fatalf("changed=%v lost=%v marks=%v %+v", changed, gone, next.Lost(), next.Partitions)
	}
}

func TestValidateLostNeedsEpoch(t *testing.T) {
	bad := table(3, Assignment{Replicas: []MemberID{"a"}, Lost: true})
	if err := bad.Validate(); !errors.Is(err, ErrInvalidTable) {
		t.Fatalf("Validate of Lost without LostAt: %v", err)
	}
	ok := table(3, Assignment{Replicas: []MemberID{"a"}, Lost: true, LostAt: 2})
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A partition whose every replica vanished with most of the cluster (a network partition) is
// not lost while one of them is listed Unreachable: it keeps them and waits, while partitions
// with a live replica fail over as usual; once one comes back it is served again with its
// data, and when the coordinator gives up on them it is lost as before.
func TestPlanUnreachableReplicasWait(t *testing.T) {
	a, b, c, d, e := MemberID("a"), MemberID("b"), MemberID("c"), MemberID("d"), MemberID("e")
	cfg := PlanConfig{Backups: 2}
	cur := table(7,
		Assignment{Replicas: []MemberID{a, b, c}},                               // only on the cut-off side
		Assignment{Replicas: []MemberID{a, d, b}},                               // a replica on each side
		Assignment{Replicas: []MemberID{d, e, a}},                               // owner on the live side
		Assignment{Replicas: []MemberID{b, c}, Pending: []Pending{{Member: d}}}, // d's copy is not a replica
	)
	cut := Members{Active: []MemberID{d, e}, Unreachable: []MemberID{a, b, c}}
	next, lost, changed := Plan(cur, cut, cfg)
	if !changed || len(lost) != 0 {
		t.Fatalf("Plan = changed %v, lost %v; want changed, nothing lost", changed, lost)
	}
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
	for p, want := range [][]MemberID{{a, b, c}, nil, nil, {b, c}} {
		got := next.Partitions[p]
		if want != nil && (!slices.Equal(got.Replicas, want) || len(got.Pending) > 0 || got.Lost || got.LostAt != 0) {
			t.Errorf("partition %d: %+v, want it waiting on %v", p, got, want)
		}
	}
	if got := next.Partitions[1].Replicas; len(got) == 0 || got[0] != d {
		t.Errorf("partition 1: replicas %v, want %s promoted", got, d)
	}
	if got := next.Partitions[2].Replicas; len(got) < 2 || got[0] != d || slices.Contains(got, a) {
		t.Errorf("partition 2: replicas %v, want %s still owner, %s gone", got, d, a)
	}
	// Planning again with the same view changes nothing for the waiting partitions.
	again, _, _ := Plan(next, cut, cfg)
	if !slices.Equal(again.Partitions[0].Replicas, []MemberID{a, b, c}) || len(again.Partitions[0].Pending) > 0 {
		t.Errorf("re-plan: partition 0 is %+v", again.Partitions[0])
	}

	// b comes back: the partitions it holds are served by it again, with their data.
	back, lost, _ := Plan(again, Members{Active: []MemberID{b, d, e}, Unreachable: []MemberID{a, c}}, cfg)
	if len(lost) != 0 {
		t.Fatalf("lost %v after b came back", lost)
	}
	if got := back.Partitions[0].Replicas; len(got) == 0 || got[0] != b {
		t.Errorf("partition 0 after b came back: replicas %v, want %s owner", got, b)
	}
	if got := back.Partitions[3].Replicas; len(got) == 0 || got[0] != b {
		t.Errorf("partition 3 after b came back: replicas %v, want %s owner", got, b)
	}

	// The coordinator gives up on the unreachable members: the waiting partitions are lost.
	_, lost, _ = Plan(again, Members{Active: []MemberID{d, e}}, cfg)
	if !slices.Equal(lost, []ID{0, 3}) {
		t.Errorf("lost %v once nobody is awaited, want [0 3]", lost)
	}
}
