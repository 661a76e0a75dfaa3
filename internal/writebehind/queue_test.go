package writebehind

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore"
)

// queueScenarios drive one Queue with a script. Commands (one per line):
//
//	add K V           write V under K (at the current time)
//	update K N        write K N times, values 1..N
//	del K             delete K
//	wait D            advance the clock by duration D
//	ready K=V ...     the next batch is exactly these entries, in order (K=- is a delete;
//	                  "ready" alone: no batch)
//	readyn N          the next batch has N entries
//	ack / fail        acknowledge / fail the last batch
//	recovered         StoreRecovered(now): the store was seen working now
//	drain             ready+ack until no batch; collects what was stored
//	stored K=V ...    what drain stored, in order ("stored N" checks the count only)
//	len N             pending entries
//	full B            Full() reports B
//	stats F=V ...     Stats fields: stored, batches, errors, retries, failures, oldest (duration)
//	flush             RequestFlush (remembers the target)
//	flushed B         Flushed(target) reports B
var queueScenarios = []struct {
	name   string
	cfg    mapstore.Config
	script string
}{
	{"coalescing: 1000 updates during the delay make one store entry", mapstore.Config{WriteDelay: time.Second}, `
		update k 1000
		len 1
		ready
		wait 1s
		ready k=1000
		ack
		len 0
		stats stored=1 batches=1`},
	{"coalescing off: 1000 updates make 1000 entries stored in order", mapstore.Config{WriteDelay: time.Second, Coalesce: mapstore.CoalesceOff}, `
		update k 1000
		len 1000
		wait 1s
		drain
		stored 1000
		len 0`},
	{"coalescing off: keys interleave, each batch holds one write per key", mapstore.Config{WriteDelay: time.Second, Coalesce: mapstore.CoalesceOff}, `
		add a 1
		add b 1
		add a 2
		del b
		wait 1s
		ready a=1 b=1
		ack
		ready a=2 b=-
		ack
		ready`},
	{"the delay counts from the first write of a key", mapstore.Config{WriteDelay: 10 * time.Second}, `
		add a 1
		wait 6s
		add b 1
		add a 2
		wait 4s
		ready a=2
		ack
		wait 5s
		ready
		wait 1s
		ready b=1`},
	{"a delete coalesces with the value before it", mapstore.Config{WriteDelay: time.Second}, `
		add a 1
		del a
		wait 1s
		ready a=-`},
	{"batches hold at most BatchSize entries", mapstore.Config{WriteDelay: time.Second, BatchSize: 2}, `
		add a 1
		add b 1
		add c 1
		wait 1s
		ready a=1 b=1
		ready
		ack
		ready c=1`},
	{"the store seen working clears a backoff from earlier failures, not from later ones", mapstore.Config{WriteDelay: time.Second, RetryInitial: time.Second, RetryMax: time.Minute}, `
		add a 1
		wait 1s
		ready a=1
		fail store down
		wait 1s
		ready a=1
		fail store down
		stats failures=2
		wait 1ms
		ready
		recovered
		stats failures=0
		ready a=1
		fail store down again
		recovered
		ready
		stats failures=1`},
	{"failure keeps the entries and backs off exponentially up to the maximum", mapstore.Config{WriteDelay: time.Second, RetryInitial: time.Second, RetryMax: 4 * time.Second}, `
		add a 1
		wait 1s
		ready a=1
		fail store down
		len 1
		stats errors=1 failures=1
		wait 999ms
		ready
		wait 1ms
		ready a=1
		fail store down
		wait 1999ms
		ready
		wait 1ms
		ready a=1
		fail store down
		wait 4s
		ready a=1
		fail store down
		wait 4s
		ready a=1
		stats errors=4 retries=4 failures=4
		ack
		stats stored=1 failures=0
		len 0`},
	{"a key written again during a flush is not lost", mapstore.Config{WriteDelay: time.Second}, `
		add a 1
		add b 1
		wait 1s
		ready a=1 b=1
		add a 2
		ack
		len 1
		ready a=2
		ack
		len 0`},
	{"a key written again during a failed flush is stored with its latest value", mapstore.Config{WriteDelay: time.Second, RetryInitial: time.Second}, `
		add a 1
		wait 1s
		ready a=1
		add a 2
		fail timeout
		wait 1s
		ready a=2
		ack
		len 0`},
	{"flush makes everything written before it ready at once", mapstore.Config{WriteDelay: time.Hour}, `
		add a 1
		add b 1
		flush
		add c 1
		flushed false
		ready a=1 b=1
		ack
		flushed true
		ready`},
	{"flush of a hot key completes once a later value is stored", mapstore.Config{WriteDelay: time.Hour}, `
		add a 1
		flush
		ready a=1
		add a 2
		ack
		flushed true
		len 1`},
	{"the entry limit makes the queue full until entries are stored", mapstore.Config{WriteDelay: time.Second, MaxDirtyEntries: 2}, `
		add a 1
		full false
		add b 1
		full true
		update b 10
		full true
		wait 1s
		ready a=1 b=10
		full true
		ack
		full false`},
	{"the byte limit counts keys and values and follows coalesced updates", mapstore.Config{WriteDelay: time.Second, MaxDirtyBytes: 10, BatchBytes: 10}, `
		add a 12345678
		full false
		add a 123456789
		full true
		add a 1
		full false`},
	{"oldest dirty age", mapstore.Config{WriteDelay: time.Minute}, `
		add a 1
		wait 5s
		add b 1
		wait 5s
		stats oldest=10s`},
}

