package partition

import "slices"

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

// computeTarget returns, per partition, the members that should hold it:
// owner first, then backups, min(backups+1, active) distinct active members.
// Quotas keep owners per member within one of each other and total replicas
// per member within one where the distinct-member rule allows. Current
// holders are kept first (a pending AsOwner member counts as the owner, a
// pending member as a holder), so the target does not move when a Complete
// applies a step of it, and only what must move moves.
//
// It runs in phases, each deciding on what the earlier ones left open:
// owners kept (keepOwners, keepHandingOffOwners), new owners
// (placeOwners), backups kept (keepBackups), new backups (fillBackups),
// and last shed, which evens out replica loads the fill had to exceed.
func computeTarget(t *Table, ro roster, backups int) [][]MemberID {
	if len(ro.active) == 0 {
		return make([][]MemberID, len(t.Partitions))
	}
	tp := newTargetPlan(t, ro, backups)
	tp.keepOwners()
	tp.keepHandingOffOwners()
	tp.placeOwners()
	tp.keepBackups()
	tp.fillBackups()
	shed(tp.sets, tp.load, tp.repQ, tp.held)
	return tp.members()
}

// targetPlan is the working state of one computeTarget. Members are named
// by their position in roster.active, so the phases work on small ints.
type targetPlan struct {
	t    *Table
	ro   roster
	r    int     // replicas per partition: min(backups+1, active)
	ownQ []int   // per member: how many partitions it may own
	repQ []int   // per member: how many replicas it may hold, owners included
	cand [][]int // per partition: its active holders, in appendCandidates order

	owner []int   // per partition: the target owner, -1 while undecided
	own   []int   // per member: partitions it owns in the target so far
	sets  [][]int // per partition: the target replicas, owner first
	load  []int   // per member: replicas it holds in the target so far
}

// newTargetPlan sets the quotas and collects the candidates. The quotas
// split partitions (owners) and partitions*r (replicas) evenly; the extra
// one goes to the first members in ID order, which stays fixed while the
// membership does, so a recomputation gives the same quotas. ro must have
// an active member.
func newTargetPlan(t *Table, ro roster, backups int) *targetPlan {
	P, N := len(t.Partitions), len(ro.active)
	tp := &targetPlan{t: t, ro: ro, r: min(backups+1, N)}
	r := tp.r
	tp.ownQ, tp.repQ = make([]int, N), make([]int, N)
	for i := range N {
		tp.ownQ[i] = P / N
		if i < P%N {
			tp.ownQ[i]++
		}
		tp.repQ[i] = P * r / N
		if i < P*r%N {
			tp.repQ[i]++
		}
	}
	tp.owner = make([]int, P)
	tp.own = make([]int, N)
	for p := range tp.owner {
		tp.owner[p] = -1
	}
	tp.cand = make([][]int, P)
	var scratch []MemberID
	buf := make([]int, 0, P*(r+1))
	for p := range P {
		scratch = appendCandidates(scratch[:0], &t.Partitions[p])
		start := len(buf)
		for _, m := range scratch {
			if i := tp.idx(m); i >= 0 && !slices.Contains(buf[start:], i) {
				buf = append(buf, i)
			}
		}
		tp.cand[p] = buf[start:len(buf):len(buf)]
	}
	return tp
}

// idx is m's position in roster.active, or -1 when m is not active.
func (tp *targetPlan) idx(m MemberID) int {
	if i, ok := tp.ro.index[m]; ok {
		return i
	}
	return -1
}

// held reports whether active member i holds partition p (as a replica or
// pending); shed prefers to move slots that would need a copy anyway.
func (tp *targetPlan) held(p, i int) bool {
	return holds(&tp.t.Partitions[p], tp.ro.active[i])
}

// setOwner makes member i the target owner of partition p.
func (tp *targetPlan) setOwner(p, i int) {
	tp.owner[p] = i
	tp.own[i]++
}

// keepOwners keeps each partition's effective owner (the member of a
// pending hand-off, else the owner) while that member is active and under
// its owner quota, so a running hand-off is not undone. Partitions with r
// active candidates go first, then the others: a member over its quota
// (after promotions) thus gives away the partitions that need a copy
// anyway, and the new owner's copy also repairs the missing replica.
func (tp *targetPlan) keepOwners() {
	complete := func(p int) bool { return len(tp.cand[p]) >= tp.r }
	for tier := range 2 {
		for p := range tp.owner {
			if tp.owner[p] >= 0 || complete(p) != (tier == 0) {
				continue
			}
			a := &tp.t.Partitions[p]
			e := -1
			for _, pe := range a.Pending {
				if pe.AsOwner {
					e = tp.idx(pe.Member)
				}
			}
			if e < 0 && len(a.Replicas) > 0 {
				e = tp.idx(a.Replicas[0])
			}
			if e >= 0 && tp.own[e] < tp.ownQ[e] {
				tp.setOwner(p, e)
			}
		}
	}
}

