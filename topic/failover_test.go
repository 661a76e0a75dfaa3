package topic_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridmap/gridmap/gridmaptest"
	"github.com/gridmap/gridmap/topic"
)

// The topic's owner crashes while publishers publish: every acknowledged publish reaches every
// reliable subscriber, once, in the one order the owners (old and new) numbered them.
func TestOwnerCrashLosesNoAcknowledgedPublish(t *testing.T) {
	c := gridmaptest.NewCluster(t, 3, gridmaptest.WithBackups(1))
	ctx := testContext(t)
	cfg := topic.Config{Reliable: true}
	owner := -1
	probe := mustTopic[note](t, c.Member(0), "orders", cfg)
	for i, m := range c.Members() {
		if c.Member(0).Cluster().Partition(probe.Partition()).Owner == m.ID() {
			owner = i
		}
	}
	if owner < 0 {
		t.Fatal("the topic's partition has no owner")
	}
	var others []int
	for i := range 3 {
		if i != owner {
			others = append(others, i)
		}
	}

	// A subscriber on each surviving member, reading as it goes.
	type reader struct {
		st *stream[note]
		s  *topic.Subscription[note]
	}
	var readers []reader
	for _, i := range others {
		s := mustSubscribe(t, ctx, mustTopic[note](t, c.Member(i), "orders", cfg))
		readers = append(readers, reader{st: &stream[note]{t: t, name: fmt.Sprint("subscriber on member ", i), next: 1}, s: s})
	}

	// Two publishers on each surviving member; a publish that fails is retried with the same
	// note (it may have been numbered before the crash: the subscribers then see it twice).
	const publishers = 4
	acked := make([]map[uint64]note, publishers)
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range publishers {
		acked[p] = make(map[uint64]note)
		tp := mustTopic[note](t, c.Member(others[p%2]), "orders", cfg)
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				for {
					pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					seq, err := tp.Publish(pctx, note{P: p, I: i})
					cancel()
					if err == nil {
						acked[p][seq] = note{P: p, I: i}
						sent.Add(1)
						break
					}
					if ctx.Err() != nil {
						return
					}
				}
			}
		})
	}
	waitFor(t, ctx, func() bool { return sent.Load() >= 200 }, "200 publishes before the crash")
	c.Kill(owner)
	before := sent.Load()
	waitFor(t, ctx, func() bool { return sent.Load() >= before+200 }, "200 publishes after the crash")
	close(stop)
	wg.Wait()

	var last uint64
	all := make(map[uint64]note)
	for _, a := range acked {
		for seq, n := range a {
			if prev, dup := all[seq]; dup {
				t.Fatalf("sequence %d acknowledged twice: %+v and %+v", seq, prev, n)
			}
			all[seq] = n
			last = max(last, seq)
		}
	}
	for _, r := range readers {
		r.st.readUntil(ctx, r.s, last+1)
		if r.st.missed != 0 {
			t.Fatalf("%s missed %d messages", r.st.name, r.st.missed)
		}
		got := make(map[uint64]note, len(r.st.msgs))
		next := make([]int, publishers)
		dups := 0
		for _, m := range r.st.msgs {
			got[m.Seq] = m.Value
			switch {
			case m.Value.I == next[m.Value.P]:
				next[m.Value.P]++
			case m.Value.I == next[m.Value.P]-1:
				dups++ // a retried publish whose first attempt was numbered too
			default:
				t.Fatalf("%s: publisher %d's message %d arrived when %d was due", r.st.name, m.Value.P, m.Value.I, next[m.Value.P])
			}
		}
		for seq, n := range all {
			if got[seq] != n {
				t.Fatalf("%s: acknowledged message %d (%+v) delivered as %+v", r.st.name, seq, n, got[seq])
			}
		}
		t.Logf("%s: %d messages, %d acknowledged, %d numbered twice by a retry after the crash, %d read from the ring",
			r.st.name, len(r.st.msgs), len(all), dups, r.s.Stats().Repaired)
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, cond func() bool, what string) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
