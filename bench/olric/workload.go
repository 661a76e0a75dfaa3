package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buraksezer/olric"
)

// workload is what the workers do.
type workload struct {
	op          string // put, get or mixed
	readPct     int    // percent of gets in mixed
	keys        int
	value       []byte
	concurrency int
	warmup      time.Duration
	duration    time.Duration
}

// key names key number i, as cmd/gridmap-bench does.
func key(i int) string { return "k" + strconv.Itoa(i) }

// preload puts every key once with concurrency workers spread over maps, so that gets find
// their keys. It stops at the first error.
func (w workload) preload(ctx context.Context, maps []olric.DMap) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := range w.concurrency {
		dm := maps[i%len(maps)]
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < w.keys && ctx.Err() == nil; k = int(next.Add(1) - 1) {
				if err := dm.Put(ctx, key(k), w.value); err != nil {
					cancel(fmt.Errorf("preload %s: %w", key(k), err))
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// tally is what one worker measured.
type tally struct {
	lat      latencies
	errors   int64
	firstErr error
}

// run runs the workers for warmup plus duration and returns what they measured: every op that
// started after the warm-up and ended before the deadline counts (an op straddling the
// deadline is dropped, so slow ops do not stretch the measured time).
func (w workload) run(ctx context.Context, maps []olric.DMap) (latencies, int64, error) {
	start := time.Now().Add(w.warmup)
	deadline := start.Add(w.duration)
	tallies := make([]tally, w.concurrency)
	var wg sync.WaitGroup
	for i := range w.concurrency {
		dm := maps[i%len(maps)]
		wg.Go(func() { tallies[i] = w.worker(ctx, dm, uint64(i), start, deadline) })
	}
	wg.Wait()
	var all latencies
	var errs int64
	var first error
	for _, t := range tallies {
		all = append(all, t.lat...)
		errs += t.errors
		if first == nil {
			first = t.firstErr
		}
	}
	return all, errs, first
}

func (w workload) worker(ctx context.Context, dm olric.DMap, seed uint64, start, deadline time.Time) tally {
	rng := rand.New(rand.NewPCG(seed, 42))
	t := tally{lat: make(latencies, 0, 1<<14)}
	for {
		k := key(rng.IntN(w.keys))
		get := w.op == "get" || (w.op == "mixed" && rng.IntN(100) < w.readPct)
		t0 := time.Now()
		var err error
		if get {
			err = w.get(ctx, dm, k)
		} else {
			err = dm.Put(ctx, k, w.value)
		}
		t1 := time.Now()
		if t1.After(deadline) {
			return t
		}
		if t0.Before(start) {
			continue
		}
		t.lat = append(t.lat, t1.Sub(t0))
		if err != nil {
			t.errors++
			if t.firstErr == nil {
				t.firstErr = err
			}
		}
	}
}

// errShortValue: a get returned fewer bytes than were put.
var errShortValue = errors.New("short value")

// get reads k and checks that the whole value came back.
func (w workload) get(ctx context.Context, dm olric.DMap, k string) error {
	r, err := dm.Get(ctx, k)
	if err != nil {
		return err
	}
	b, err := r.Byte()
	if err != nil {
		return err
	}
	if len(b) != len(w.value) {
		return fmt.Errorf("%w: %s: %d of %d bytes", errShortValue, k, len(b), len(w.value))
	}
	return nil
}
