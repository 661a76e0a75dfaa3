package main

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkloadRecordsOps checks the per-op records of a paced run: one per counted op with the
// same latencies as the samples, and a stalled op charged to the ops its worker issued late.
func TestWorkloadRecordsOps(t *testing.T) {
	const (
		workers   = 2
		rate      = 200.0                                                // ops/s over both workers
		interval  = time.Duration(workers * float64(time.Second) / rate) // between two ops of a worker
		stall     = 50 * time.Millisecond
		stalledOp = 9 // index among worker 0's ops
	)
	// Each worker has a store of its own, so the stalled op is known: worker 0's tenth.
	var puts atomic.Int32
	s0, s1 := newFakeStore(), newFakeStore()
	s0.BeforePut = func(string) {
		if puts.Add(1) == stalledOp+1 {
			time.Sleep(stall) // the stall being measured, not a wait for a condition
		}
	}
	cfg := config{Op: opPut, Keys: 10, Concurrency: workers, Duration: 400 * time.Millisecond, TargetOps: rate, OpsOut: "x"}
	tl := newWorkload(cfg, time.Now(), benchValue(8)).run(context.Background(), []slot{{0, s0}, {1, s1}})
	if tl.Ops == 0 || int64(len(tl.Records)) != tl.Ops {
		t.Fatalf("%d ops, %d records", tl.Ops, len(tl.Records))
	}
	var lat []time.Duration
	for _, r := range tl.Records {
		lat = append(lat, r.Latency)
		if r.Start < 0 || r.Start >= cfg.Duration || r.Worker < 0 || r.Worker >= workers {
			t.Fatalf("record %+v outside the run", r)
		}
	}
	samples := slices.Clone(tl.Samples)
	slices.Sort(lat)
	slices.Sort(samples)
	if !slices.Equal(lat, samples) {
		t.Fatal("the records' latencies are not the samples")
	}

	var buf bytes.Buffer
	if err := writeOps(&buf, tl.Records); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if lines[0] != opsHeader || int64(len(lines)-1) != tl.Ops {
		t.Fatalf("header %q, %d lines for %d ops", lines[0], len(lines)-1, tl.Ops)
	}
	type row struct {
		start, latency float64
		worker         int
	}
	var rows []row
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) != 3 {
			t.Fatalf("line %q", l)
		}
		st, err1 := strconv.ParseFloat(f[0], 64)
		la, err2 := strconv.ParseFloat(f[1], 64)
		w, err3 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("line %q", l)
		}
		if len(rows) > 0 && st < rows[len(rows)-1].start {
			t.Fatalf("line %q is before the line above it", l)
		}
		rows = append(rows, row{st, la, w})
	}

	// The stalled op and the next op of its worker: scheduled one interval after it, issued when
	// the stall ended, so measured from its scheduled start. Every op counts (no warm-up), so
	// worker 0's rows are its ops in order.
	var w0 []row
	for _, r := range rows {
		if r.worker == 0 {
			w0 = append(w0, r)
		}
	}
	if len(w0) <= stalledOp+1 {
		t.Fatalf("worker 0 has %d ops, want more than %d", len(w0), stalledOp+1)
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) }
	st, n := w0[stalledOp], w0[stalledOp+1]
	if st.latency < us(stall) {
		t.Fatalf("stalled op took %.1f µs, want at least %v", st.latency, stall)
	}
	if n.start-st.start > us(interval)+1 || n.latency < us(stall-interval)-1 {
		t.Fatalf("op after the stall: start %.1f (stalled op %.1f), latency %.1f µs; want scheduled start and the wait charged", n.start, st.start, n.latency)
	}
}
