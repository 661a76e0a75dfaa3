package collector

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Admission control.
//
// A collector that accepts every submission at once lets a burst of clients (or a generator
// faster than the cluster) hold more report bytes in flight than the grid can copy to its
// backups: every save then waits behind the others, the member's CPU and memory go to bulk
// copies, and its control traffic (raft heartbeats, lease confirmations, gossip probes) waits
// in the same run queues until leases expire and every save times out. The budget turns that
// overload into back-pressure at the edge, as Mozilla's collectors do behind their load
// balancers: beyond it a submission is answered 503 with Retry-After before its body is
// parsed, and the client sends it again later.

// DefaultRetryAfter is the Retry-After a refused submission is answered with.
const DefaultRetryAfter = time.Second

// chunkedCharge is what a submission of unknown length (a chunked body) is charged at
// admission, before its size is known.
const chunkedCharge = 1 << 20

// budget counts the report bytes in flight against a limit. One submission is always admitted
// when nothing is in flight, so a report larger than the whole budget is slow, never refused
// forever.
type budget struct {
	limit int64

	mu       sync.Mutex
	inFlight int64
}

// acquire charges n bytes if they fit (or nothing is in flight) and reports whether it did.
func (b *budget) acquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight > 0 && b.inFlight+n > b.limit {
		return false
	}
	b.inFlight += n
	return true
}

// grow charges n more bytes to an admitted submission whose decoded size turned out larger
// than its charge (a gzipped body): the work is done already, so it is not refused, but the
// next submissions wait until the budget has room again.
func (b *budget) grow(n int64) {
	b.mu.Lock()
	b.inFlight += n
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.inFlight -= n
	b.mu.Unlock()
}

// bytes returns the bytes of the submissions being parsed and saved.
func (b *budget) bytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inFlight
}

// refuse answers 503 with Retry-After. It reads the body to its end first (cheaply, without
// keeping it, bounded by maxBytes): a client still sending its upload when the answer comes
// back may see a broken connection instead of the 503.
func refuse(w http.ResponseWriter, r *http.Request, retryAfter time.Duration, maxBytes int64) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxBytes))
	secs := max(int64((retryAfter+time.Second-1)/time.Second), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	answer(w, http.StatusServiceUnavailable, "Error=overloaded")
}

// decodedSize is what a parsed submission holds in memory: its dumps and annotations.
func decodedSize(s *Submission) int64 {
	var n int64
	for k, v := range s.Annotations {
		n += int64(len(k) + len(v))
	}
	for k, d := range s.Dumps {
		n += int64(len(k) + len(d))
	}
	return n
}
