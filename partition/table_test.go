package partition

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func sample() *Table {
	t := NewTable(3)
	t.Epoch = 7
	t.Partitions[0] = Assignment{Replicas: []MemberID{"a", "b"}, Pending: []Pending{{Member: "c", AsOwner: true}}}
	t.Partitions[1] = Assignment{Replicas: []MemberID{"b"}}
	return t
}

func TestTableAccessors(t *testing.T) {
	tbl := sample()
	if tbl.Count() != 3 || NewTable(0).Count() != DefaultCount {
		t.Fatalf("Count %d, NewTable(0).Count %d", tbl.Count(), NewTable(0).Count())
	}
	tests := []struct {
		p       ID
		owner   MemberID
		backups []MemberID
	}{
		{0, "a", []MemberID{"b"}},
		{1, "b", nil},
		{2, "", nil},
		{3, "", nil},
		{-1, "", nil},
	}
	for _, tc := range tests {
		if got := tbl.Owner(tc.p); got != tc.owner {
			t.Errorf("Owner(%d) = %q, want %q", tc.p, got, tc.owner)
		}
		if got := tbl.Backups(tc.p); !slices.Equal(got, tc.backups) {
			t.Errorf("Backups(%d) = %v, want %v", tc.p, got, tc.backups)
		}
	}
	if !tbl.IsReplica(0, "b") || tbl.IsReplica(0, "c") || tbl.IsReplica(9, "a") {
		t.Error("IsReplica wrong")
	}
	if !tbl.IsPending(0, "c") || tbl.IsPending(0, "a") || tbl.IsPending(9, "c") {
		t.Error("IsPending wrong")
	}
	if got := tbl.Owned("b"); !slices.Equal(got, []ID{1}) {
		t.Errorf("Owned(b) = %v", got)
	}
	if got := tbl.Held("b"); !slices.Equal(got, []ID{0, 1}) {
		t.Errorf("Held(b) = %v", got)
	}
	if got := tbl.Members(); !slices.Equal(got, []MemberID{"a", "b", "c"}) {
		t.Errorf("Members() = %v", got)
	}
	// Appending to Backups must not write into the table.
	_ = append(tbl.Backups(0), "x")
	if err := tbl.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCloneIsDeep(t *testing.T) {
	tbl := sample()
	c := tbl.Clone()
	if !c.Equal(tbl) {
		t.Fatal("clone differs")
	}
	c.Partitions[0].Replicas[0] = "z"
	c.Partitions[0].Pending[0].Member = "z"
	c.Epoch++
	if tbl.Owner(0) != "a" || !tbl.IsPending(0, "c") || tbl.Epoch != 7 {
		t.Fatal("modifying the clone changed the original")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		a    Assignment
		want string // "" for valid
	}{
		{"empty", Assignment{}, ""},
		{"owner and backups", Assignment{Replicas: []MemberID{"a", "b", "c"}}, ""},
		{"copy to a new member", Assignment{Replicas: []MemberID{"a"}, Pending: []Pending{{Member: "b"}}}, ""},
		{"promotion hand-off", Assignment{Replicas: []MemberID{"a", "b"}, Pending: []Pending{{Member: "b", AsOwner: true}}}, ""},
		{"duplicate replica", Assignment{Replicas: []MemberID{"a", "b", "a"}}, "replica twice"},
		{"empty member", Assignment{Replicas: []MemberID{"a", ""}}, "empty member"},
		{"duplicate pending", Assignment{Replicas: []MemberID{"a"}, Pending: []Pending{{Member: "b"}, {Member: "b"}}}, "pending twice"},
		{"backup pending as backup", Assignment{Replicas: []MemberID{"a", "b"}, Pending: []Pending{{Member: "b"}}}, "also pending"},
		{"owner pending", Assignment{Replicas: []MemberID{"a"}, Pending: []Pending{{Member: "a", AsOwner: true}}}, "owner"},
		{"two pending owners", Assignment{Replicas: []MemberID{"a"}, Pending: []Pending{{Member: "b", AsOwner: true}, {Member: "c", AsOwner: true}}}, "pending owners"},
		{"pending without owner", Assignment{Pending: []Pending{{Member: "b"}}}, "no owner"},
	}
	for _, tc := range tests {
		tbl := NewTable(2)
		tbl.Partitions[1] = tc.a
		err := tbl.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one wrapping ErrInvalidTable mentioning %q", tc.name, err, tc.want)
		}
	}
	if err := (&Table{}).Validate(); !errors.Is(err, ErrInvalidTable) {
		t.Errorf("table without partitions: %v", err)
	}
	// Every problem is reported at once.
	tbl := NewTable(2)
	tbl.Partitions[0].Replicas = []MemberID{"a", "a"}
	tbl.Partitions[1].Pending = []Pending{{Member: "b"}}
	if err := tbl.Validate(); err == nil || !strings.Contains(err.Error(), "partition 0") || !strings.Contains(err.Error(), "partition 1") {
		t.Errorf("want both problems reported, got %v", err)
	}
}

func TestPlanConfigValidate(t *testing.T) {
	if err := (PlanConfig{Backups: 1}).Validate(); err != nil {
		t.Fatal(err)
	}
	err := PlanConfig{Backups: 7, MaxPendingPerMember: -1}.Validate()
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Backups") || !strings.Contains(err.Error(), "MaxPending") {
		t.Fatalf("got %v", err)
	}
}
