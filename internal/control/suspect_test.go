package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/partition"
)

// demoted checks that s is in no partition's backups or pending copies of
// tb, still owns exactly owned, and that every other partition has its
// backups restored (copies complete).
func demoted(tb *partition.Table, s partition.MemberID, owned []partition.ID, replicas int) error {
	if got := tb.Owned(s); !slices.Equal(got, owned) {
		return fmt.Errorf("epoch %d: %s owns %v, owned %v before", tb.Epoch, s, got, owned)
	}
	for p, a := range tb.Partitions {
		if slices.Contains(a.Replicas[1:], s) || tb.IsPending(partition.ID(p), s) {
			return fmt.Errorf("epoch %d: partition %d still has %s as backup or pending: %+v", tb.Epoch, p, s, a)
		}
		if len(a.Pending) > 0 || len(a.Replicas) != replicas {
			return fmt.Errorf("epoch %d: partition %d not restored: %+v", tb.Epoch, p, a)
		}
	}
	return nil
}

func TestUnreachableMemberDemotedAndReadmitted(t *testing.T) {
	const backoff = 4 * time.Second
	c := newTestCluster(t)
	c.tune = func(cfg *Config) { cfg.Timings.SuspectBackoff = backoff }
	c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	s := c.follower()
	tb := s.Table()
	// The reporter is the owner of a partition s backs up, as in dmap.
	var reporter *testNode
	for p := range tb.Partitions {
		if slices.Contains(tb.Backups(partition.ID(p)), s.LocalID()) {
			for _, tn := range c.live() {
				if tn.LocalID() == tb.Owner(partition.ID(p)) {
					reporter = tn
				}
			}
			break
		}
	}
	if reporter == nil {
		t.Fatalf("setup: %s backs up nothing", s.LocalID())
	}
	owned := tb.Owned(s.LocalID())
	if len(owned) == 0 {
		t.Fatalf("setup: %s owns nothing", s.LocalID())
	}

	reported := time.Now()
	for range 5 { // repeated reports coalesce
		reporter.ReportUnreachable(s.LocalID())
	}
	// Demoted at once: the copies its backups get elsewhere complete at
	// once too (the test driver reports them synced), well within the
	// backoff.
	eventually(t, backoff-time.Second, func() error {
		for _, tn := range c.live() {
			if err := demoted(tn.Table(), s.LocalID(), owned, c.backups+1); err != nil {
				return fmt.Errorf("%s: %w", tn.LocalID(), err)
			}
		}
		return nil
	})
	t.Logf("demoted and backups restored after %v", time.Since(reported).Round(time.Millisecond))
	// Its lease is untouched: it may go on serving what it owns.
	if !s.LeaseValid() {
		t.Fatal("suspect lost its lease")
	}

	// After the backoff it is re-admitted and gets backups again.
	eventually(t, backoff+10*time.Second, func() error {
		if err := c.converged(); err != nil {
			return err
		}
		l := c.leader()
		if l == nil { // leadership may be changing hands under load
			return errors.New("no leader")
		}
		tb := l.Table()
		if held, own := len(tb.Held(s.LocalID())), len(tb.Owned(s.LocalID())); held == own {
			return fmt.Errorf("epoch %d: %s holds no backups", tb.Epoch, s.LocalID())
		}
		return nil
	})
	if d := time.Since(reported); d < backoff {
		t.Fatalf("re-admitted after %v, before the backoff %v", d, backoff)
	}
}

