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
