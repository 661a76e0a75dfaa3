package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// store is what a worker needs of a map. Both methods may be called from many goroutines at once.
// Get returns the stored value (the caller only reads it) or an error, for example when the key is
// missing.
type store interface {
	Put(ctx context.Context, key string, value []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
}

// queueStore is what a worker needs of a queue (-op offer, -op take): a store that has one
// implements it. Both methods may be called from many goroutines at once.
type queueStore interface {
	Offer(ctx context.Context, value []byte) error
	Take(ctx context.Context) ([]byte, error)
}

// errNoQueue: -op offer or take on a system without queues.
var errNoQueue = errors.New("gridmap-bench: this system has no queue")

// errShortValue is counted for a get whose value does not come back with the full length.
var errShortValue = errors.New("gridmap-bench: get returned a value of the wrong length")

// key returns the key of index i (same keys as the Olric harness).
func key(i int) string { return "k" + strconv.Itoa(i) }

// benchValue returns the value every op writes: size bytes of fixed pseudo-random data.
func benchValue(size int) []byte {
	v := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(v)
	return v
}

// slot is one worker: its global index (which seeds its key sequence and its pacing offset) and the
// member map it uses.
type slot struct {
	ID    int
	Store store
}

// preload puts every key i with i % stride == from (0 <= from < stride) with value, using one
// goroutine per slot, and returns the first error.
func preload(ctx context.Context, slots []slot, keys, from, stride int, value []byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, s := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1) - 1; ; n = next.Add(1) - 1 {
				i := from + int(n)*stride
				if i >= keys || ctx.Err() != nil {
					return
				}
				if err := s.Store.Put(ctx, key(i), value); err != nil {
					once.Do(func() { first = fmt.Errorf("preload %s: %w", key(i), err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// workload is what every worker does, wherever it runs.
type workload struct {
	Op         string    // opPut, opGet, opMixed, opOffer or opTake
	ReadPct    int       // gets in percent, for opMixed
	Keys       int       // keys are key(0) .. key(Keys-1), picked uniformly
	Value      []byte    // written by puts; gets must return len(Value) bytes
	Start      time.Time // ops that start before it are warm-up and not counted
	Deadline   time.Time // ops that end after it are not counted; no op starts after it
	TargetOps  float64   // total ops/s over Workers workers; 0 = unpaced
	Workers    int       // total workers of the run, over all processes (for pacing)
	WarmupFrom time.Time // when the warm-up (or, without one, the measurement) begins: first op time
	RecordOps  bool      // keep an opRecord of every counted op (tally.Records)

	// sleep, if set, replaces a paced worker's timer: it waits d (or longer) and reports false
	// when ctx ended first. A test makes the load tool's own wait late with it.
	sleep func(ctx context.Context, d time.Duration) bool
}

// newWorkload builds the workload of cfg measured from start+cfg.Warmup for cfg.Duration.
func newWorkload(cfg config, begin time.Time, value []byte) workload {
	start := begin.Add(cfg.Warmup)
	return workload{
		Op: cfg.Op, ReadPct: cfg.ReadPct, Keys: cfg.Keys, Value: value,
		Start: start, Deadline: start.Add(cfg.Duration),
		TargetOps: cfg.TargetOps, Workers: cfg.Concurrency, WarmupFrom: begin,
		RecordOps: cfg.OpsOut != "",
	}
}

// run runs one goroutine per slot until the deadline (or until ctx ends) and returns what they
// measured. Every op is recorded: its latency, and whether it failed. When paced, an op that
// waits behind a slow earlier op of its worker is charged the wait (virtualIssuer). An op that ends after the deadline is dropped, as in the Olric harness.
func (wl workload) run(ctx context.Context, slots []slot) tally {
	results := make([]tally, len(slots))
	var wg sync.WaitGroup
	for i, s := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = wl.worker(ctx, s)
		}()
	}
	wg.Wait()
	var t tally
	for _, r := range results {
		t.add(r)
	}
	return t
}

func (wl workload) worker(ctx context.Context, s slot) tally {
	rng := rand.New(rand.NewSource(int64(s.ID) + 42))
	var p *pacer
	var vi virtualIssuer
	if wl.TargetOps > 0 {
		p = newPacer(wl.WarmupFrom, wl.TargetOps, wl.Workers, s.ID)
	}
	t := tally{Samples: make([]time.Duration, 0, 1<<14)}
	sleep := wl.sleep
	if sleep == nil {
		var ts timerSleep
		defer ts.stop()
		sleep = ts.sleep
	}
	qs, _ := s.Store.(queueStore)
	queueOp := wl.Op == opOffer || wl.Op == opTake
	if queueOp && qs == nil {
		t.Errors, t.FirstError = 1, errNoQueue.Error()
		return t
	}
	// companion runs the unmeasured half of a queue op's pair.
	companion := func(op func() error) {
		if err := op(); err != nil {
			t.Errors++
			if t.FirstError == "" {
				t.FirstError = err.Error()
			}
		}
	}
	for ctx.Err() == nil {
		if wl.Op == opTake {
			companion(func() error { return qs.Offer(ctx, wl.Value) })
		}
		k := key(rng.Intn(wl.Keys))
		isGet := wl.Op == opGet || (wl.Op == opMixed && rng.Intn(100) < wl.ReadPct)
		issued := time.Now()
		sched := issued // when the op is due: its scheduled start when paced
		if p != nil {
			sched = p.next()
			if !sched.Before(wl.Deadline) {
				break
			}
			// A worker behind schedule issues the op at once; virtualIssuer charges its wait.
			if d := time.Until(sched); d > 0 && !sleep(ctx, d) {
				return t
			}
			issued = time.Now()
		}
		var err error
		switch {
		case wl.Op == opOffer:
			err = qs.Offer(ctx, wl.Value)
		case wl.Op == opTake:
			var v []byte
			if v, err = qs.Take(ctx); err == nil && len(v) != len(wl.Value) {
				err = fmt.Errorf("%w: took %d bytes, want %d", errShortValue, len(v), len(wl.Value))
			}
		case isGet:
			var v []byte
			if v, err = s.Store.Get(ctx, k); err == nil && len(v) != len(wl.Value) {
				err = fmt.Errorf("%w: %s has %d bytes, want %d", errShortValue, k, len(v), len(wl.Value))
			}
		default:
			err = s.Store.Put(ctx, k, wl.Value)
		}
		now := time.Now()
		if wl.Op == opOffer && err == nil {
			companion(func() error { _, err := qs.Take(ctx); return err })
		}
		if now.After(wl.Deadline) {
			break // an op straddling the deadline is not counted
		}
		// Unpaced, sched is the issue and the previous op ended before it: the latency is
		// now-issued.
		lat := vi.charge(sched, issued, now)
		if sched.Before(wl.Start) {
			continue // warm-up op
		}
		t.Samples = append(t.Samples, lat)
		if wl.RecordOps {
			t.Records = append(t.Records, opRecord{Start: sched.Sub(wl.Start), Latency: lat, Worker: s.ID})
		}
		t.Ops++
		if err != nil {
			t.Errors++
			if t.FirstError == "" {
				t.FirstError = err.Error()
			}
		}
	}
	return t
}