func TestQueueScenarios(t *testing.T) {
	for _, sc := range queueScenarios {
		t.Run(sc.name, func(t *testing.T) {
			q, err := NewQueue(sc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			h := &queueHarness{t: t, q: q, now: time.Unix(1_000_000, 0)}
			for i, line := range strings.Split(strings.TrimSpace(sc.script), "\n") {
				h.line = fmt.Sprintf("line %d %q", i+1, strings.TrimSpace(line))
				h.run(strings.Fields(line))
			}
		})
	}
}

type queueHarness struct {
	t      *testing.T
	q      *Queue
	now    time.Time
	line   string
	batch  []Entry
	stored []Entry
	target uint64
}

func (h *queueHarness) fatalf(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("%s: "+format, append([]any{h.line}, args...)...)
}

func (h *queueHarness) run(f []string) {
	h.t.Helper()
	q := h.q
	switch f[0] {
	case "add":
		q.Add(Entry{Key: []byte(f[1]), Value: []byte(f[2])}, h.now)
	case "update":
		for i := 1; i <= h.atoi(f[2]); i++ {
			q.Add(Entry{Key: []byte(f[1]), Value: []byte(strconv.Itoa(i))}, h.now)
		}
	case "del":
		q.Add(Entry{Key: []byte(f[1]), Delete: true}, h.now)
	case "wait":
		d, err := time.ParseDuration(f[1])
		if err != nil {
			h.fatalf("%v", err)
		}
		h.now = h.now.Add(d)
	case "ready":
		b := q.Ready(h.now)
		if got, want := render(b), strings.Join(f[1:], " "); got != want {
			h.fatalf("batch %q, want %q", got, want)
		}
		if b != nil {
			h.batch = b
		}
	case "readyn":
		h.batch = q.Ready(h.now)
		if len(h.batch) != h.atoi(f[1]) {
			h.fatalf("batch of %d, want %s", len(h.batch), f[1])
		}
	case "ack":
		q.Ack(h.batch)
	case "fail":
		q.Fail(h.batch, h.now, errors.New(strings.Join(f[1:], " ")))
	case "recovered":
		q.StoreRecovered(h.now)
	case "drain":
		for b := q.Ready(h.now); b != nil; b = q.Ready(h.now) {
			h.stored = append(h.stored, b...)
			q.Ack(b)
		}
	case "stored":
		if n, err := strconv.Atoi(f[1]); err == nil && len(f) == 2 {
			if len(h.stored) != n {
				h.fatalf("stored %d entries, want %d", len(h.stored), n)
			}
			for i := 1; i < len(h.stored); i++ {
				if h.stored[i].Seq <= h.stored[i-1].Seq {
					h.fatalf("stored out of order at %d: seq %d after %d", i, h.stored[i].Seq, h.stored[i-1].Seq)
				}
			}
			return
		}
		if got, want := render(h.stored), strings.Join(f[1:], " "); got != want {
			h.fatalf("stored %q, want %q", got, want)
		}
	case "len":
		if q.Len() != h.atoi(f[1]) {
			h.fatalf("len %d, want %s", q.Len(), f[1])
		}
	case "full":
		if got := fmt.Sprint(q.Full()); got != f[1] {
			h.fatalf("full %s, want %s", got, f[1])
		}
	case "flush":
		h.target = q.RequestFlush()
	case "flushed":
		if got := fmt.Sprint(q.Flushed(h.target)); got != f[1] {
			h.fatalf("flushed %s, want %s", got, f[1])
		}
	case "stats":
		s := q.Stats(h.now)
		got := map[string]string{
			"stored": fmt.Sprint(s.Stored), "batches": fmt.Sprint(s.Batches), "errors": fmt.Sprint(s.Errors),
			"retries": fmt.Sprint(s.Retries), "failures": fmt.Sprint(s.ConsecutiveFailures), "oldest": s.OldestAge.String(),
		}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			if got[k] != v {
				h.fatalf("stats %s=%s, want %s (%+v)", k, got[k], v, s)
			}
		}
	default:
		h.fatalf("unknown command")
	}
}

func (h *queueHarness) atoi(s string) int {
	h.t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		h.fatalf("%v", err)
	}
	return n
}

func render(es []Entry) string {
	var parts []string
	for _, e := range es {
		v := string(e.Value)
		if e.Delete {
			v = "-"
		}
		parts = append(parts, string(e.Key)+"="+v)
	}
	return strings.Join(parts, " ")
}

// TestNewQueueAppliesDefaults: a queue takes the zero mapstore.Config (defaults apply).
func TestNewQueueAppliesDefaults(t *testing.T) {
	if _, err := NewQueue(mapstore.Config{}, nil); err != nil {
		t.Fatalf("NewQueue applies the defaults, but refused the zero Config: %v", err)
	}
}
