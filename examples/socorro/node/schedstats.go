package node

import (
	"runtime/metrics"
	"sync"
	"time"
)

// schedLatency reports how long the node's goroutines waited to run once runnable (the Go
// runtime's /sched/latencies:seconds histogram) over the window since the previous read: the
// measure of CPU starvation. When a node is short of CPU, every goroutine waits in the run
// queues, the raft heartbeats, lease confirmations and gossip probes too; a p99 near the
// timings' margins (LeaseDuration, ProbeTimeout) means the machine, not the grid, is the limit.
type schedLatency struct {
	mu   sync.Mutex
	prev []uint64 // the histogram's counts at the previous read
}

const schedMetric = "/sched/latencies:seconds"

// window returns the 99th percentile and the largest bucket reached since the previous call
// (since the process started, at the first call).
func (s *schedLatency) window() (p99, maxWait time.Duration) {
	sample := []metrics.Sample{{Name: schedMetric}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0, 0
	}
	h := sample[0].Value.Float64Histogram()
	s.mu.Lock()
	prev := s.prev
	s.prev = append(s.prev[:0:0], h.Counts...)
	s.mu.Unlock()
	delta := make([]uint64, len(h.Counts))
	var total uint64
	for i, c := range h.Counts {
		if i < len(prev) && c >= prev[i] {
			c -= prev[i]
		}
		delta[i] = c
		total += c
	}
	if total == 0 {
		return 0, 0
	}
	// Buckets[i] and Buckets[i+1] bound bucket i; report a bucket by its upper bound (the last
	// one is +Inf: report its lower bound).
	upper := func(i int) time.Duration {
		b := h.Buckets[i+1]
		if b > 1e9 {
			b = h.Buckets[i]
		}
		return time.Duration(b * float64(time.Second))
	}
	var seen uint64
	need := total - total/100
	for i, c := range delta {
		if c == 0 {
			continue
		}
		seen += c
		if p99 == 0 && seen >= need {
			p99 = upper(i)
		}
		maxWait = upper(i)
	}
	return p99, maxWait
}
