package main

import (
	"testing"
	"time"
)

func TestPacer(t *testing.T) {
	start := time.Unix(1000, 0)
	// 1000 ops/s over 4 workers: each worker every 4 ms, worker w offset by w ms.
	p := newPacer(start, 1000, 4, 1)
	for n, want := range []time.Duration{1, 5, 9, 13} {
		if got := p.next().Sub(start); got != want*time.Millisecond {
			t.Fatalf("op %d at %v, want %v", n, got, want*time.Millisecond)
		}
	}
}

func TestPacerTotalRate(t *testing.T) {
	start := time.Unix(1000, 0)
	end := start.Add(2 * time.Second)
	for _, tc := range []struct {
		rate    float64
		workers int
	}{{1000, 4}, {333, 32}, {50000, 7}, {1, 3}} {
		total := 0
		for w := range tc.workers {
			p := newPacer(start, tc.rate, tc.workers, w)
			for p.next().Before(end) {
				total++
			}
		}
		want := int(2 * tc.rate)
		if total < want-tc.workers || total > want+tc.workers {
			t.Errorf("rate %v, %d workers: %d ops scheduled in 2 s, want about %d", tc.rate, tc.workers, total, want)
		}
	}
}

func TestVirtualIssuer(t *testing.T) {
	at := func(ms float64) time.Time {
		return time.Unix(1000, 0).Add(time.Duration(ms * float64(time.Millisecond)))
	}
	var v virtualIssuer
	for i, op := range []struct {
		sched, issued, done float64 // ms
		want                float64 // charged latency, ms
	}{
		{0, 3, 4, 1},       // the timer fired 3 ms late: not charged
		{10, 10, 35, 25},   // a slow answer
		{20, 35, 36, 16},   // issued late behind it: 15 ms of waiting charged
		{30, 36, 37, 7},    // still behind: on the exact schedule it waits until 36
		{40, 47, 48, 1},    // caught up; the timer was 7 ms late
		{60, 70, 75, 5},    // the timer was 10 ms late
		{70, 75, 76, 1},    // issued late only because of that timer: nothing to charge
		{80, 80, 80.5, .5}, // on time
	} {
		got := v.charge(at(op.sched), at(op.issued), at(op.done))
		if want := time.Duration(op.want * float64(time.Millisecond)); got != want {
			t.Fatalf("op %d: charged %v, want %v", i, got, want)
		}
	}
}
