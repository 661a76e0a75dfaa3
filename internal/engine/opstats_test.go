package engine

import (
	"testing"
	"time"
)

func TestOpStatsCountAndSample(t *testing.T) {
	var o mapOps
	const n = 1000
	for i := range n {
		st, c, timed := o.begin(int32(i%271), opPut)
		if timed {
			st.end(c, 3*time.Microsecond, i%2 == 0)
		} else if i%2 == 0 {
			st.errs[c].Add(1)
		}
	}
	st, c, _ := o.begin(0, opGet)
	st.end(c, 40*time.Second, false) // beyond the last bucket: counted, in no bucket
	s := o.snapshot()
	put := s[ClassPut]
	if put.Ops != n || put.Errors != n/2 {
		t.Fatalf("puts %d, errors %d: want %d, %d", put.Ops, put.Errors, n, n/2)
	}
	// Each stripe times every 16th of its operations.
	var want uint64
	per := map[int]uint64{}
	for i := range n {
		per[(i%271)&(opStripes-1)]++
	}
	for _, k := range per {
		want += k / latencySample
	}
	if put.Timed != want || put.Latency[2] != want || put.LatencySum != time.Duration(want)*3*time.Microsecond {
		t.Fatalf("timed %d (bucket 2: %d, sum %v), want %d in bucket 2 (3µs < 4µs)", put.Timed, put.Latency[2], put.LatencySum, want)
	}
	get := s[ClassGet]
	var inBuckets uint64
	for _, b := range get.Latency {
		inBuckets += b
	}
	if get.Ops != 1 || get.Timed != 1 || inBuckets != 0 {
		t.Fatalf("slow get: ops %d, timed %d, in buckets %d", get.Ops, get.Timed, inBuckets)
	}
	if LatencyBound(2) != 4*time.Microsecond {
		t.Fatalf("LatencyBound(2) = %v", LatencyBound(2))
	}
}

// BenchmarkOpCount is what an operation pays for its statistics when it is not timed (15 in
// 16): compare with BenchmarkOwnerPutGet's ns/op.
func BenchmarkOpCount(b *testing.B) {
	var o mapOps
	b.RunParallel(func(pb *testing.PB) {
		i := int32(0)
		for pb.Next() {
			i++
			st, c, timed := o.begin(i, opGet)
			if timed {
				st.end(c, time.Microsecond, false)
			}
		}
	})
}

// BenchmarkOpCountSerial is BenchmarkOpCount from one goroutine (no cache line shared between
// cores).
func BenchmarkOpCountSerial(b *testing.B) {
	var o mapOps
	i := int32(0)
	for b.Loop() {
		i++
		st, c, timed := o.begin(i, opGet)
		if timed {
			st.end(c, time.Microsecond, false)
		}
	}
}
