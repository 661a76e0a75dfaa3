package partition

import (
	"errors"
	"fmt"
	"slices"
)

// MemberID identifies one incarnation of a member: a process gets a fresh one
// at every start, so a restarted process is a new member.
type MemberID string

// Pending is a member that is receiving a copy of a partition from its owner.
type Pending struct {
	Member MemberID `msgpack:"m"`
	// AsOwner: the owner hands ownership to Member once Member is in sync
	// (the final hand-off pauses operations on that one partition).
	//
	// An AsOwner entry may name a member that is already a backup of the
	// partition: a promotion hand-off with nothing to copy. The planner
	// uses it only when no member outside the replica set can take the
	// ownership (for example a member leaving a two-member cluster with one
	// backup), because a live owner is never replaced without a hand-off.
	AsOwner bool `msgpack:"o"`
	// Since is the epoch of the table that made Member pending, for this stint: an entry
	// dropped (its member suspected or dead, the target changed) and added again later is a new
	// stint with a later Since. A copy the owner began under an older table does not complete
	// it (see CompleteCopy): the member may have dropped what it received of that copy, and
	// writes made while it was not pending were not replicated to it. 0 in tables written
	// before the field existed, which accepts any copy.
	Since uint64 `msgpack:"s,omitempty"`
}

// Assignment is who holds one partition.
type Assignment struct {
	// Replicas[0] is the owner, the rest are synchronous backups in promotion order.
	// Every member listed here holds a complete, in-sync copy.
	Replicas []MemberID `msgpack:"r"`
	// Pending members are receiving a copy from the owner (migration / backup restoration).
	Pending []Pending `msgpack:"p"`
	// LostAt is the epoch of the latest table in which the partition had lost every replica
	// (its data is gone) and was assigned afresh; 0 if that never happened. It only grows, so a
	// member that skipped tables still sees that a loss happened (LostAt above the last value
	// it saw).
	LostAt uint64 `msgpack:"l,omitempty"`
	// Lost: the partition lost its data (at LostAt) and is not served until the application
	// resets it; operations on it fail with an error that says so. Plan leaves it false when
	// PlanConfig.RecreateLost asks to re-create lost partitions empty.
	Lost bool `msgpack:"x,omitempty"`
}

// Table is the partition table: owner, backups and pending copies of every
// partition. A committed Table is shared and must never be mutated; Plan and
// Complete return modified copies.
type Table struct {
	Epoch      uint64       `msgpack:"e"` // only grows; every committed change increments it
	Partitions []Assignment `msgpack:"a"` // len == partition count
}

// NewTable returns an empty table (epoch 0, nothing assigned) of count
// partitions. count <= 0 means DefaultCount.
func NewTable(count int) *Table {
	if count <= 0 {
		count = DefaultCount
	}
	return &Table{Partitions: make([]Assignment, count)}
}

// Count is the number of partitions.
func (t *Table) Count() int { return len(t.Partitions) }

func (t *Table) at(p ID) *Assignment {
	if p < 0 || int(p) >= len(t.Partitions) {
		return nil
	}
	return &t.Partitions[p]
}

// Owner is the owner of partition p, "" if p is unassigned or out of range.
func (t *Table) Owner(p ID) MemberID {
	if a := t.at(p); a != nil && len(a.Replicas) > 0 {
		return a.Replicas[0]
	}
	return ""
}

// Backups are the synchronous backups of p in promotion order (nil if none).
// The slice belongs to the table: read it, never modify it.
func (t *Table) Backups(p ID) []MemberID {
	if a := t.at(p); a != nil && len(a.Replicas) > 1 {
		n := len(a.Replicas)
		return a.Replicas[1:n:n]
	}
	return nil
}

// IsReplica reports whether m is the owner or a backup of p.
func (t *Table) IsReplica(p ID, m MemberID) bool {
	a := t.at(p)
	return a != nil && slices.Contains(a.Replicas, m)
}

// IsPending reports whether m is receiving a copy of p.
func (t *Table) IsPending(p ID, m MemberID) bool {
	a := t.at(p)
	return a != nil && pendingIndex(a.Pending, m) >= 0
}

// Owned lists, in ascending order, the partitions m owns.
func (t *Table) Owned(m MemberID) []ID {
	var ids []ID
	for p, a := range t.Partitions {
		if len(a.Replicas) > 0 && a.Replicas[0] == m {
			ids = append(ids, ID(p))
		}
	}
	return ids
}

// Held lists, in ascending order, the partitions of which m is a replica
// (owner or backup).
func (t *Table) Held(m MemberID) []ID {
	var ids []ID
	for p, a := range t.Partitions {
		if slices.Contains(a.Replicas, m) {
			ids = append(ids, ID(p))
		}
	}
	return ids
}

