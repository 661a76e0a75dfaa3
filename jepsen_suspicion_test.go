package gridmap

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/internal/control"
)

// Suspicions in the fault suite (issue 21's liveness): every demotion the raft leader makes
// (a member reported unreachable by an owner, kept out of every partition's backups and copies
// for a while, control's suspect.go) is sent by the leader's process to the parent as an
// unasked line, and the run sorts them: a demotion of a member the current fault cuts off from
// its reporter, stops or killed is expected; any other is a false suspicion, a live member
// demoted because it was slow, whose replicas are then copied again in full.

// faultDemotion is one demotion, as a member process reports it and the parent records it.
type faultDemotion struct {
	Member string        `json:"member"`          // the member demoted
	By     string        `json:"by"`              // the member that reported it
	At     time.Duration `json:"at,omitempty"`    // the run's clock when the parent read it
	False  bool          `json:"false,omitempty"` // set by classifyDemotions
}

// demotionHandler is a fault member's log handler: it passes records on to next (nil: none)
// and sends each demotion the coordinator logs (control.DemotedLogMsg) to the parent.
type demotionHandler struct {
	next slog.Handler
	send func(faultDemotion)
}

func (h demotionHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || (h.next != nil && h.next.Enabled(ctx, l))
}

func (h demotionHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == control.DemotedLogMsg {
		var d faultDemotion
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "member":
				d.Member = a.Value.String()
			case "reported_by":
				d.By = a.Value.String()
			}
			return true
		})
		h.send(d)
	}
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h demotionHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if h.next != nil {
		h.next = h.next.WithAttrs(as)
	}
	return h
}

func (h demotionHandler) WithGroup(name string) slog.Handler {
	if h.next != nil {
		h.next = h.next.WithGroup(name)
	}
	return h
}

// demotionQueue holds a member's demotions until its "ready" line is out (the parent reads
// that line first), then sends them as they come.
type demotionQueue struct {
	mu      sync.Mutex
	send    func(faultDemotion) // nil until ready
	pending []faultDemotion
}

func (q *demotionQueue) add(d faultDemotion) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.send == nil {
		q.pending = append(q.pending, d)
		return
	}
	q.send(d)
}

func (q *demotionQueue) ready(send func(faultDemotion)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.send = send
	for _, d := range q.pending {
		send(d)
	}
	q.pending = nil
}

// faultWindow is the time a fault lasted, on the run's clock, and which pairs of members it
// impaired: cuts(a, b) reports whether the fault could make member a's calls to member b fail
// or time out.
type faultWindow struct {
	From, To time.Duration
	Fault    string
	cuts     func(a, b *faultMember) bool
}

// demotionGrace is how long after a heal a demotion may still come from the fault: the calls
// that timed out just before it, reported within half a ReconcileInterval and committed.
const demotionGrace = 2 * time.Second

// classifyDemotions marks each demotion false unless a fault explains it: the demoted member
// was killed before it, or a fault window (extended by demotionGrace) impaired the reporter's
// calls to it. Members unknown to the run (never started by it) count as explained.
func classifyDemotions(ds []faultDemotion, windows []faultWindow, members []*faultMember, killed map[string]time.Duration) []faultDemotion {
	byID := map[string]*faultMember{}
	for _, m := range members {
		byID[m.id] = m
	}
	out := slices.Clone(ds)
	for i := range out {
		d := &out[i]
		a, b := byID[d.By], byID[d.Member]
		if a == nil || b == nil {
			continue
		}
		if at, ok := killed[d.Member]; ok && at <= d.At {
			continue
		}
		explained := false
		for _, w := range windows {
			if d.At >= w.From && d.At <= w.To+demotionGrace && w.cuts != nil && w.cuts(a, b) {
				explained = true
				break
			}
		}
		d.False = !explained
	}
	return out
}

// suspicionSummary is the summary's suspicion part.
func suspicionSummary(ds []faultDemotion) string {
	falses := 0
	for _, d := range ds {
		if d.False {
			falses++
		}
	}
	return fmt.Sprintf("suspicions: %d demotions, %d of members the fault did not impair", len(ds), falses)
}

// cutsFor returns the pairs fault f impairs, given its victim v (nil when it has none) and,
// for a split, its minority hosts.
func cutsFor(f string, v *faultMember, minority []int, ringReach int, hosts int) func(a, b *faultMember) bool {
	either := func(a, b *faultMember) bool { return v != nil && (a.id == v.id || b.id == v.id) }
	switch f {
	case nemKill, nemKillLeader, nemPause, nemOneWay, nemLossyOneWay:
		return either
	case nemSplit, nemIsolateLeader:
		return func(a, b *faultMember) bool {
			return slices.Contains(minority, a.host) != slices.Contains(minority, b.host)
		}
	case nemRing:
		return func(a, b *faultMember) bool {
			d := min((a.host-b.host+hosts)%hosts, (b.host-a.host+hosts)%hosts)
			return d > ringReach
		}
	case nemSlow, nemLossy, nemNetem:
		return func(a, b *faultMember) bool { return true }
	}
	return nil // store-down: no member impaired
}

