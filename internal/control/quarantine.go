package control

import (
	"cmp"
	"slices"
	"time"

	"github.com/gridmap/gridmap/partition"
)

// Quarantine.
//
// The leader removes from raft a member whose raft heartbeats have failed for
// RaftContactTimeout while memberlist still reports it alive (raftEligible),
// and re-admits it, on probation, after a backoff that doubles at each new
// failure of a re-admission (DeadWait, twice that, ... up to maxQuarantine
// DeadWaits). During a long fault (a ring that lasts a minute) the backoff
// grows to tens of seconds, and a member that answers again right after the
// heal would wait out the rest of it: 25 s in one Jepsen run, most of the
// time the cluster took to be safe again.
//
// So the leader probes every quarantined member's transport (the raft layer
// shares its address and connections' path) and ends the quarantine early
// once the member has answered for a settle window: probes answered from the
// start of the window to its end, none failed in between. A member that flaps
// (answers, is re-admitted, fails again before its probation ends) gets a new
// quarantine whose backoff doubled as before, and its next early end needs an
// answered window twice as long: re-admissions of a flapping member are still
// spaced by a doubling interval, so raft is not churned. A member whose
// probation ends (it proved raft contact) leaves quarantine for good: its
// next failure starts from DeadWait again.

// quarantined is the leader's record of one quarantined member. It outlives
// the quarantine itself (while the member is on probation), so that a new
// failure doubles the backoff.
type quarantined struct {
	penalty
	since     time.Time // when the current quarantine began: earlier probes do not count
	flaps     int       // early ends followed by a new quarantine before probation passed
	early     bool      // the latest quarantine ended early
	answering time.Time // when the first probe of the current run of answered probes started; zero: none
	answered  time.Time // when the latest answered probe of that run started
}

// quarantines are the quarantined members, keyed by member.
type quarantines map[partition.MemberID]*quarantined

// maxFlapShift bounds the doubling of the settle window (it never matters
// beyond a few doublings: the backoff ends first).
const maxFlapShift = 16

// impose starts a quarantine of id at now, twice as long as the last one, at
// least base and at most limit, and returns its length. A quarantine that
// follows an early end counts as a flap.
func (qs quarantines) impose(id partition.MemberID, now time.Time, base, limit time.Duration) time.Duration {
	q := qs[id]
	if q == nil {
		q = &quarantined{}
		qs[id] = q
	}
	q.backoff = min(max(2*q.backoff, base), limit)
	q.until = now.Add(q.backoff)
	q.since = now
	if q.early {
		q.flaps++
		q.early = false
	}
	q.answering, q.answered = time.Time{}, time.Time{}
	return q.backoff
}

// holds reports whether id's quarantine runs at now.
func (qs quarantines) holds(id partition.MemberID, now time.Time) bool {
	q := qs[id]
	return q != nil && now.Before(q.until)
}

// probed records the outcome of a probe of id that started at sent: ok when
// the member answered. A probe that started before the current quarantine
// does not count, nor one about a member not quarantined.
func (qs quarantines) probed(id partition.MemberID, sent time.Time, ok bool) {
	q := qs[id]
	if q == nil || sent.Before(q.since) {
		return
	}
	if !ok {
		q.answering, q.answered = time.Time{}, time.Time{}
		return
	}
	if q.answering.IsZero() {
		q.answering = sent
	}
	if sent.After(q.answered) {
		q.answered = sent
	}
}

// settleWindow is how long a member quarantined after flaps early ends must
// have answered probes before its quarantine ends early: settle, doubled at
// each flap.
func settleWindow(settle time.Duration, flaps int) time.Duration {
	return settle << min(flaps, maxFlapShift)
}

// earlyEnd is a quarantine ended early.
type earlyEnd struct {
	id    partition.MemberID
	saved time.Duration // what was left of the backoff
	flaps int
}

// release ends, at now, the running quarantines of the members that have
// answered probes for their settle window (see settleWindow), and returns
// them, sorted by member.
func (qs quarantines) release(now time.Time, settle time.Duration) []earlyEnd {
	var out []earlyEnd
	for id, q := range qs {
		if !now.Before(q.until) || q.answering.IsZero() {
			continue
		}
		if q.answered.Sub(q.answering) < settleWindow(settle, q.flaps) {
			continue
		}
		out = append(out, earlyEnd{id: id, saved: q.until.Sub(now), flaps: q.flaps})
		q.until = now
		q.early = true
		q.answering, q.answered = time.Time{}, time.Time{}
	}
	slices.SortFunc(out, func(a, b earlyEnd) int { return cmp.Compare(a.id, b.id) })
	return out
}
