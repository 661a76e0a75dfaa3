package listener

import "testing"

// item is what pop returned, in a form easy to compare.
type item struct {
	seq    uint64 // event's Seq, 0 for a notice
	missed uint64 // notice count, 0 for an event
}

func drain(q *queue) []item {
	var out []item
	for {
		ev, missed, ok := q.pop()
		if !ok {
			return out
		}
		out = append(out, item{seq: ev.Seq, missed: missed})
	}
}

func ev(seq uint64) Event { return Event{Map: "m", Kind: Added, Seq: seq} }

func TestQueueScenarios(t *testing.T) {
	// Each step: "push" (seq), "pop" (expects an item), or "drain" (expects the rest).
	type step struct {
		push   []uint64
		pop    int    // number of items to pop before comparing
		want   []item // popped items
		queued int    // q.len() after the step
	}
	cases := []struct {
		name  string
		limit int
		steps []step
	}{
		{"fifo", 4, []step{
			{push: []uint64{1, 2, 3}, pop: 3, want: []item{{seq: 1}, {seq: 2}, {seq: 3}}},
		}},
		{"overflow then drain reports count after queued events", 2, []step{
			{push: []uint64{1, 2, 3, 4, 5}, queued: 2},
			{pop: 3, want: []item{{seq: 1}, {seq: 2}, {missed: 3}}},
		}},
		{"notice sits exactly at the gap", 2, []step{
			{push: []uint64{1, 2, 3, 4}, queued: 2},
			{pop: 1, want: []item{{seq: 1}}, queued: 1},
			{push: []uint64{5, 6}, queued: 2}, // 5 fits (after the gap of 3,4); 6 is dropped
			{pop: 4, want: []item{{seq: 2}, {missed: 2}, {seq: 5}, {missed: 1}}},
		}},
		{"two gaps two notices", 1, []step{
			{push: []uint64{1, 2}, queued: 1},
			{pop: 1, want: []item{{seq: 1}}},
			{push: []uint64{3, 4, 5}, queued: 1},
			{pop: 4, want: []item{{missed: 1}, {seq: 3}, {missed: 2}}},
		}},
		{"nothing pending after drain", 1, []step{
			{push: []uint64{1, 2}, queued: 1},
			{pop: 2, want: []item{{seq: 1}, {missed: 1}}},
			{push: []uint64{3}, queued: 1},
			{pop: 1, want: []item{{seq: 3}}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := newQueue(c.limit)
			for i, s := range c.steps {
				for _, seq := range s.push {
					q.push(ev(seq))
				}
				var got []item
				for range s.pop {
					e, missed, ok := q.pop()
					if !ok {
						break
					}
					got = append(got, item{seq: e.Seq, missed: missed})
				}
				if s.pop > 0 && !equalItems(got, s.want) {
					t.Fatalf("step %d: popped %v, want %v", i, got, s.want)
				}
				if q.len() != s.queued {
					t.Fatalf("step %d: len %d, want %d", i, q.len(), s.queued)
				}
			}
			if rest := drain(&q); len(rest) != 0 {
				t.Fatalf("left over %v", rest)
			}
		})
	}
}

func equalItems(a, b []item) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestQueueAccountingRandom pushes and pops in a pseudo-random interleaving and checks that
// every pushed event is either delivered or reported missed exactly once, in order.
func TestQueueAccountingRandom(t *testing.T) {
	for _, limit := range []int{1, 3, 16, 17, 100} {
		q := newQueue(limit)
		var next uint64 = 1 // next sequence to push
		var want uint64 = 1 // next sequence the consumer must account for
		x := uint32(limit) * 2654435761
		for range 20000 {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			if x%3 != 0 {
				q.push(ev(next))
				next++
				continue
			}
			e, missed, ok := q.pop()
			switch {
			case !ok:
			case missed > 0:
				want += missed
			case e.Seq != want:
				t.Fatalf("limit %d: got seq %d, want %d", limit, e.Seq, want)
			default:
				want++
			}
			if q.len() > limit {
				t.Fatalf("limit %d: len %d", limit, q.len())
			}
		}
		for _, it := range drain(&q) {
			if it.missed > 0 {
				want += it.missed
			} else if it.seq != want {
				t.Fatalf("limit %d: drained seq %d, want %d", limit, it.seq, want)
			} else {
				want++
			}
		}
		if want != next {
			t.Fatalf("limit %d: accounted up to %d, pushed up to %d", limit, want, next)
		}
		if len(q.buf) > 2*limit && len(q.buf) > minQueueAlloc {
			t.Fatalf("limit %d: ring grew to %d", limit, len(q.buf))
		}
	}
}

func TestQueueGrowsWithoutAllocatingOnceGrown(t *testing.T) {
	q := newQueue(64)
	for i := range 64 {
		q.push(ev(uint64(i)))
	}
	drain(&q)
	allocs := testing.AllocsPerRun(100, func() {
		for i := range 100 {
			q.push(ev(uint64(i)))
		}
		for {
			if _, _, ok := q.pop(); !ok {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run after growth", allocs)
	}
}

func TestQueueDiscard(t *testing.T) {
	q := newQueue(2)
	for i := range 5 {
		q.push(ev(uint64(i)))
	}
	if n := q.discard(); n != 2 {
		t.Fatalf("discard returned %d", n)
	}
	if _, _, ok := q.pop(); ok {
		t.Fatal("pop after discard")
	}
	if q.dropped != 3 {
		t.Fatalf("dropped %d, want 3", q.dropped)
	}
}