// The classification of demotions: a member cut off from its reporter, killed or stopped
// explains its demotion, within the fault's window and a grace after it; a demotion between
// members the fault left alone, or long after the heal, is false.
func TestClassifyDemotions(t *testing.T) {
	ms := make([]*faultMember, 5)
	for i := range ms {
		ms[i] = &faultMember{child: &child{id: fmt.Sprintf("m%d", i)}, host: i}
	}
	windows := []faultWindow{
		{From: 10 * time.Second, To: 40 * time.Second, Fault: nemSplit, cuts: cutsFor(nemSplit, nil, []int{0, 1}, 0, 5)},
		{From: 60 * time.Second, To: 90 * time.Second, Fault: nemPause, cuts: cutsFor(nemPause, ms[3], nil, 0, 5)},
		{From: 110 * time.Second, To: 140 * time.Second, Fault: nemRing, cuts: cutsFor(nemRing, nil, nil, 1, 5)},
		{From: 160 * time.Second, To: 190 * time.Second, Fault: nemStoreDown, cuts: cutsFor(nemStoreDown, nil, nil, 0, 5)},
	}
	killed := map[string]time.Duration{"m4": 200 * time.Second}
	ds := []faultDemotion{
		{By: "m2", Member: "m0", At: 20 * time.Second},  // across the split
		{By: "m2", Member: "m3", At: 20 * time.Second},  // same side: false
		{By: "m2", Member: "m1", At: 41 * time.Second},  // across, within the grace
		{By: "m2", Member: "m1", At: 50 * time.Second},  // across, long after the heal: false
		{By: "m0", Member: "m3", At: 70 * time.Second},  // the paused member
		{By: "m0", Member: "m2", At: 70 * time.Second},  // another during the pause: false
		{By: "m0", Member: "m2", At: 120 * time.Second}, // not ring neighbours
		{By: "m0", Member: "m1", At: 120 * time.Second}, // ring neighbours: false
		{By: "m0", Member: "m1", At: 170 * time.Second}, // store down: false
		{By: "m0", Member: "m4", At: 210 * time.Second}, // killed
		{By: "m0", Member: "m4", At: 199 * time.Second}, // before its kill: false
	}
	got := classifyDemotions(ds, windows, ms, killed)
	want := []bool{false, true, false, true, false, true, false, true, true, false, true}
	for i, d := range got {
		if d.False != want[i] {
			t.Errorf("demotion %d (%s by %s at %v): false %v, want %v", i, d.Member, d.By, d.At, d.False, want[i])
		}
	}
	if s := suspicionSummary(got); s != "suspicions: 11 demotions, 6 of members the fault did not impair" {
		t.Errorf("summary %q", s)
	}
}

// demotions returns every demotion the run's members reported, in time order, classified.
func (j *jepsen) demotions() []faultDemotion {
	r := j.r
	r.mu.Lock()
	members := slices.Clone(r.members)
	r.mu.Unlock()
	var ds []faultDemotion
	for _, m := range members {
		m.mu.Lock()
		ds = append(ds, m.demotions...)
		m.mu.Unlock()
	}
	slices.SortStableFunc(ds, func(a, b faultDemotion) int { return cmp.Compare(a.At, b.At) })
	j.mu.Lock()
	defer j.mu.Unlock()
	return classifyDemotions(ds, j.windows, members, j.killed)
}

// readStats reads every live member's copy figures (a killed member keeps its last ones).
func (j *jepsen) readStats() {
	for _, m := range j.r.live() {
		rep, err := m.call(faultRequest{Op: "stats"}, 10*time.Second)
		if err != nil || rep.Stats == nil {
			continue
		}
		j.mu.Lock()
		j.stats[m.id] = *rep.Stats
		j.mu.Unlock()
	}
}

// copySummary is the summary's copy part: the partition copies the members completed (as last
// read from each, killed ones included), the full resyncs, the bytes of entries sent, and the
// table commits (the highest epoch a member reported) with the copies per commit: each copy
// is completed by a table commit, which the coordinator shares among the completions it holds.
func (j *jepsen) copySummary() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var total faultStats
	for _, st := range j.stats {
		total.Copies += st.Copies
		total.Resyncs += st.Resyncs
		total.CopyBytes += st.CopyBytes
		total.Epoch = max(total.Epoch, st.Epoch)
	}
	perCommit := 0.0
	if total.Epoch > 0 {
		perCommit = float64(total.Copies) / float64(total.Epoch)
	}
	return fmt.Sprintf("copies: %d completed, %d resyncs, %.1f MB of entries sent, %d table commits (%.2f copies per commit)",
		total.Copies, total.Resyncs, float64(total.CopyBytes)/1e6, total.Epoch, perCommit)
}

// healTraceEvery is how often traceHeal samples the cluster while it repairs after a heal.
const healTraceEvery = 3 * time.Second

// traceHeal logs, every healTraceEvery until the returned function is called, how the leader
// (or the first member that answers) sees the partitions: how many are migrating and how many
// replicas they have, so that a slow repair shows where it is slow.
func (j *jepsen) traceHeal(healedAt time.Time) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(healTraceEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			var seen *faultView
			var by *faultMember
			for _, m := range j.r.live() {
				v, err := m.info()
				if err != nil {
					continue
				}
				if seen == nil || v.Leader {
					seen, by = &v, m
				}
				if v.Leader {
					break
				}
			}
			if seen != nil {
				j.logf("cycle %d: %.0fs after the heal, member %s sees %s", j.cycle, time.Since(healedAt).Seconds(), by.id[:8], seen.Parts)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
