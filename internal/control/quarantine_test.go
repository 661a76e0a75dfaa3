package control

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/partition"
)

// The quarantine's decisions on a fake clock, with staged probe outcomes.

const (
	qBase   = 1550 * time.Millisecond // DeadWait with the local timings
	qLimit  = maxQuarantine * qBase
	qSettle = 500 * time.Millisecond
)

var qT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return qT0.Add(d) }

// probeEvery stages answered (ok) or failed probes of id started every
// interval from from to to, both included.
func probeEvery(qs quarantines, id partition.MemberID, from, to, interval time.Duration, ok bool) {
	for d := from; d <= to; d += interval {
		qs.probed(id, at(d), ok)
	}
}

// grow quarantines id k times in a row, each re-admission failing at once
// (a fault that lasts), and returns when the last quarantine began and its
// backoff.
func grow(qs quarantines, id partition.MemberID, k int) (last, backoff time.Duration) {
	var start time.Duration
	for range k {
		last = start
		backoff = qs.impose(id, at(start), qBase, qLimit)
		start += backoff
	}
	return last, backoff
}

func TestQuarantineWithoutAnswersRunsItsBackoff(t *testing.T) {
	qs := quarantines{}
	const id = "m1"
	start, backoff := grow(qs, id, 5)
	if backoff != 16*qBase {
		t.Fatalf("backoff after 5 quarantines: %v, want %v", backoff, 16*qBase)
	}
	probeEvery(qs, id, start, start+backoff, 250*time.Millisecond, false)
	for d := start; d < start+backoff; d += 100 * time.Millisecond {
		if got := qs.release(at(d), qSettle); len(got) > 0 {
			t.Fatalf("released at +%v without an answer: %v", d-start, got)
		}
		if !qs.holds(id, at(d)) {
			t.Fatalf("quarantine ended at +%v of %v", d-start, backoff)
		}
	}
	if qs.holds(id, at(start+backoff)) {
		t.Fatal("quarantine outlives its backoff")
	}
}

func TestQuarantineEndsEarlyWhenTheMemberAnswers(t *testing.T) {
	qs := quarantines{}
	const id = "m1"
	start, backoff := grow(qs, id, 5) // 24.8 s, as after a long ring
	heal := start + 3*time.Second
	probeEvery(qs, id, start, heal-time.Millisecond, 250*time.Millisecond, false)
	// One answer is not proof: the settle window must pass, answered.
	qs.probed(id, at(heal), true)
	if got := qs.release(at(heal+300*time.Millisecond), qSettle); len(got) > 0 {
		t.Fatalf("released on a single answer: %v", got)
	}
	probeEvery(qs, id, heal+250*time.Millisecond, heal+qSettle, 250*time.Millisecond, true)
	now := heal + qSettle + 100*time.Millisecond
	got := qs.release(at(now), qSettle)
	if len(got) != 1 || got[0].id != id || got[0].saved != start+backoff-now {
		t.Fatalf("release at +%v: %+v, want %s with %v saved", now-start, got, id, start+backoff-now)
	}
	if qs.holds(id, at(now)) {
		t.Fatal("still quarantined after its early end")
	}
	if _, ok := qs[id]; !ok {
		t.Fatal("the entry must outlive the quarantine (it is on probation now)")
	}
}

func TestQuarantineFailedProbeRestartsTheSettleWindow(t *testing.T) {
	qs := quarantines{}
	const id = "m1"
	qs.impose(id, at(0), 10*time.Second, qLimit)
	qs.probed(id, at(100*time.Millisecond), true)
	qs.probed(id, at(350*time.Millisecond), true)
	qs.probed(id, at(600*time.Millisecond), false) // the fault is not over
	qs.probed(id, at(850*time.Millisecond), true)
	if got := qs.release(at(time.Second), qSettle); len(got) > 0 {
		t.Fatalf("released across a failed probe: %v", got)
	}
	qs.probed(id, at(1350*time.Millisecond), true)
	if got := qs.release(at(1400*time.Millisecond), qSettle); len(got) != 1 {
		t.Fatalf("not released after answering from +850ms to +1350ms: %v", got)
	}
}

