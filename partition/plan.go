package partition

import (
	"errors"
	"fmt"
	"slices"
)

// MaxBackups is the largest supported number of synchronous backups.
const MaxBackups = 6

// Members is the cluster membership the planner works with. Order and
// duplicates do not matter. A member listed in Active and Leaving counts as
// leaving; a member listed in Suspect is suspect, whatever the other lists
// say (and leaving too if Leaving lists it). Any member the table names
// that is in none of the lists is dead.
type Members struct {
	Active  []MemberID // alive and eligible to hold partitions
	Leaving []MemberID // alive, leaving gracefully: must end up holding nothing, may still serve as source
	// Suspect members are alive but failed to acknowledge writes in time
	// (see control's ReportUnreachable): a suspect keeps owning what it
	// owns, since its owner lease may still be valid and only a death (or a
	// hand-off) may end that, but it holds no backups and receives no
	// copies, and it is not made a new owner, except that it is promoted
	// when it holds the only live copy of a partition (a partition never
	// loses its last replica to a suspicion). Once it is listed as Active
	// again the planner gives it copies as usual.
	Suspect []MemberID
	// Unreachable members are dead for the planner, like members in no list, except for a
	// partition whose every replica is dead: while one of its replicas is listed here, the
	// partition keeps those replicas (the unreachable ones, in their order) and waits for one to
	// come back (listed Active, Leaving or Suspect again) instead of being lost. The coordinator
	// lists members that vanished together with most of the cluster, as a network partition
	// does, which may return with their data (see control's planMembers); a partition that
	// waits is not served (its owner is not there) and gets no copies.
	Unreachable []MemberID
}

// PlanConfig tunes the planner.
type PlanConfig struct {
	// Backups is the number of synchronous backups per partition, 0 to
	// MaxBackups. Values outside the range are clamped by Plan and Complete.
	Backups int
	// MaxPendingPerMember bounds the concurrent incoming copies per member;
	// 0 means unlimited. Promotion hand-offs (nothing to copy) do not count.
	MaxPendingPerMember int
	// RecreateLost: a partition that lost every replica is re-created empty
	// and served at once (LostAt still records the loss). Default false: it
	// is marked Lost and not served until reset (see ResetLost).
	RecreateLost bool
}

// WithDefaults returns c with its defaults applied, as every configuration of the module
// offers. Each zero field of PlanConfig is meaningful as it is (no backups, no bound on
// copies, lost partitions held until reset), so c is returned unchanged; callers wanting
// the module's default of one backup set it (gridmap.Config.BackupCount does).
func (c PlanConfig) WithDefaults() PlanConfig { return c }

// Validate reports every problem of c in one error wrapping ErrInvalidConfig.
func (c PlanConfig) Validate() error {
	var errs []error
	if c.Backups < 0 || c.Backups > MaxBackups {
		errs = append(errs, fmt.Errorf("%w: Backups %d outside 0..%d", ErrInvalidConfig, c.Backups, MaxBackups))
	}
	if c.MaxPendingPerMember < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxPendingPerMember %d is negative", ErrInvalidConfig, c.MaxPendingPerMember))
	}
	return errors.Join(errs...)
}

func (c PlanConfig) backups() int {
	return min(max(c.Backups, 0), MaxBackups)
}

