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
//     cfg.RecreateLost) and assigned afresh; suspects are removed from the
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

	// 1. Forget the dead, demote the suspects.
	for p := range next.Partitions {
		a := &next.Partitions[p]
		had := len(a.Replicas) > 0
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
		a := &next.Partitions[p]
		want[p] = wantedPending(a, tg[p])
		kept := a.Pending[:0]
		for _, pe := range a.Pending {
			if i := pendingIndex(want[p], pe.Member); i >= 0 {
				kept = append(kept, want[p][i]) // AsOwner follows the target
				if !isPromotion(a, want[p][i]) {
					incoming[pe.Member]++
				}
			}
		}
		a.Pending = kept
	}
	for p := range next.Partitions {
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
	active  []MemberID       // sorted, distinct, not leaving, not suspect
	index   map[MemberID]int // position in active
	leaving map[MemberID]bool
	suspect map[MemberID]bool
}

func newRoster(ms Members) roster {
	r := roster{index: make(map[MemberID]int), leaving: make(map[MemberID]bool), suspect: make(map[MemberID]bool)}
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

// target is computeTarget with the partitions of suspects pinned: a suspect
// that is not leaving stays the target owner of every partition it owns,
// with backups taken from the computed target (members that already hold
// the partition first), so that its partitions get their backups elsewhere
// without a hand-off. Partitions without a computed target (no active
// member) get none.
func target(t *Table, ro roster, backups int) [][]MemberID {
	tg := computeTarget(t, ro, backups)
	if len(ro.suspect) == 0 {
		return tg
	}
	for p := range t.Partitions {
		a := &t.Partitions[p]
		if len(a.Replicas) == 0 || len(tg[p]) == 0 {
			continue
		}
		s := a.Replicas[0]
		if !ro.suspect[s] || ro.leaving[s] {
			continue
		}
		pinned := make([]MemberID, 1, 1+backups)
		pinned[0] = s
		for pass := range 2 { // holders first, then the others
			for _, m := range tg[p] {
				if len(pinned) > backups {
					break
				}
				if holds(a, m) == (pass == 0) && !slices.Contains(pinned, m) {
					pinned = append(pinned, m)
				}
			}
		}
		tg[p] = pinned
	}
	return tg
}

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

// computeTarget returns, per partition, the members that should hold it:
// owner first, then backups, min(backups+1, active) distinct active members.
// Quotas keep owners per member within one of each other and total replicas
// per member within one where the distinct-member rule allows. Current
// holders are kept first (a pending AsOwner member counts as the owner, a
// pending member as a holder), so the target does not move when a Complete
// applies a step of it, and only what must move moves.
func computeTarget(t *Table, ro roster, backups int) [][]MemberID {
	P, N := len(t.Partitions), len(ro.active)
	tg := make([][]MemberID, P)
	if N == 0 {
		return tg
	}
	r := min(backups+1, N)
	// Quotas; the extra one goes to the first members in ID order, which
	// stays fixed while the membership does.
	ownQ, repQ := make([]int, N), make([]int, N)
	for i := range N {
		ownQ[i] = P / N
		if i < P%N {
			ownQ[i]++
		}
		repQ[i] = P * r / N
		if i < P*r%N {
			repQ[i]++
		}
	}
	idx := func(m MemberID) int {
		if i, ok := ro.index[m]; ok {
			return i
		}
		return -1
	}

	// Owners.
	owner := make([]int, P)
	own := make([]int, N)
	for p := range owner {
		owner[p] = -1
	}
	// Keep effective owners (a pending hand-off, else the owner) up to their
	// quota: first in partitions that hold enough active copies, then in the
	// others, so a member over its quota (after promotions) gives away
	// partitions that need a copy anyway.
	cand := make([][]int, P) // active candidates of each partition, in order
	var scratch []MemberID
	buf := make([]int, 0, P*(r+1))
	for p := range P {
		scratch = appendCandidates(scratch[:0], &t.Partitions[p])
		start := len(buf)
		for _, m := range scratch {
			if i := idx(m); i >= 0 && !slices.Contains(buf[start:], i) {
				buf = append(buf, i)
			}
		}
		cand[p] = buf[start:len(buf):len(buf)]
	}
	complete := func(p int) bool { return len(cand[p]) >= r }
	for tier := range 2 {
		for p := range P {
			if owner[p] >= 0 || complete(p) != (tier == 0) {
				continue
			}
			a := &t.Partitions[p]
			e := -1
			for _, pe := range a.Pending {
				if pe.AsOwner {
					e = idx(pe.Member)
				}
			}
			if e < 0 && len(a.Replicas) > 0 {
				e = idx(a.Replicas[0])
			}
			if e >= 0 && own[e] < ownQ[e] {
				owner[p] = e
				own[e]++
			}
		}
	}
	for p := range P { // the current owner when the hand-off target is full
		a := &t.Partitions[p]
		if owner[p] >= 0 || len(a.Replicas) == 0 {
			continue
		}
		if e := idx(a.Replicas[0]); e >= 0 && own[e] < ownQ[e] {
			owner[p] = e
			own[e]++
		}
	}
	for p := range P { // new owners: members outside the replica set first, most room first
		if owner[p] >= 0 {
			continue
		}
		a := &t.Partitions[p]
		best, bestTier, bestRoom := -1, 0, 0
		for i := range N {
			room := ownQ[i] - own[i]
			if room <= 0 {
				continue
			}
			tier := 0
			if slices.Contains(a.Replicas, ro.active[i]) {
				tier = 1 // promotion hand-off: only when nobody else can
			}
			if best < 0 || tier < bestTier || (tier == bestTier && room > bestRoom) {
				best, bestTier, bestRoom = i, tier, room
			}
		}
		owner[p] = best
		own[best]++
	}

	// Backups. Each partition starts from its candidates in canonical order
	// (see appendCandidates), which Plan and Complete keep equal to the target
	// while a migration runs, so recomputing the target mid-migration gives
	// the same target. Owners count toward the replica quota.
	load := slices.Clone(own)
	sets := make([][]int, P)
	setBuf := make([]int, P*r)
	for p := range P {
		s := append(setBuf[p*r:p*r:(p+1)*r], owner[p])
		for _, i := range cand[p] {
			if len(s) < r && !slices.Contains(s, i) {
				s = append(s, i)
				load[i]++
			}
		}
		sets[p] = s
	}
	// Fill: members with room first; among them the one sharing the fewest
	// partitions with the members already chosen (so the backups of one
	// member's partitions spread over all others and a departure spreads its
	// load), then the one with the most room. Over quota only when nobody
	// with room fits; shed repairs that where it can.
	pair := make([][]int, N)
	for i := range pair {
		pair[i] = make([]int, N)
	}
	for _, s := range sets {
		for _, i := range s {
			for _, j := range s {
				pair[i][j]++
			}
		}
	}
	for p := range P {
		for len(sets[p]) < r {
			best, bestFits, bestShared, bestRoom := -1, false, 0, 0
			for i := range N {
				if slices.Contains(sets[p], i) {
					continue
				}
				room := repQ[i] - load[i]
				fits, shared := room > 0, 0
				for _, j := range sets[p] {
					shared += pair[i][j]
				}
				better := best < 0 || (fits && !bestFits)
				if !better && fits == bestFits {
					better = shared < bestShared || (shared == bestShared && room > bestRoom)
				}
				if better {
					best, bestFits, bestShared, bestRoom = i, fits, shared, room
				}
			}
			for _, j := range sets[p] {
				pair[best][j]++
				pair[j][best]++
			}
			sets[p] = append(sets[p], best)
			load[best]++
		}
	}
	shed(sets, load, repQ, func(p, i int) bool { return holds(&t.Partitions[p], ro.active[i]) })

	tgBuf := make([]MemberID, P*r)
	for p := range P {
		tg[p] = tgBuf[p*r : p*r+len(sets[p]) : p*r+len(sets[p])]
		for j, i := range sets[p] {
			tg[p][j] = ro.active[i]
		}
	}
	return tg
}

// appendCandidates appends to c the members of a, in the order the planner prefers to keep
// them: the effective owner (the pending AsOwner member, or the owner), the
// other pending members, the backups in order, and last the owner that is
// handing off. Plan and Complete order the backups so that the ones the
// target keeps come before the ones it drops.
func appendCandidates(c []MemberID, a *Assignment) []MemberID {
	handOff := false
	for _, pe := range a.Pending {
		if pe.AsOwner {
			c = append(c, pe.Member)
			handOff = true
		}
	}
	if !handOff && len(a.Replicas) > 0 {
		c = append(c, a.Replicas[0])
	}
	for _, pe := range a.Pending {
		if !pe.AsOwner {
			c = append(c, pe.Member)
		}
	}
	if len(a.Replicas) > 1 {
		c = append(c, a.Replicas[1:]...)
	}
	if handOff {
		c = append(c, a.Replicas[0])
	}
	return c
}

func holds(a *Assignment, m MemberID) bool {
	return slices.Contains(a.Replicas, m) || pendingIndex(a.Pending, m) >= 0
}

// shed moves backup slots from members over their replica quota to members
// under it, where the distinct-member rule allows, until no such move is
// left (so shedding a target again changes nothing). It prefers slots the
// over-quota member does not hold yet, so no copy is wasted.
func shed(sets [][]int, load, repQ []int, held func(p, i int) bool) {
	for pass := range 2 { // pass 0: only slots not held yet; pass 1: any slot
		for o := range load {
			for p := 0; p < len(sets) && load[o] > repQ[o]; p++ {
				j := slices.Index(sets[p], o)
				if j < 1 || (pass == 0 && held(p, o)) {
					continue
				}
				u := -1
				for i := range load {
					if load[i] < repQ[i] && !slices.Contains(sets[p], i) && (u < 0 || repQ[i]-load[i] > repQ[u]-load[u]) {
						u = i
					}
				}
				if u < 0 {
					continue
				}
				sets[p][j] = u
				load[o]--
				load[u]++
			}
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