func TestUnreachableReportIgnored(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startN(3)
	eventually(t, 10*time.Second, c.converged)
	eventually(t, 5*time.Second, c.oneLeader)
	leader := c.leader()
	addr, _ := nodes[0].MemberAddr(leader.LocalID())
	var other *testNode
	for _, tn := range nodes {
		if tn != leader {
			other = tn
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	report := func(from partition.MemberID, ms ...partition.MemberID) error {
		hdr, err := msgpack.Marshal(&rpcReq{Op: reqSuspect, From: from, Members: ms})
		if err != nil {
			t.Fatal(err)
		}
		return other.call(ctx, addr, msgUnreachable, hdr)
	}
	if err := report("nobody", other.LocalID()); !errors.Is(err, ErrNotMember) {
		t.Fatalf("report from a non-member: %v, want ErrNotMember", err)
	}
	if err := report(other.LocalID(), "ghost"); !errors.Is(err, ErrStale) {
		t.Fatalf("report about an unknown member: %v, want ErrStale", err)
	}
	if err := report(other.LocalID(), other.LocalID()); !errors.Is(err, ErrStale) {
		t.Fatalf("report about the reporter itself: %v, want ErrStale", err)
	}
	// A request after them is answered after the round that handled them
	// committed its table: nothing was demoted.
	if err := other.ResetLost(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.converged(); err != nil {
		t.Fatalf("after ignored reports: %v", err)
	}
	tb := leader.Table()
	for _, tn := range nodes {
		if held, own := len(tb.Held(tn.LocalID())), len(tb.Owned(tn.LocalID())); held == own {
			t.Fatalf("epoch %d: %s holds no backups after ignored reports", tb.Epoch, tn.LocalID())
		}
	}
}

func TestReportUnreachableCoalesces(t *testing.T) {
	n := &Node{cfg: Config{ID: "self", Timings: LocalTimings()}}
	n.rep.init()
	n.ReportUnreachable("self")
	n.ReportUnreachable("")
	for range 3 {
		n.ReportUnreachable("a")
	}
	n.ReportUnreachable("b")
	if got := n.rep.queued; !slices.Equal(got, []partition.MemberID{"a", "b"}) {
		t.Fatalf("queued %v, want [a b]", got)
	}
	if len(n.rep.wake) != 1 {
		t.Fatal("reporter not woken")
	}
	// Sent just now: a new report waits for reportInterval.
	n.rep.queued = nil
	n.rep.sent["a"] = time.Now()
	n.rep.sent["b"] = time.Now().Add(-n.reportInterval())
	n.ReportUnreachable("a")
	n.ReportUnreachable("b")
	if got := n.rep.queued; !slices.Equal(got, []partition.MemberID{"b"}) {
		t.Fatalf("queued %v, want [b]", got)
	}
	n.closed.Store(true)
	n.ReportUnreachable("c")
	if got := n.rep.queued; !slices.Equal(got, []partition.MemberID{"b"}) {
		t.Fatalf("report queued after Close: %v", got)
	}
}

func TestPenaltiesDoubleUpToLimit(t *testing.T) {
	ps := penalties{}
	now := time.Unix(1000, 0)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		if got := ps.impose("a", now, time.Second, 4*time.Second); got != want {
			t.Fatalf("penalty %d: %v, want %v", i, got, want)
		}
		if !ps.holds("a", now.Add(want-time.Nanosecond)) || ps.holds("a", now.Add(want)) {
			t.Fatalf("penalty %d of %v does not hold for exactly that long", i, want)
		}
		now = now.Add(want)
	}
	if ps.holds("b", now) {
		t.Fatal("a member without penalty is held")
	}
}

// At most a minority of the live members may be suspect at once: a leader that reports four
// of its five members (issue 21's Jepsen run after a heal under load) is the slow one, and
// demoting them all would restart every copy to them and leave no member for backups.
func TestSuspectsAreAMinority(t *testing.T) {
	n := &Node{cfg: Config{ID: "a", Timings: LocalTimings()}, log: slog.New(slog.DiscardHandler)}
	n.co.init()
	ids := []partition.MemberID{"a", "b", "c", "d", "e"}
	alive := map[partition.MemberID]membership.Member{}
	inRaft := map[partition.MemberID]bool{}
	tb := partition.NewTable(len(ids))
	tb.Epoch = 1
	for i, id := range ids {
		alive[id] = membership.Member{}
		inRaft[id] = true
		tb.Partitions[i] = partition.Assignment{Replicas: []partition.MemberID{id, ids[(i+1)%len(ids)]}}
	}
	now := time.Unix(1000, 0)
	if err := n.suspect("a", []partition.MemberID{"b", "c", "d", "e"}, tb, alive, inRaft, now); err != nil {
		t.Fatal(err)
	}
	got := n.suspected(alive, now)
	if len(got) != suspectLimit(len(ids)) || len(got) != 2 || !got["b"] || !got["c"] {
		t.Fatalf("suspects after a report of four of five members: %v, want the first two", got)
	}
	// Another report while two are suspect changes nothing; once a penalty ends, one more fits.
	if err := n.suspect("e", []partition.MemberID{"d"}, tb, alive, inRaft, now); err != nil {
		t.Fatal(err)
	}
	if got := n.suspected(alive, now); got["d"] {
		t.Fatalf("a third suspect of five: %v", got)
	}
	later := now.Add(n.cfg.Timings.SuspectBackoff)
	if err := n.suspect("a", []partition.MemberID{"d"}, tb, alive, inRaft, later); err != nil {
		t.Fatal(err)
	}
	if got := n.suspected(alive, later); len(got) != 1 || !got["d"] {
		t.Fatalf("suspects once the first penalties ended: %v, want [d]", got)
	}
	for alive, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2, 7: 3} {
		if got := suspectLimit(alive); got != want {
			t.Errorf("suspectLimit(%d) = %d, want %d", alive, got, want)
		}
	}
}
