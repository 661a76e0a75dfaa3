package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/discovery"
)

func newList(t *testing.T, id string) *List {
	t.Helper()
	return newListOn(t, id, nil)
}

// newListOn starts a list gossiping on network (nil: sockets).
func newListOn(t *testing.T, id string, network *MemNetwork) *List {
	t.Helper()
	l, err := New(Config{ID: id, TransportAddr: "127.0.0.1:9" + id[len(id)-1:], Timings: LocalTimings(), Network: network})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Shutdown() })
	return l
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stateOf(l *List, id string) (Member, bool) {
	for _, m := range l.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// Join, metadata, leave and death, over sockets and over a MemNetwork (where a stopped member
// must look like a stopped process: its address drops packets and refuses streams).
func TestJoinMetaLeaveDeath(t *testing.T) {
	t.Run("sockets", func(t *testing.T) { testJoinMetaLeaveDeath(t, nil) })
	t.Run("memory", func(t *testing.T) { testJoinMetaLeaveDeath(t, NewMemNetwork()) })
}

func testJoinMetaLeaveDeath(t *testing.T, network *MemNetwork) {
	a, b, c := newListOn(t, "m1", network), newListOn(t, "m2", network), newListOn(t, "m3", network)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, l := range []*List{b, c} {
		if err := l.Join(ctx, discovery.Static{a.GossipAddr()}, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []*List{a, b, c} {
		eventually(t, 5*time.Second, "3 alive", func() bool { return l.NumAlive() == 3 })
	}
	m, _ := stateOf(a, "m2")
	if m.TransportAddr != "127.0.0.1:92" || m.GossipAddr != b.GossipAddr() || m.InRaft {
		t.Fatalf("a sees m2 as %+v", m)
	}

	// Metadata changes spread as updates.
	if err := b.SetMeta(func(m *Meta) { m.InRaft = true; m.ID = "ignored" }); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*List{a, c} {
		eventually(t, 5*time.Second, "m2 InRaft", func() bool { m, _ := stateOf(l, "m2"); return m.InRaft && m.ID == "m2" })
	}
	sawUpdate := false
	for len(a.Events()) > 0 {
		if ev := <-a.Events(); ev.Kind == Update && ev.Member.ID == "m2" {
			sawUpdate = true
		}
	}
	if !sawUpdate {
		t.Fatal("no Update event for m2 on a")
	}

	// Graceful leave: the others see Left.
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*List{a, b} {
		eventually(t, 5*time.Second, "m3 left", func() bool { m, ok := stateOf(l, "m3"); return ok && m.State == Left })
	}
	if err := c.Shutdown(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Shutdown after Leave: %v", err)
	}

	// Abrupt stop: failure detection declares it dead.
	before := time.Now()
	b.Shutdown()
	eventually(t, 10*time.Second, "m2 dead", func() bool { m, ok := stateOf(a, "m2"); return ok && m.State == Dead })
	if m, _ := stateOf(a, "m2"); m.Since.Before(before) {
		t.Fatalf("Since %v predates the shutdown %v", m.Since, before)
	}
	if got := a.Alive(); len(got) != 1 || got[0].ID != "m1" {
		t.Fatalf("Alive = %+v", got)
	}
}

func TestJoinRetriesUntilSeedsAppear(t *testing.T) {
	a, b := newList(t, "m1"), newList(t, "m2")
	var mu sync.Mutex
	var seeds []string
	d := discovery.Func(func(context.Context) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		return append([]string{b.GossipAddr()}, seeds...), nil // own address is skipped
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Join(ctx, d, 50*time.Millisecond) }()
	time.Sleep(150 * time.Millisecond) // let a few attempts fail; not synchronisation
	mu.Lock()
	seeds = []string{"127.0.0.1:1", a.GossipAddr()} // a dead seed, then a live one
	mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "2 alive on a", func() bool { return a.NumAlive() == 2 })
}

func TestJoinEndsWithContext(t *testing.T) {
	a := newList(t, "m1")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := a.Join(ctx, discovery.Static{a.GossipAddr()}, 20*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Join = %v", err)
	}
	if _, err := a.TryJoin(context.Background(), nil); !errors.Is(err, ErrNoSeeds) {
		t.Fatalf("TryJoin(nil) = %v", err)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	err := Config{BindAddr: "nope", Timings: Timings{ProbeInterval: time.Second, ProbeTimeout: 2 * time.Second}, EventBuffer: -1}.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"ID", "TransportAddr", "BindAddr", "ProbeTimeout", "positive", "SuspicionMult", "EventBuffer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if err := (Config{ID: "x", TransportAddr: "127.0.0.1:1"}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestLogWriter(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w := LogWriter(l, "raft", true)
	fmt.Fprintf(w, "[INFO]  raft: entering follower state\n[WARN]  raft: heartbeat timeout reached\n")
	fmt.Fprintf(w, "[ERR] memberlist: failed to send\nplain line\n[DEBUG] memberlist: noise\n")
	out := buf.String()
	for _, want := range []string{"level=WARN msg=\"raft: heartbeat timeout reached\" component=raft", "level=ERROR", "plain line"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	for _, not := range []string{"follower", "noise"} {
		if strings.Contains(out, not) {
			t.Errorf("%q should be below Info:\n%s", not, out)
		}
	}
}

func TestIsSelf(t *testing.T) {
	l := newList(t, "m1") // binds 127.0.0.1:0
	_, port, _ := splitHostPort(l.GossipAddr())
	other := "127.0.0.1:" + strconv.Itoa(port+1)
	if port == 65535 {
		other = "127.0.0.1:1"
	}
	ctx := context.Background()
	for _, c := range []struct {
		seed string
		self bool
	}{
		{"", true},
		{l.GossipAddr(), true},
		{"localhost:" + strconv.Itoa(port), true},
		{other, false},
		{"127.0.0.2:" + strconv.Itoa(port), false}, // another loopback address: another process may bind it
		{"not a seed", false},
	} {
		if got := l.isSelf(ctx, c.seed); got != c.self {
			t.Errorf("isSelf(%q) = %v, want %v", c.seed, got, c.self)
		}
	}
	if _, err := l.TryJoin(ctx, discovery.Static{"", l.GossipAddr(), "localhost:" + strconv.Itoa(port)}); !errors.Is(err, ErrNoSeeds) {
		t.Fatalf("TryJoin with only its own addresses = %v, want ErrNoSeeds", err)
	}
}
