package node

import (
	"sync"
	"testing"
	"time"
)

// The scheduling latency window sees goroutines that had to wait for a CPU: with more busy
// goroutines than CPUs for a while, some waited at least a few microseconds; a second read right
// after covers a fresh window.
func TestSchedLatencyWindow(t *testing.T) {
	var s schedLatency
	s.window()
	var wg sync.WaitGroup
	stop := time.Now().Add(200 * time.Millisecond)
	for range 16 {
		wg.Go(func() {
			for time.Now().Before(stop) {
			}
		})
	}
	wg.Wait()
	p99, maxWait := s.window()
	if maxWait <= 0 || p99 <= 0 || p99 > maxWait {
		t.Fatalf("after 16 spinning goroutines: p99 %v, max %v; want 0 < p99 <= max", p99, maxWait)
	}
	t.Logf("p99 %v, max %v", p99, maxWait)
}
