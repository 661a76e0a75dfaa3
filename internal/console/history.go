package console

import (
	"sync"
	"time"
)

// HistoryLen is how many one-second samples of throughput a member keeps: five minutes.
const HistoryLen = 300

// History keeps a member's recent throughput: the operations per second over the last
// HistoryLen samples, computed from a cumulative counter sampled about once a second. It is
// safe for concurrent use; time is passed in.
type History struct {
	mu     sync.Mutex
	rates  [HistoryLen]float64
	next   int // index of the next sample
	n      int // samples held
	last   uint64
	lastAt time.Time
}

// Add records the counter's value total at time now. The first call only sets the base; a
// counter that went backwards (a restart) sets the base again.
func (h *History) Add(now time.Time, total uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lastAt.IsZero() && total >= h.last {
		if dt := now.Sub(h.lastAt).Seconds(); dt > 0 {
			h.rates[h.next] = float64(total-h.last) / dt
			h.next = (h.next + 1) % HistoryLen
			h.n = min(h.n+1, HistoryLen)
		}
	}
	h.last, h.lastAt = total, now
}

// Rates returns the samples, oldest first, and the time of the newest (zero: none yet).
func (h *History) Rates() ([]float64, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]float64, 0, h.n)
	for i := range h.n {
		out = append(out, h.rates[(h.next-h.n+i+HistoryLen)%HistoryLen])
	}
	if h.n == 0 {
		return out, time.Time{}
	}
	return out, h.lastAt
}