func TestQuarantineIgnoresProbesFromBeforeIt(t *testing.T) {
	qs := quarantines{}
	const id = "m1"
	qs.probed(id, at(0), true) // not quarantined: ignored
	qs.impose(id, at(time.Second), 10*time.Second, qLimit)
	// Probes started before this quarantine answered then; they say nothing
	// of the member since.
	qs.probed(id, at(200*time.Millisecond), true)
	qs.probed(id, at(900*time.Millisecond), true)
	qs.probed(id, at(1100*time.Millisecond), true)
	if got := qs.release(at(1200*time.Millisecond), qSettle); len(got) > 0 {
		t.Fatalf("released on probes older than the quarantine: %v", got)
	}
}

// A member that flaps (answers, is re-admitted, fails again before its
// probation ends) still backs off: each new quarantine doubles, and so does
// the answered window its early end needs, so re-admissions are spaced by a
// doubling interval.
func TestQuarantineFlappingMemberBacksOff(t *testing.T) {
	qs := quarantines{}
	const id = "m1"
	const interval = 250 * time.Millisecond
	const failAfter = 1500 * time.Millisecond // RaftContactTimeout: a re-admission fails
	now := time.Duration(0)
	var readmits []time.Duration
	for flap := range 6 {
		backoff := qs.impose(id, at(now), qBase, qLimit)
		if want := min(qBase<<flap, qLimit); backoff != want {
			t.Fatalf("quarantine %d: backoff %v, want %v", flap+1, backoff, want)
		}
		start := now
		// The member answers every probe while quarantined.
		for d := start + interval; ; d += interval {
			qs.probed(id, at(d), true)
			got := qs.release(at(d), qSettle)
			if !qs.holds(id, at(d)) {
				if len(got) == 1 && got[0].flaps != flap {
					t.Fatalf("quarantine %d: ended with %d flaps, want %d", flap+1, got[0].flaps, flap)
				}
				if waited, least := d-start, min(settleWindow(qSettle, flap), backoff); waited < least {
					t.Fatalf("quarantine %d ended after %v, before %v", flap+1, waited, least)
				}
				readmits = append(readmits, d)
				now = d + failAfter
				break
			}
		}
	}
	for i := 2; i < len(readmits); i++ {
		prev, gap := readmits[i-1]-readmits[i-2], readmits[i]-readmits[i-1]
		if gap <= prev {
			t.Fatalf("re-admissions at %v: the gaps do not grow (%v then %v)", readmits, prev, gap)
		}
	}
	t.Logf("re-admissions of a member answering probes but failing raft: %v", readmits)
}

// A member whose probation passed leaves quarantine for good (the
// coordinator deletes its entry): its next quarantine starts from the base
// backoff and the base settle window.
func TestQuarantineAfterProbationStartsAfresh(t *testing.T) {
	qs := quarantines{}
	const id = "m1"
	grow(qs, id, 4)
	delete(qs, id) // probation passed
	if b := qs.impose(id, at(time.Minute), qBase, qLimit); b != qBase {
		t.Fatalf("backoff %v, want %v", b, qBase)
	}
	if qs[id].flaps != 0 {
		t.Fatalf("flaps %d", qs[id].flaps)
	}
}

// inRaftConf reports whether id is in tn's raft configuration.
func inRaftConf(tn *testNode, id partition.MemberID) (bool, error) {
	f := tn.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return false, err
	}
	return slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) }), nil
}