// Plan returns the next table (cur.Epoch+1) or (cur, nil, false) when nothing
// changes. cur is not modified. In order:
//  1. dead members are removed from Replicas and Pending; if an owner died the
//     first live backup (active or leaving, a suspect only when no other is
//     left) is promoted; a partition left with no live replica (a pending
//     member is not one: its copy is incomplete) is reported in lost
//     (ascending), marked in the table (LostAt = next.Epoch, Lost unless
//     cfg.RecreateLost) and assigned afresh, unless one of its replicas is
//     listed Unreachable: then it keeps its unreachable replicas and waits for
//     them, with no Pending, served by nobody; suspects are removed from the
//     backups and Pending of every partition (they keep what they own);
//  2. an empty table (first assignment) and lost partitions are assigned
//     directly into Replicas (nothing to copy); with no active member they
//     stay unassigned until one exists;
//  3. toward a balanced target (owners per active member within one of each
//     other, replicas on distinct members, few moves, deterministic for the
//     same inputs; a suspect stays the target owner of what it owns), members that should hold a partition but do not are added
//     to Pending (AsOwner when they should become its owner), at most
//     MaxPendingPerMember incoming copies per member. Pending entries the
//     target no longer wants are cancelled. A live owner is never replaced
//     directly: that takes a hand-off through Complete. Replicas that are not
//     in the target are trimmed when the partition has more than Backups+1
//     replicas, or when every target member already holds it.
//
// Pending entries survive an owner change caused by a death: the new owner
// (re)starts their copies. Leaving members end up holding nothing once every
// Complete the plans ask for has been applied. The Lost and LostAt marks of
// partitions that are not lost in this plan are kept as they are (only
// ResetLost clears Lost).
func Plan(cur *Table, members Members, cfg PlanConfig) (next *Table, lost []ID, changed bool) {
	ro := newRoster(members)
	b := cfg.backups()
	next = cur.Clone()

	// 1. Forget the dead, demote the suspects; partitions whose replicas are all gone wait for
	// the unreachable ones.
	waiting := make([]bool, len(next.Partitions))
	for p := range next.Partitions {
		a := &next.Partitions[p]
		had := len(a.Replicas) > 0
		if had && !slices.ContainsFunc(a.Replicas, ro.alive) && slices.ContainsFunc(a.Replicas, ro.isUnreachable) {
			a.Replicas = slices.DeleteFunc(a.Replicas, func(m MemberID) bool { return !ro.unreachable[m] })
			a.Pending = nil
			waiting[p] = true
			continue
		}
		ownerAlive := had && ro.alive(a.Replicas[0])
		a.Replicas = slices.DeleteFunc(a.Replicas, func(m MemberID) bool { return !ro.alive(m) })
		a.Pending = slices.DeleteFunc(a.Pending, func(pe Pending) bool { return !ro.alive(pe.Member) || ro.suspect[pe.Member] })
		if len(a.Replicas) == 0 {
			a.Replicas, a.Pending = nil, nil
			if had {
				lost = append(lost, ID(p))
				a.LostAt, a.Lost = cur.Epoch+1, !cfg.RecreateLost
			}
			continue
		}
		if !ownerAlive {
			// Promote the first backup that is not suspect, if any.
			if i := slices.IndexFunc(a.Replicas, func(m MemberID) bool { return !ro.suspect[m] }); i > 0 {
				m := a.Replicas[i]
				copy(a.Replicas[1:i+1], a.Replicas[:i])
				a.Replicas[0] = m
			}
		}
		a.Replicas = append(a.Replicas[:1], slices.DeleteFunc(a.Replicas[1:], func(m MemberID) bool { return ro.suspect[m] })...)
	}

	tg := target(next, ro, b)

	// 2. Assign unassigned partitions directly.
	for p := range next.Partitions {
		a := &next.Partitions[p]
		if len(a.Replicas) == 0 && len(tg[p]) > 0 {
			a.Replicas = slices.Clone(tg[p])
		}
	}

	// 3. Pending copies toward the target, then trimming.
	incoming := make(map[MemberID]int)
	want := make([][]Pending, len(next.Partitions))
	for p := range next.Partitions {
		if waiting[p] {
			continue
		}
		a := &next.Partitions[p]
		want[p] = wantedPending(a, tg[p])
		kept := a.Pending[:0]
		for _, pe := range a.Pending {
			if i := pendingIndex(want[p], pe.Member); i >= 0 {
				w := want[p][i] // AsOwner follows the target; the stint goes on
				w.Since = pe.Since
				kept = append(kept, w)
				if !isPromotion(a, want[p][i]) {
					incoming[pe.Member]++
				}
			}
		}
		a.Pending = kept
	}
	for p := range next.Partitions {
		if waiting[p] {
			continue
		}
		a := &next.Partitions[p]
		for _, pe := range want[p] {
			if pendingIndex(a.Pending, pe.Member) >= 0 {
				continue
			}
			if !isPromotion(a, pe) {
				if cfg.MaxPendingPerMember > 0 && incoming[pe.Member] >= cfg.MaxPendingPerMember {
					continue
				}
				incoming[pe.Member]++
			}
			pe.Since = cur.Epoch + 1 // a new stint: copies begun before it do not count
			a.Pending = append(a.Pending, pe)
		}
		if len(a.Pending) == 0 {
			a.Pending = nil
		}
		order(a, tg[p])
		trim(a, tg[p], b)
	}

	if len(lost) == 0 && sameAssignments(cur, next) {
		return cur, nil, false
	}
	next.Epoch = cur.Epoch + 1
	return next, lost, true
}

// CompleteCopy is Complete for a copy that the owner began under its table at copyEpoch: it
// changes nothing (a stale report) when m became pending for p, in the stint cur records, after
// copyEpoch. Such a copy belongs to an earlier stint, between which and this one m was not
// pending: m may have dropped what it had received of it (a member frees the partitions the
// table does not give it), and the owner's writes of that interval were not replicated to m,
// so m would join the replicas with a partial copy, and a promotion would serve it.
func CompleteCopy(cur *Table, p ID, m MemberID, copyEpoch uint64, members Members, cfg PlanConfig) (next *Table, changed bool) {
	a := cur.at(p)
	if a == nil {
		return cur, false
	}
	if i := pendingIndex(a.Pending, m); i >= 0 && a.Pending[i].Since > copyEpoch {
		return cur, false
	}
	return Complete(cur, p, m, members, cfg)
}

