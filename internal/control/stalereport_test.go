package control

import (
	"testing"

	"github.com/gridmap/gridmap/partition"
)

func TestStaleReason(t *testing.T) {
	tb := partition.NewTable(2)
	tb.Epoch = 10
	tb.Partitions[0] = partition.Assignment{Replicas: []partition.MemberID{"a", "b"}, Pending: []partition.Pending{{Member: "x", Since: 8}}}
	tb.Partitions[1] = partition.Assignment{Replicas: []partition.MemberID{"b", "a"}}
	alive := partition.Members{Active: []partition.MemberID{"a", "b", "x"}}
	for _, c := range []struct {
		p       partition.ID
		from, m partition.MemberID
		epoch   uint64
		members partition.Members
		want    string
	}{
		{5, "a", "x", 9, alive, "no such partition"},
		{0, "b", "x", 9, alive, "sender no longer owner"},
		{1, "b", "x", 9, alive, "target no longer pending"},
		{0, "a", "x", 7, alive, "copy of an earlier pending stint"},
		{0, "a", "x", 8, partition.Members{Active: []partition.MemberID{"a", "b"}, Suspect: []partition.MemberID{"x"}}, "target suspect"},
		{0, "a", "x", 9, partition.Members{Active: []partition.MemberID{"a", "b"}}, "target not alive"},
		{0, "a", "x", 9, alive, "no change"},
	} {
		if got := staleReason(tb, c.p, c.from, c.m, c.epoch, c.members); got != c.want {
			t.Errorf("staleReason(p %d, from %s, to %s, epoch %d) = %q, want %q", c.p, c.from, c.m, c.epoch, got, c.want)
		}
	}
	s := staleReasons{"target suspect": 2, "sender no longer owner": 5, "copy of an earlier pending stint": 2}
	if got, want := s.String(), "sender no longer owner: 5, copy of an earlier pending stint: 2, target suspect: 2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