// A member the leader quarantined (its raft heartbeats failed for
// RaftContactTimeout, staged here) that answers again is re-admitted once it
// answered probes for the settle window, long before its backoff (DeadWait,
// made 20 s longer here) ends: without the early end it stays out of raft,
// without a lease, for the whole backoff.
func TestQuarantinedMemberThatAnswersIsReadmittedEarly(t *testing.T) {
	const margin = 20 * time.Second
	c := newTestCluster(t)
	c.tune = func(cfg *Config) { cfg.LeaseMargin = margin }
	c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	leader, victim := c.leader(), c.follower()
	if leader == nil || victim == nil {
		t.Fatal("setup: no leader or no follower")
	}
	id := victim.LocalID()
	backoff := victim.cfg.DeadWait()

	// The leader's raft reports failing heartbeats to the victim (as during
	// a network fault) until the coordinator quarantines it: out of raft.
	eventually(t, 10*time.Second, func() error {
		leader.health.observe(raft.Observation{Data: raft.FailedHeartbeatObservation{
			PeerID: raft.ServerID(id), LastContact: time.Now().Add(-time.Minute)}})
		in, err := inRaftConf(leader, id)
		if err != nil {
			return err
		}
		if in {
			return errors.New("victim still in raft")
		}
		return nil
	})
	removed := time.Now()

	// It answers probes all along: it is re-admitted, passes probation and
	// holds its lease again well within its backoff.
	bound := backoff / 3
	eventually(t, bound, func() error {
		if !leader.IsLeader() {
			return errors.New("leadership moved: the quarantine was the old leader's")
		}
		in, err := inRaftConf(leader, id)
		switch {
		case err != nil:
			return err
		case !in:
			return errors.New("victim not re-admitted to raft")
		case leader.adm.onProbation()[id]:
			return errors.New("victim on probation")
		case !victim.LeaseValid():
			return errors.New("victim holds no lease")
		}
		return nil
	})
	if !leader.IsLeader() {
		t.Fatal("leadership moved during the test: the early end is not proven")
	}
	t.Logf("quarantined with a %v backoff; re-admitted, out of probation and leased after %v", backoff,
		time.Since(removed).Round(time.Millisecond))
	eventually(t, 10*time.Second, c.converged)
	if err := c.converged(); err != nil {
		t.Fatal(fmt.Errorf("after the re-admission: %w", err))
	}
}

// bareLeader is a Node with only the leader's state that raftEligible uses:
// its members have no transport address, so it starts no probes.
func bareLeader(t *testing.T) *Node {
	n := &Node{cfg: Config{ID: "self", Timings: LocalTimings()}.WithDefaults(), log: testLogger(t)}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.netTimeout = 5 * n.cfg.Timings.RaftHeartbeatTimeout
	n.co.init()
	n.adm.init()
	n.health.init()
	n.qprobes.init()
	return n
}

var (
	bareServers = []raft.Server{{ID: "self"}, {ID: "m1"}}
	bareAlive   = map[partition.MemberID]membership.Member{"self": {}, "m1": {}}
)

func failedHeartbeat(n *Node, id partition.MemberID, lastContact time.Time) {
	n.health.observe(raft.Observation{Data: raft.FailedHeartbeatObservation{PeerID: raft.ServerID(id), LastContact: lastContact}})
}

// A heartbeat failure from a member's earlier stint in raft (its last
// contact older than its re-addition) does not condemn it at once: its
// contact counts from its addition.
func TestReaddedMemberIsJudgedFromItsAddition(t *testing.T) {
	n := bareLeader(t)
	timeout := n.cfg.Timings.RaftContactTimeout
	now := time.Now()
	n.co.addedAt["m1"] = now.Add(-timeout / 10)
	failedHeartbeat(n, "m1", now.Add(-time.Minute))
	if _, ok := n.raftEligible(bareServers, bareAlive, now)["m1"]; !ok || n.co.quarantine.holds("m1", now) {
		t.Fatalf("a member added %v ago was quarantined on a failure from before its addition", timeout/10)
	}
	// Once it has been in raft for RaftContactTimeout without contact, it is.
	n.co.addedAt["m1"] = now.Add(-timeout)
	failedHeartbeat(n, "m1", now.Add(-time.Minute))
	if _, ok := n.raftEligible(bareServers, bareAlive, now)["m1"]; ok || !n.co.quarantine.holds("m1", now) {
		t.Fatalf("a member added %v ago and never reached was not quarantined", timeout)
	}
}

