package main

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestPreloadStride(t *testing.T) {
	s := newFakeStore()
	slots := []slot{{0, s}, {1, s}, {2, s}}
	value := benchValue(10)
	if err := preload(context.Background(), slots, 100, 1, 3, value); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		n := s.puts[key(i)]
		if want := map[bool]int{true: 1, false: 0}[i%3 == 1]; n != want {
			t.Fatalf("%s put %d times, want %d", key(i), n, want)
		}
	}
	s.FailPut = errors.New("disk on fire")
	err := preload(context.Background(), slots, 100, 0, 1, value)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("preload error %v", err)
	}
}

func TestWorkloadRun(t *testing.T) {
	s := newFakeStore()
	value := benchValue(64)
	slots := []slot{{0, s}, {1, s}}
	if err := preload(context.Background(), slots, 50, 0, 1, value); err != nil {
		t.Fatal(err)
	}
	cfg := config{Op: opMixed, ReadPct: 50, Keys: 50, Concurrency: 2, Duration: 200 * time.Millisecond}
	tl := newWorkload(cfg, time.Now(), value).run(context.Background(), slots)
	if tl.Ops == 0 || tl.Errors != 0 || int64(len(tl.Samples)) != tl.Ops {
		t.Fatalf("ops %d errors %d (%s) samples %d", tl.Ops, tl.Errors, tl.FirstError, len(tl.Samples))
	}

	s.ShortBy = 1
	cfg.Op = opGet
	tl = newWorkload(cfg, time.Now(), value).run(context.Background(), slots)
	if tl.Ops == 0 || tl.Errors != tl.Ops || !strings.Contains(tl.FirstError, "has 63 bytes, want 64") {
		t.Fatalf("short values: ops %d errors %d first %q", tl.Ops, tl.Errors, tl.FirstError)
	}
}

func TestWorkloadWarmupNotCounted(t *testing.T) {
	s := newFakeStore()
	cfg := config{Op: opPut, Keys: 10, Concurrency: 1, Duration: 100 * time.Millisecond, Warmup: 100 * time.Millisecond}
	begin := time.Now()
	wl := newWorkload(cfg, begin, benchValue(8))
	tl := wl.run(context.Background(), []slot{{0, s}})
	if tl.Ops == 0 || int64(len(tl.Samples)) != tl.Ops {
		t.Fatalf("ops %d samples %d", tl.Ops, len(tl.Samples))
	}
	var puts int64
	for _, n := range s.puts {
		puts += int64(n)
	}
	if puts <= tl.Ops {
		t.Fatalf("%d puts, %d counted: warm-up ops were counted", puts, tl.Ops)
	}
}

// In a synctest bubble the clock is the bubble's: the fake store answers in no time and the
// pacer's waits end exactly on schedule, so the count is exact, on any machine, in no time.
func TestWorkloadPaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore()
		cfg := config{Op: opPut, Keys: 10, Concurrency: 4, Duration: 500 * time.Millisecond, TargetOps: 400}
		slots := []slot{{0, s}, {1, s}, {2, s}, {3, s}}
		tl := newWorkload(cfg, time.Now(), benchValue(8)).run(context.Background(), slots)
		// 400 ops/s for 0.5 s schedules 200 ops, each answered at once.
		if tl.Ops != 200 {
			t.Fatalf("%d ops, want 200", tl.Ops)
		}
		for _, lat := range tl.Samples {
			if lat != 0 {
				t.Fatalf("an op on schedule charged %v", lat)
			}
		}
	})
}

// Paced workers waiting for their next op stop when ctx ends: in a synctest bubble, once every
// goroutine is blocked (synctest.Wait), the run must have returned.
func TestWorkloadCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cfg := config{Op: opPut, Keys: 10, Concurrency: 2, Duration: time.Hour, TargetOps: 1}
		done := make(chan tally, 1)
		go func() {
			done <- newWorkload(cfg, time.Now(), benchValue(8)).run(ctx, []slot{{0, newFakeStore()}, {1, newFakeStore()}})
		}()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("the run ended before ctx did")
		default:
		}
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("workers did not stop when ctx ended")
		}
	})
}

// TestWorkloadTimerLatenessNotCharged makes one wait of a paced worker 100 ms late: the ops it
// then issues behind schedule have fast answers and must not be charged the load tool's own
// lateness (measuring them from their scheduled start charges the next one about 90 ms).
func TestWorkloadTimerLatenessNotCharged(t *testing.T) {
	synctest.Test(t, testWorkloadTimerLatenessNotCharged)
}

func testWorkloadTimerLatenessNotCharged(t *testing.T) {
	const (
		workers  = 2
		rate     = 200.0 // ops/s over both workers: one op per worker every 10 ms
		late     = 100 * time.Millisecond
		lateWait = 10 // the run's eleventh wait oversleeps
	)
	var waits atomic.Int32
	cfg := config{Op: opPut, Keys: 10, Concurrency: workers, Duration: 400 * time.Millisecond, TargetOps: rate, OpsOut: "x"}
	wl := newWorkload(cfg, time.Now(), benchValue(8))
	wl.sleep = func(ctx context.Context, d time.Duration) bool {
		if waits.Add(1) == lateWait+1 {
			d += late // the load tool's lateness being modelled, not a wait for a condition
		}
		select {
		case <-time.After(d):
			return true
		case <-ctx.Done():
			return false
		}
	}
	tl := wl.run(context.Background(), []slot{{0, newFakeStore()}, {1, newFakeStore()}})
	if tl.Ops < 20 {
		t.Fatalf("%d ops", tl.Ops)
	}
	for _, r := range tl.Records {
		if r.Latency >= late/2 {
			t.Fatalf("op %+v charged %v: the worker's own lateness was charged", r, r.Latency)
		}
	}
}