// Complete records that pending member m of partition p holds a full copy
// (the owner reported it): m moves into Replicas (at index 0 when AsOwner,
// the old owner becoming a backup if the target keeps it), replicas beyond
// the target are trimmed as in Plan, and the epoch increments. cur is not
// modified; next shares the assignments of the other partitions with it, so
// neither may be modified afterwards (use Clone for a private copy). changed is false, and cur is returned, when m is not pending for
// p in cur (a stale report), or m is no longer alive according to members, or
// m is suspect (the next Plan cancels its copies).
func Complete(cur *Table, p ID, m MemberID, members Members, cfg PlanConfig) (next *Table, changed bool) {
	a := cur.at(p)
	if a == nil {
		return cur, false
	}
	i := pendingIndex(a.Pending, m)
	ro := newRoster(members)
	if i < 0 || !ro.alive(m) || ro.suspect[m] {
		return cur, false
	}
	// Only p changes: the other assignments are shared with cur (tables are
	// immutable once returned).
	next = &Table{Epoch: cur.Epoch, Partitions: slices.Clone(cur.Partitions)}
	a = &next.Partitions[p]
	a.Replicas, a.Pending = slices.Clone(a.Replicas), slices.Clone(a.Pending)
	pe := a.Pending[i]
	a.Pending = slices.Delete(a.Pending, i, i+1)
	if len(a.Pending) == 0 {
		a.Pending = nil
	}
	a.Replicas = slices.DeleteFunc(a.Replicas, func(r MemberID) bool { return r == m })
	if pe.AsOwner && len(a.Replicas) > 0 {
		// The old owner becomes the last backup; trim drops it unless the
		// target keeps it.
		a.Replicas = append(append([]MemberID{m}, a.Replicas[1:]...), a.Replicas[0])
	} else {
		// First backup: where appendCandidates ranked it while it was pending.
		a.Replicas = slices.Insert(a.Replicas, min(1, len(a.Replicas)), m)
	}
	b := cfg.backups()
	tg := target(next, ro, b)
	order(a, tg[p])
	trim(a, tg[p], b)
	next.Epoch = cur.Epoch + 1
	return next, true
}

// roster is the normalised membership.
type roster struct {
	active      []MemberID       // sorted, distinct, not leaving, not suspect
	index       map[MemberID]int // position in active
	leaving     map[MemberID]bool
	suspect     map[MemberID]bool
	unreachable map[MemberID]bool // dead, but awaited by partitions with no live replica
}

func newRoster(ms Members) roster {
	r := roster{index: make(map[MemberID]int), leaving: make(map[MemberID]bool), suspect: make(map[MemberID]bool),
		unreachable: make(map[MemberID]bool)}
	for _, m := range ms.Unreachable {
		if m != "" {
			r.unreachable[m] = true
		}
	}
	for _, m := range ms.Leaving {
		if m != "" {
			r.leaving[m] = true
		}
	}
	for _, m := range ms.Suspect {
		if m != "" {
			r.suspect[m] = true
		}
	}
	for _, m := range ms.Active {
		if m != "" && !r.leaving[m] && !r.suspect[m] {
			r.active = append(r.active, m)
		}
	}
	slices.Sort(r.active)
	r.active = slices.Compact(r.active)
	for i, m := range r.active {
		r.index[m] = i
	}
	return r
}

func (r roster) alive(m MemberID) bool {
	_, ok := r.index[m]
	return ok || r.leaving[m] || r.suspect[m]
}

// isUnreachable reports whether m is listed unreachable and not alive.
func (r roster) isUnreachable(m MemberID) bool { return r.unreachable[m] && !r.alive(m) }

// wantedPending lists, in target order, the pending entries that bring a
// toward target tg.
func wantedPending(a *Assignment, tg []MemberID) []Pending {
	if len(a.Replicas) == 0 {
		return nil
	}
	var ps []Pending
	for i, m := range tg {
		switch {
		case i == 0 && a.Replicas[0] == m:
		case i == 0:
			ps = append(ps, Pending{Member: m, AsOwner: true}) // copy or promotion
		case !slices.Contains(a.Replicas, m):
			ps = append(ps, Pending{Member: m})
		}
	}
	return ps
}

func isPromotion(a *Assignment, pe Pending) bool {
	return pe.AsOwner && slices.Contains(a.Replicas, pe.Member)
}

// trim removes backups of a that are not in target tg, last first, while a
// holds more than backups+1 replicas or while every member of tg is already a
// replica. The owner is never trimmed. Without a target nothing is trimmed.
func trim(a *Assignment, tg []MemberID, backups int) {
	if len(tg) == 0 {
		return
	}
	inPlace := true
	for _, m := range tg {
		if !slices.Contains(a.Replicas, m) {
			inPlace = false
			break
		}
	}
	for i := len(a.Replicas) - 1; i >= 1; i-- {
		if slices.Contains(tg, a.Replicas[i]) {
			continue
		}
		if inPlace || len(a.Replicas) > backups+1 {
			a.Replicas = slices.Delete(a.Replicas, i, i+1)
		}
	}
}

// order puts the backups of a that target tg keeps before the ones it drops,
// keeping their relative order otherwise.
func order(a *Assignment, tg []MemberID) {
	if len(a.Replicas) < 3 || len(tg) == 0 {
		return
	}
	bs := a.Replicas[1:]
	in := slices.DeleteFunc(slices.Clone(bs), func(m MemberID) bool { return !slices.Contains(tg, m) })
	out := slices.DeleteFunc(slices.Clone(bs), func(m MemberID) bool { return slices.Contains(tg, m) })
	copy(bs, append(in, out...))
}
