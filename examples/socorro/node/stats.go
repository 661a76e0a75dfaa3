package node

import (
	"sort"
	"sync"
	"time"
)

// rateWindow counts events per second over the last minute.
type rateWindow struct {
	mu      sync.Mutex
	buckets [60]uint64
	secs    [60]int64
	total   uint64
}

func (r *rateWindow) add(now time.Time) {
	s := now.Unix()
	i := s % 60
	r.mu.Lock()
	if r.secs[i] != s {
		r.secs[i], r.buckets[i] = s, 0
	}
	r.buckets[i]++
	r.total++
	r.mu.Unlock()
}

// perMinute returns the events of the last 60 seconds and the total since start.
func (r *rateWindow) perMinute(now time.Time) (uint64, uint64) {
	s := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	var n uint64
	for i := range r.buckets {
		if s-r.secs[i] < 60 {
			n += r.buckets[i]
		}
	}
	return n, r.total
}

// Summary is one processed crash as the pages list it.
type Summary struct {
	ID        string
	Product   string
	Version   string
	Signature string
	Reason    string
	Processed time.Time
}

// history keeps the crashes this node processed: the most recent ones for the recent list, and
// the signatures of the last hour for the top-signatures table, both bounded.
type history struct {
	mu     sync.Mutex
	recent []Summary // ring, newest at (next-1)
	next   int
	full   bool
	hour   []sigAt // in processing order
}

type sigAt struct {
	at  time.Time
	sig string
}

const (
	recentSize = 50
	// hourCap bounds the signatures kept for the last hour (about 28 per second).
	hourCap = 100_000
)

func (h *history) add(s Summary) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.recent == nil {
		h.recent = make([]Summary, recentSize)
	}
	h.recent[h.next] = s
	h.next = (h.next + 1) % recentSize
	if h.next == 0 {
		h.full = true
	}
	h.hour = append(h.hour, sigAt{s.Processed, s.Signature})
	if len(h.hour) > hourCap {
		h.hour = append(h.hour[:0], h.hour[len(h.hour)-hourCap:]...)
	}
}

// Recent returns the recent crashes, newest first.
func (h *history) Recent() []Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.next
	if h.full {
		n = recentSize
	}
	out := make([]Summary, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, h.recent[(h.next-i+recentSize)%recentSize])
	}
	return out
}

// SignatureCount is one row of the top-signatures table.
type SignatureCount struct {
	Signature string
	Count     int
}

// Top returns the n most frequent signatures processed since since, most frequent first.
func (h *history) Top(since time.Time, n int) []SignatureCount {
	h.mu.Lock()
	i := sort.Search(len(h.hour), func(i int) bool { return !h.hour[i].at.Before(since) })
	h.hour = append(h.hour[:0], h.hour[i:]...) // drop what is older than the window
	counts := map[string]int{}
	for _, s := range h.hour {
		counts[s.sig]++
	}
	h.mu.Unlock()
	out := make([]SignatureCount, 0, len(counts))
	for sig, c := range counts {
		out = append(out, SignatureCount{sig, c})
	}
	sortCounts(out)
	if len(out) > n {
		out = out[:n]
	}
	return out
}
