package partition

import (
	"slices"
	"testing"
)

// checkDemoted checks a table planned while s is suspect: s is in no
// partition's backups or pending, owns exactly owned, and every assigned
// partition kept a replica.
func checkDemoted(t *testing.T, tbl *Table, s MemberID, owned []ID) {
	t.Helper()
	for p, a := range tbl.Partitions {
		if slices.Contains(tbl.Backups(ID(p)), s) || tbl.IsPending(ID(p), s) {
			t.Fatalf("epoch %d partition %d: suspect %s still a backup or pending: %+v", tbl.Epoch, p, s, a)
		}
		if len(a.Replicas) == 0 {
			t.Fatalf("epoch %d partition %d has no replica", tbl.Epoch, p)
		}
	}
	if got := tbl.Owned(s); !slices.Equal(got, owned) {
		t.Fatalf("epoch %d: suspect owns %v, owned %v", tbl.Epoch, got, owned)
	}
}

func TestSuspectDemotedAndReadmitted(t *testing.T) {
	for _, tc := range []struct{ n, b, maxPending int }{{3, 1, 0}, {4, 2, 0}, {5, 1, 3}, {2, 1, 0}, {3, 0, 0}} {
		cfg := PlanConfig{Backups: tc.b, MaxPendingPerMember: tc.maxPending}
		all := members("m", tc.n)
		cur := start(t, 64, all, cfg)
		s := all[1]
		owned := cur.Owned(s)
		ms := Members{Active: without(all, s), Suspect: []MemberID{s}}

		next, lost, changed := Plan(cur, ms, cfg)
		if tc.b > 0 && !changed || len(lost) != 0 {
			t.Fatalf("n=%d b=%d: changed=%v lost=%v", tc.n, tc.b, changed, lost)
		}
		checkDemoted(t, next, s, owned)
		// Copies restore the backup count on the others; the suspect keeps
		// its partitions, with backups among the others.
		after, st := converge(t, next, ms, cfg)
		checkDemoted(t, after, s, owned)
		if st.Cancelled != 0 {
			t.Errorf("n=%d b=%d: %d copies cancelled", tc.n, tc.b, st.Cancelled)
		}
		r := min(tc.b+1, tc.n-1)
		for p, a := range after.Partitions {
			want := r
			if a.Replicas[0] == s {
				want = 1 + min(tc.b, tc.n-1)
			}
			if len(a.Replicas) != want {
				t.Fatalf("n=%d b=%d: partition %d has replicas %v, want %d", tc.n, tc.b, p, a.Replicas, want)
			}
		}
		// Re-admitted: it gets backups again and the table balances.
		after, _ = converge(t, after, Members{Active: all}, cfg)
		checkBalanced(t, after, all, tc.b)
		if tc.b > 0 && len(after.Held(s)) == len(after.Owned(s)) {
			t.Fatalf("n=%d b=%d: re-admitted member got no backups", tc.n, tc.b)
		}
	}
}

func TestSuspectScenarios(t *testing.T) {
	a, b, c, d, s := MemberID("a"), MemberID("b"), MemberID("c"), MemberID("d"), MemberID("s")
	tests := []struct {
		name    string
		backups int
		cur     Assignment
		ms      Members
		want    []MemberID // replicas after one Plan
		pending []Pending  // pending after one Plan
	}{
		{
			name: "dropped from the backups, a copy elsewhere", backups: 1,
			cur:  Assignment{Replicas: []MemberID{a, s}},
			ms:   Members{Active: []MemberID{a, b}, Suspect: []MemberID{s}},
			want: []MemberID{a}, pending: []Pending{{Member: b}},
		},
		{
			name: "keeps what it owns", backups: 1,
			cur:  Assignment{Replicas: []MemberID{s, a}},
			ms:   Members{Active: []MemberID{a, b}, Suspect: []MemberID{s}},
			want: []MemberID{s, a},
		},
		{
			name: "its hand-off is cancelled", backups: 1,
			cur:  Assignment{Replicas: []MemberID{s, a}, Pending: []Pending{{Member: b, AsOwner: true}}},
			ms:   Members{Active: []MemberID{a, b}, Suspect: []MemberID{s}},
			want: []MemberID{s, a},
		},
		{
			name: "its incoming copy is cancelled", backups: 2,
			cur:  Assignment{Replicas: []MemberID{a, b}, Pending: []Pending{{Member: s}}},
			ms:   Members{Active: []MemberID{a, b, c}, Suspect: []MemberID{s}},
			want: []MemberID{a, b}, pending: []Pending{{Member: c}},
		},
		{
			name: "its incoming ownership is cancelled", backups: 1,
			cur:  Assignment{Replicas: []MemberID{a, b}, Pending: []Pending{{Member: s, AsOwner: true}}},
			ms:   Members{Active: []MemberID{a, b}, Suspect: []MemberID{s}},
			want: []MemberID{a, b},
		},
		{
			name: "not promoted while another backup lives", backups: 2,
			cur:  Assignment{Replicas: []MemberID{d, s, a}},
			ms:   Members{Active: []MemberID{a, c}, Suspect: []MemberID{s}},
			want: []MemberID{a}, pending: []Pending{{Member: c}},
		},
		{
			name: "promoted when it holds the only copy", backups: 1,
			cur:  Assignment{Replicas: []MemberID{d, s}},
			ms:   Members{Active: []MemberID{a, c}, Suspect: []MemberID{s}},
			want: []MemberID{s}, pending: []Pending{{Member: a}},
		},
		{
			name: "every member suspect: nothing moves", backups: 1,
			cur:  Assignment{Replicas: []MemberID{s, a}},
			ms:   Members{Suspect: []MemberID{s, a}},
			want: []MemberID{s},
		},
		{
			name: "suspect and leaving: hands off", backups: 1,
			cur:  Assignment{Replicas: []MemberID{s, a}},
			ms:   Members{Active: []MemberID{a, b}, Leaving: []MemberID{s}, Suspect: []MemberID{s}},
			want: []MemberID{s, a}, pending: []Pending{{Member: a, AsOwner: true}, {Member: b}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := PlanConfig{Backups: tc.backups}
			cur := table(5, tc.cur)
			next, lost, _ := Plan(cur, tc.ms, cfg)
			if len(lost) != 0 {
				t.Fatalf("lost %v", lost)
			}
			got := next.Partitions[0]
			var wantPending []Pending // a stint that goes on keeps its epoch, a new one has next's
			for _, pe := range tc.pending {
				pe.Since = next.Epoch
				if i := pendingIndex(tc.cur.Pending, pe.Member); i >= 0 {
					pe.Since = tc.cur.Pending[i].Since
				}
				wantPending = append(wantPending, pe)
			}
			if !slices.Equal(got.Replicas, tc.want) || !slices.Equal(got.Pending, wantPending) {
				t.Fatalf("replicas %v pending %v, want %v pending %v", got.Replicas, got.Pending, tc.want, wantPending)
			}
			if err := next.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCompleteRefusesSuspect(t *testing.T) {
	cfg := PlanConfig{Backups: 1}
	cur := table(5, Assignment{Replicas: []MemberID{"a"}, Pending: []Pending{{Member: "s"}}})
	ms := Members{Active: []MemberID{"a"}, Suspect: []MemberID{"s"}}
	if next, changed := Complete(cur, 0, "s", ms, cfg); changed || next != cur {
		t.Fatal("Complete of a suspect's copy was accepted")
	}
}
