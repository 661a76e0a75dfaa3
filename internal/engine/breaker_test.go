package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/gridmap/gridmap/mapstore"
	"github.com/gridmap/gridmap/mapstore/memstore"
)

// failedCalls counts the store calls of st that failed (a batch call counts once).
func failedCalls(st *memstore.Store) int {
	n := map[int]bool{}
	for _, c := range st.Calls() {
		if c.Err != nil {
			n[c.N] = true
		}
	}
	return len(n)
}

// While the store is down, the write-behind queues of every partition do not each call it:
// one probe at a time, backing off, finds out when it is back; then every queue stores at once,
// whatever backoff its own earlier failures had reached.
func TestWriteBehindOutageProbesTheStore(t *testing.T) {
	st := memstore.New()
	const retryInitial, retryMax = 20 * time.Millisecond, 400 * time.Millisecond
	c := newCluster(t, 1, 0, withStore("wb", st, mapstore.Config{WriteDelay: time.Millisecond, RetryInitial: retryInitial, RetryMax: retryMax}))
	st.Down()
	want := writeAll(t, c, "wb", 300, "a") // dirty entries in all 31 partitions
	time.Sleep(time.Second)                // an observation window, not a synchronisation
	// One probe at a time, at most once per backoff (20, 40, 80, 160, 320, 400 ms...): about 6
	// calls in a second. Each partition's queue on its own would make ~31 x 6.
	if n := failedCalls(st); n == 0 || n > 20 {
		t.Fatalf("%d failed store calls in the first second of the outage, want 1..20", n)
	}
	st.Up()
	up := time.Now()
	storeHas(t, st, want)
	// The next probe comes within retryMax; then every queue goes at once.
	if d := time.Since(up); d > retryMax+5*time.Second {
		t.Fatalf("stored everything %v after the store came back", d)
	}
}

func TestStoreBreaker(t *testing.T) {
	const initial = 100 * time.Millisecond
	b := newStoreBreaker(mapstore.Config{RetryInitial: initial, RetryMax: 300 * time.Millisecond})
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	expect := func(now time.Time, ok, probe bool) {
		t.Helper()
		if gotOK, gotProbe := b.admit(now); gotOK != ok || gotProbe != probe {
			t.Fatalf("admit at +%v = %v, %v; want %v, %v", now.Sub(t0), gotOK, gotProbe, ok, probe)
		}
	}
	down := errors.New("down")

	expect(t0, true, false) // closed: everyone
	expect(t0, true, false)
	if opened, _, _ := b.done(false, t0, down); !opened {
		t.Fatal("the first failure does not open the breaker")
	}
	if opened, _, _ := b.done(false, t0, down); opened {
		t.Fatal("a second concurrent failure reopens the breaker")
	}
	// Two failures: the next probe after RetryDelay(2) = 200ms.
	expect(at(199*time.Millisecond), false, false)
	expect(at(200*time.Millisecond), true, true)
	expect(at(200*time.Millisecond), false, false) // one probe at a time
	b.release(true)                                // it had nothing to store
	expect(at(200*time.Millisecond), true, true)
	b.done(true, at(210*time.Millisecond), down) // third failure: 300ms (RetryMax)
	expect(at(509*time.Millisecond), false, false)
	expect(at(510*time.Millisecond), true, true)
	if !b.recoveredAt().IsZero() {
		t.Fatal("recoveredAt while the store fails")
	}
	_, closed, outage := b.done(true, at(520*time.Millisecond), nil)
	if !closed || outage != 520*time.Millisecond {
		t.Fatalf("success while open: closed %v after %v, want true after 520ms", closed, outage)
	}
	if got := b.recoveredAt(); !got.Equal(at(520 * time.Millisecond)) {
		t.Fatalf("recoveredAt = +%v", got.Sub(t0))
	}
	expect(at(520*time.Millisecond), true, false)
	if _, closed, _ := b.done(false, at(530*time.Millisecond), nil); closed {
		t.Fatal("a success while closed reports closing")
	}
}
