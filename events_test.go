package gridmap

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/listener"
)

// socorroApp is the application of the Socorro pattern: every member handles the entries it
// owns as their events arrive, and sweeps its local entries for what it may have missed.
type socorroApp struct {
	mu      sync.Mutex
	handled map[string]int // latest value handled per key
	events  int
	missed  uint64 // reported by Overflow notices
	swept   int    // entries the sweep handled that no event had
	handles []*dmap.ListenerHandle
	notices map[*dmap.ListenerHandle]*uint64
}

func (a *socorroApp) handle(k string, v int) bool {
	if cur, ok := a.handled[k]; ok && cur >= v {
		return false
	}
	a.handled[k] = v
	return true
}

func (a *socorroApp) listen(t *testing.T, m *Member, name string) {
	t.Helper()
	var missed uint64
	h, err := getMap[string, int](t, m, name).AddLocalEntryListener(t.Context(), func(e dmap.EntryEvent[string, int]) {
		time.Sleep(200 * time.Microsecond) // a listener slower than the writes: its queue overflows
		a.mu.Lock()
		defer a.mu.Unlock()
		switch e.Kind {
		case listener.Overflow:
			a.missed += e.Missed
			missed += e.Missed
		case listener.Added, listener.Updated:
			a.events++
			a.handle(e.Key, e.NewValue)
		}
	}, dmap.ListenerOptions[string]{IncludeValues: true, QueueSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.handles = append(a.handles, h)
	a.notices[h] = &missed
	a.mu.Unlock()
}

func TestListenersWithMembersJoiningAndLeaving(t *testing.T) {
	members := startCluster(t, 3, nil)
	app := &socorroApp{handled: map[string]int{}, notices: map[*dmap.ListenerHandle]*uint64{}}
	for _, m := range members {
		app.listen(t, m, "work")
	}
	w := startWriters(t, 8, members[:2], "work")
	w.waitOps(t, 500)
	m3 := join(t, members[:1], nil)
	app.listen(t, m3, "work")
	m4 := join(t, members[:1], nil)
	app.listen(t, m4, "work")
	waitSettled(t, members[0], members[1], members[2], m3, m4)
	w.waitOps(t, 2000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leaving := app.handles[2]
	if err := members[2].Close(ctx); err != nil {
		t.Fatalf("graceful close: %v", err)
	}
	live := []*Member{members[0], members[1], m3, m4}
	waitSettled(t, live...)
	w.waitOps(t, 3000)
	w.finish(t, getMap[string, int](t, m4, "work"))

	// Let the live listeners drain, then check every drop was announced with its exact count.
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range app.handles {
		if h == leaving {
			continue
		}
		for {
			app.mu.Lock()
			notified := *app.notices[h]
			app.mu.Unlock()
			st := h.Stats()
			if st.Queued == 0 && notified == st.Missed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("listener still has %d queued, %d missed, %d notified", st.Queued, st.Missed, notified)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// The sweep: each member handles the entries it owns that no event handled.
	for _, m := range live {
		for e, err := range getMap[string, int](t, m, "work").LocalEntries() {
			if err != nil {
				t.Fatal(err)
			}
			app.mu.Lock()
			if app.handle(e.Key, e.Value) {
				app.swept++
			}
			app.mu.Unlock()
		}
	}
	present := 0
	for e, err := range getMap[string, int](t, m3, "work").Entries(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		present++
		app.mu.Lock()
		v, ok := app.handled[e.Key]
		app.mu.Unlock()
		if !ok || v != e.Value {
			t.Fatalf("entry %s=%d left unhandled (handled %d, %v)", e.Key, e.Value, v, ok)
		}
	}
	var statMissed uint64
	for _, h := range app.handles {
		statMissed += h.Stats().Missed
	}
	t.Logf("%d entries present, all handled: %d events, %d missed and announced by notices (%d counted by the listeners), %d entries handled by the sweep only",
		present, app.events, app.missed, statMissed, app.swept)
}