// keepHandingOffOwners keeps the current owner of a partition whose
// hand-off target could not take it (not active, or at its owner quota),
// when the current owner has room: cancelling the hand-off moves nothing,
// while another owner would need a copy.
func (tp *targetPlan) keepHandingOffOwners() {
	for p := range tp.owner {
		a := &tp.t.Partitions[p]
		if tp.owner[p] >= 0 || len(a.Replicas) == 0 {
			continue
		}
		if e := tp.idx(a.Replicas[0]); e >= 0 && tp.own[e] < tp.ownQ[e] {
			tp.setOwner(p, e)
		}
	}
}

// placeOwners gives every partition still without an owner (a new, lost or
// dead-owner partition, or one whose owner is over quota) the member with
// room under its owner quota, preferring members outside the partition's
// replica set and then the one with the most room. A replica is chosen
// only when nobody else has room, since promoting it takes a backup away
// from the partition, while an outside member adds a copy.
func (tp *targetPlan) placeOwners() {
	for p := range tp.owner {
		if tp.owner[p] >= 0 {
			continue
		}
		a := &tp.t.Partitions[p]
		best, bestTier, bestRoom := -1, 0, 0
		for i := range tp.ro.active {
			room := tp.ownQ[i] - tp.own[i]
			if room <= 0 {
				continue
			}
			tier := 0
			if slices.Contains(a.Replicas, tp.ro.active[i]) {
				tier = 1 // promotion hand-off: only when nobody else can
			}
			if best < 0 || tier < bestTier || (tier == bestTier && room > bestRoom) {
				best, bestTier, bestRoom = i, tier, room
			}
		}
		tp.setOwner(p, best)
	}
}

// keepBackups starts each partition's replica set with its owner and then
// its candidates in canonical order (see appendCandidates) up to r members,
// which keeps current holders and so avoids copies. Plan and Complete keep
// that order equal to the target while a migration runs, so recomputing
// the target mid-migration gives the same target. Owners count toward the
// replica quota; kept backups count even over quota (shed repairs that).
func (tp *targetPlan) keepBackups() {
	P, r := len(tp.t.Partitions), tp.r
	tp.load = slices.Clone(tp.own)
	tp.sets = make([][]int, P)
	setBuf := make([]int, P*r)
	for p := range P {
		s := append(setBuf[p*r:p*r:(p+1)*r], tp.owner[p])
		for _, i := range tp.cand[p] {
			if len(s) < r && !slices.Contains(s, i) {
				s = append(s, i)
				tp.load[i]++
			}
		}
		tp.sets[p] = s
	}
}

// fillBackups completes each replica set to r members. It picks members
// with room under their replica quota first; among them the one sharing
// the fewest partitions with the members already chosen, so the backups of
// one member's partitions spread over all the others and a departure
// spreads its load; then the one with the most room. It goes over quota
// only when nobody with room fits (the distinct-member rule); shed repairs
// that where it can.
func (tp *targetPlan) fillBackups() {
	N := len(tp.ro.active)
	pair := make([][]int, N) // pair[i][j]: partitions i and j share so far
	for i := range pair {
		pair[i] = make([]int, N)
	}
	for _, s := range tp.sets {
		for _, i := range s {
			for _, j := range s {
				pair[i][j]++
			}
		}
	}
	for p := range tp.sets {
		for len(tp.sets[p]) < tp.r {
			best, bestFits, bestShared, bestRoom := -1, false, 0, 0
			for i := range N {
				if slices.Contains(tp.sets[p], i) {
					continue
				}
				room := tp.repQ[i] - tp.load[i]
				fits, shared := room > 0, 0
				for _, j := range tp.sets[p] {
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
			for _, j := range tp.sets[p] {
				pair[best][j]++
				pair[j][best]++
			}
			tp.sets[p] = append(tp.sets[p], best)
			tp.load[best]++
		}
	}
}

// members translates the replica sets back to member IDs, one backing
// array for all partitions.
func (tp *targetPlan) members() [][]MemberID {
	P, r := len(tp.sets), tp.r
	tg := make([][]MemberID, P)
	tgBuf := make([]MemberID, P*r)
	for p := range P {
		tg[p] = tgBuf[p*r : p*r+len(tp.sets[p]) : p*r+len(tp.sets[p])]
		for j, i := range tp.sets[p] {
			tg[p][j] = tp.ro.active[i]
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