// Members lists, sorted, every member the table names as replica or pending.
func (t *Table) Members() []MemberID {
	seen := make(map[MemberID]struct{})
	for _, a := range t.Partitions {
		for _, m := range a.Replicas {
			seen[m] = struct{}{}
		}
		for _, pe := range a.Pending {
			seen[pe.Member] = struct{}{}
		}
	}
	ms := make([]MemberID, 0, len(seen))
	for m := range seen {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	return ms
}

// Clone returns a deep copy of t.
func (t *Table) Clone() *Table {
	c := &Table{Epoch: t.Epoch, Partitions: make([]Assignment, len(t.Partitions))}
	for p, a := range t.Partitions {
		c.Partitions[p] = Assignment{
			Replicas: slices.Clone(a.Replicas),
			Pending:  slices.Clone(a.Pending),
			LostAt:   a.LostAt,
			Lost:     a.Lost,
		}
	}
	return c
}

// Equal reports whether t and o have the same epoch and assignments (nil and
// empty slices are equal).
func (t *Table) Equal(o *Table) bool {
	return t.Epoch == o.Epoch && sameAssignments(t, o)
}

func sameAssignments(t, o *Table) bool {
	if len(t.Partitions) != len(o.Partitions) {
		return false
	}
	for p := range t.Partitions {
		a, b := &t.Partitions[p], &o.Partitions[p]
		if !slices.Equal(a.Replicas, b.Replicas) || !slices.Equal(a.Pending, b.Pending) || a.LostAt != b.LostAt || a.Lost != b.Lost {
			return false
		}
	}
	return true
}

// Validate checks the table's invariants and reports every violation in one
// error wrapping ErrInvalidTable:
//   - the table has at least one partition;
//   - member IDs are not empty;
//   - the replicas of a partition are distinct;
//   - pending members are distinct and not replicas, except one AsOwner entry
//     that may name a backup (a promotion hand-off), never the owner;
//   - at most one pending entry per partition is AsOwner;
//   - a partition with pending members has an owner (the source of the copy);
//   - a Lost partition has a LostAt epoch.
func (t *Table) Validate() error {
	var errs []error
	bad := func(p int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: partition %d: %s", ErrInvalidTable, p, fmt.Sprintf(format, args...)))
	}
	if len(t.Partitions) == 0 {
		errs = append(errs, fmt.Errorf("%w: no partitions", ErrInvalidTable))
	}
	for p, a := range t.Partitions {
		for i, m := range a.Replicas {
			if m == "" {
				bad(p, "empty member ID in replicas")
			} else if slices.Contains(a.Replicas[:i], m) {
				bad(p, "member %q is a replica twice", m)
			}
		}
		owners := 0
		for i, pe := range a.Pending {
			m := pe.Member
			switch {
			case m == "":
				bad(p, "empty member ID in pending")
			case pendingIndex(a.Pending[:i], m) >= 0:
				bad(p, "member %q is pending twice", m)
			case len(a.Replicas) > 0 && a.Replicas[0] == m:
				bad(p, "owner %q is also pending", m)
			case slices.Contains(a.Replicas, m) && !pe.AsOwner:
				bad(p, "backup %q is also pending as a backup", m)
			}
			if pe.AsOwner {
				owners++
			}
		}
		if owners > 1 {
			bad(p, "%d pending owners", owners)
		}
		if len(a.Pending) > 0 && len(a.Replicas) == 0 {
			bad(p, "pending members but no owner to copy from")
		}
		if a.Lost && a.LostAt == 0 {
			bad(p, "lost without a LostAt epoch")
		}
	}
	return errors.Join(errs...)
}

func pendingIndex(ps []Pending, m MemberID) int {
	for i, pe := range ps {
		if pe.Member == m {
			return i
		}
	}
	return -1
}

// Lost lists, in ascending order, the partitions marked Lost.
func (t *Table) Lost() []ID {
	var ids []ID
	for p, a := range t.Partitions {
		if a.Lost {
			ids = append(ids, ID(p))
		}
	}
	return ids
}

// ResetLost clears the Lost mark of the partitions in parts (of every
// partition when parts is empty), so that they are served again, empty;
// their LostAt stays, so members still see that a loss happened. Partitions
// out of range and partitions not marked Lost are ignored. next is
// cur.Epoch+1; cur is not modified and next shares the assignments of the
// other partitions with it (tables are immutable once returned). It returns
// (cur, false) when no partition was marked.
func ResetLost(cur *Table, parts []ID) (next *Table, changed bool) {
	reset := func(p ID) {
		a := cur.at(p)
		if a == nil || !a.Lost {
			return
		}
		if next == nil {
			next = &Table{Epoch: cur.Epoch + 1, Partitions: slices.Clone(cur.Partitions)}
		}
		next.Partitions[p].Lost = false
	}
	if len(parts) == 0 {
		for p := range cur.Partitions {
			reset(ID(p))
		}
	} else {
		for _, p := range parts {
			reset(p)
		}
	}
	if next == nil {
		return cur, false
	}
	return next, true
}
