package control

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gridmap/gridmap/partition"
)

// Refused sync reports.
//
// An owner's report of a copy that the coordinator refuses (ErrStale) costs a whole copy, which
// the owner sends again; under load after a heal the Jepsen runs of issue 21 refused hundreds of
// them. Why each was refused tells which re-plan made the copy useless, so the coordinator logs,
// once per round, how many it refused and for which reasons (staleReasons), not one line each.

// staleReason says why the coordinator refuses the report that m holds a copy of p, begun by
// from at epoch, given the table t it checks the report against and the planner's members.
func staleReason(t *partition.Table, p partition.ID, from, m partition.MemberID, epoch uint64, members partition.Members) string {
	if int(p) < 0 || int(p) >= t.Count() {
		return "no such partition"
	}
	if t.Owner(p) != from {
		return "sender no longer owner"
	}
	a := t.Partitions[p]
	i := slices.IndexFunc(a.Pending, func(pe partition.Pending) bool { return pe.Member == m })
	switch {
	case i < 0 && slices.Contains(a.Replicas, m):
		// Most often the same report again: the first was committed but its answer did not
		// reach the owner in time, which retried it.
		return "target already a replica"
	case i < 0:
		return "target no longer pending"
	case a.Pending[i].Since > epoch:
		return "copy of an earlier pending stint"
	case slices.Contains(members.Suspect, m):
		return "target suspect"
	case !slices.Contains(members.Active, m) && !slices.Contains(members.Leaving, m):
		return "target not alive"
	}
	return "no change"
}

// staleReasons counts refused reports by reason.
type staleReasons map[string]int

// String lists the reasons, most frequent first, as "reason: count".
func (s staleReasons) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if s[a] != s[b] {
			return s[b] - s[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, s[k])
	}
	return strings.Join(parts, ", ")
}