// The coordinator's round ends a quarantine on the probe outcomes it
// collected (staged here), and not without them.
func TestRaftEligibleEndsQuarantineOnAnswers(t *testing.T) {
	n := bareLeader(t)
	now := time.Now()
	n.co.quarantine.impose("m1", now, time.Minute, time.Hour)
	settle := n.quarantineSettle()
	at := now.Add(settle + 100*time.Millisecond)
	if _, ok := n.raftEligible(bareServers, bareAlive, at)["m1"]; ok {
		t.Fatal("eligible while quarantined, without an answer")
	}
	n.qprobes.done = []probeOutcome{{id: "m1", sent: now.Add(10 * time.Millisecond), ok: true}}
	if _, ok := n.raftEligible(bareServers, bareAlive, at)["m1"]; ok {
		t.Fatal("eligible after a single answer")
	}
	n.qprobes.done = []probeOutcome{{id: "m1", sent: now.Add(10*time.Millisecond + settle), ok: true}}
	if _, ok := n.raftEligible(bareServers, bareAlive, at)["m1"]; !ok {
		t.Fatalf("not eligible after answering for %v", settle)
	}
	if _, on := n.co.quarantine["m1"]; !on {
		t.Fatal("the entry must remain: the member is re-admitted on probation")
	}
}

// A member further behind than trailingLogs entries is caught up with one
// snapshot, not by replaying every table since (each is a whole table: a
// re-admitted member replayed some 250 of them in 8 to 12 s under -race).
func TestFarBehindMemberCatchesUpBySnapshot(t *testing.T) {
	c := newTestCluster(t)
	c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	leader := c.leader()
	if leader == nil {
		t.Fatal("setup: no leader")
	}
	// Entries the newcomer will lack (fewer than raft's default trailing
	// logs, more than trailingLogs): rewrites of the leader's own entry.
	const missed = 100
	self, ok := leader.fsm.member(leader.LocalID())
	if !ok {
		t.Fatal("setup: the leader has no directory entry")
	}
	for range missed {
		if err := leader.apply(command{Op: opPutMember, ID: leader.LocalID(), Entry: self}); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	tn := c.add()
	c.waitReady(tn)
	snap := tn.raft.inst().r.Stats()["last_snapshot_index"]
	if snap == "" || snap == "0" {
		t.Fatalf("the newcomer replayed %d+ entries instead of installing a snapshot (last_snapshot_index %q)", missed, snap)
	}
	eventually(t, 10*time.Second, c.converged)
	t.Logf("newcomer installed the snapshot at index %s", snap)
}

// compactLog snapshots right after a configuration change (as when a
// quarantined member is re-admitted just after its removal), which raft
// refuses until the change is applied.
func TestCompactLogAfterConfigurationChange(t *testing.T) {
	c := newTestCluster(t)
	c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	leader, victim := c.leader(), c.follower()
	if leader == nil || victim == nil {
		t.Fatal("setup: no leader or no follower")
	}
	for round := range 3 {
		f := leader.raft.RemoveServer(raft.ServerID(victim.LocalID()), 0, raftTimeout)
		if err := f.Error(); err != nil {
			t.Fatalf("round %d: remove: %v", round, err)
		}
		leader.compactLog()
		snap, err := strconv.ParseUint(leader.raft.inst().r.Stats()["last_snapshot_index"], 10, 64)
		if err != nil || snap < f.Index() {
			t.Fatalf("round %d: last snapshot at index %d (%v), before the removal at %d", round, snap, err, f.Index())
		}
		f = leader.raft.AddNonvoter(raft.ServerID(victim.LocalID()), raft.ServerAddress(victim.cfg.TransportAddr), 0, raftTimeout)
		if err := f.Error(); err != nil {
			t.Fatalf("round %d: re-add: %v", round, err)
		}
	}
}
