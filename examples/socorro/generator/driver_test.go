package generator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/collector"
)

// node is a collector behind an HTTP server, storing in memory.
type node struct {
	srv     *httptest.Server
	mu      sync.Mutex
	crashes map[string]*collector.Crash
}

func startNodes(t *testing.T, n int) []*node {
	t.Helper()
	var nodes []*node
	for range n {
		nd := &node{crashes: map[string]*collector.Crash{}}
		h, err := collector.NewHandler(collector.Config{
			Store: collector.StoreFunc(func(ctx context.Context, c *collector.Crash) error {
				nd.mu.Lock()
				defer nd.mu.Unlock()
				nd.crashes[c.ID] = c
				return nil
			}),
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		nd.srv = httptest.NewServer(h)
		t.Cleanup(nd.srv.Close)
		nodes = append(nodes, nd)
	}
	return nodes
}

// small keeps the reports small so the tests stay fast; the real distributions are tested in
// sizes_test.go.
func small(t *testing.T) (*Sizes, *Sizes) {
	a, err := NewSizes(Point{0, 256}, Point{1, 1 * kb})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewSizes(Point{0, 30 * kb}, Point{1, 60 * kb})
	if err != nil {
		t.Fatal(err)
	}
	return &a, &d
}

func testDumps(t *testing.T) [][]byte {
	var out [][]byte
	for _, f := range []string{"test.dmp", "linux-mini.dmp"} {
		b, err := os.ReadFile("../minidump/testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func newDriver(t *testing.T, nodes []*node, rate float64) *Driver {
	t.Helper()
	var targets []string
	for _, n := range nodes {
		targets = append(targets, n.srv.URL)
	}
	a, d := small(t)
	drv, err := New(Config{Targets: targets, Dumps: testDumps(t), Rate: rate, AnnotationSizes: a, DumpSizes: d,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return drv
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Reports go round-robin to the nodes; every answered crash ID is in a node's store, and every
// stored crash was answered (Run waits for the requests in flight when stopped).
func TestDriverRoundRobin(t *testing.T) {
	nodes := startNodes(t, 3)
	drv := newDriver(t, nodes, 200)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- drv.Run(ctx) }()
	waitFor(t, "30 accepted reports", func() bool { return drv.Stats().Accepted >= 30 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}

	st := drv.Stats()
	if st.Failed != 0 || st.Discarded != 0 || st.Sent != st.Started || st.Accepted != st.Sent {
		t.Errorf("stats %+v: want every started report answered and accepted", st)
	}
	answered := drv.Answered()
	if uint64(len(answered)) != st.Accepted {
		t.Errorf("%d answered IDs, %d accepted", len(answered), st.Accepted)
	}
	total, lo, hi := 0, 1<<30, 0
	for _, n := range nodes {
		k := len(n.crashes)
		total += k
		lo, hi = min(lo, k), max(hi, k)
	}
	if total != len(answered) || hi-lo > 1 {
		t.Errorf("stored %d (per node %d..%d), answered %d: want all, spread evenly", total, lo, hi, len(answered))
	}
	for _, id := range answered {
		found := 0
		for _, n := range nodes {
			if c := n.crashes[id]; c != nil {
				found++
				if len(c.Dumps["upload_file_minidump"]) < 30*kb || c.Annotations["ProductName"] == "" {
					t.Errorf("crash %s stored with a %d-byte dump and annotations %v", id, len(c.Dumps["upload_file_minidump"]), len(c.Annotations))
				}
			}
		}
		if found != 1 {
			t.Errorf("answered crash %s is in %d stores", id, found)
		}
	}
}

// The driver never sends faster than its rate: 20 reports at 40 per second take at least the
// 19 intervals between them.
func TestDriverRate(t *testing.T) {
	nodes := startNodes(t, 1)
	drv := newDriver(t, nodes, 40)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- drv.Run(ctx) }()
	waitFor(t, "20 started reports", func() bool { return drv.Stats().Started >= 20 })
	elapsed := time.Since(start)
	cancel()
	<-done
	if min := 19 * time.Second / 40; elapsed < min {
		t.Errorf("20 reports in %v at 40/s: faster than the rate (at least %v)", elapsed, min)
	}
}

// Rate 0 pauses the driver; a new rate wakes it.
func TestDriverPause(t *testing.T) {
	nodes := startNodes(t, 1)
	drv := newDriver(t, nodes, 100)
	drv.SetRate(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- drv.Run(ctx) }()
	// Nothing is sent while paused. (Observing an absence needs some time; 200 ms is 20
	// reports at the configured rate.)
	time.Sleep(200 * time.Millisecond)
	if st := drv.Stats(); st.Started != 0 {
		t.Errorf("paused driver started %d reports", st.Started)
	}
	drv.SetRate(100)
	waitFor(t, "reports after the rate was set", func() bool { return drv.Stats().Accepted >= 5 })
	cancel()
	<-done
	if drv.Rate() != 100 {
		t.Errorf("rate %v", drv.Rate())
	}
}

func TestDriverConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Targets: []string{"http://x"}},
		{Dumps: [][]byte{{1}}},
		{Targets: []string{"http://x"}, Dumps: [][]byte{{1}}, Rate: -1},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v): %v", cfg, err)
		}
	}
}

// A collector that answers 503 with Retry-After gets the same report again once the pause has
// passed, and the driver sends nothing new meanwhile.
func TestDriverBacksOffOn503(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		first := len(bodies) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "Error=overloaded\n")
			return
		}
		io.WriteString(w, "CrashID=bp-00000000-0000-0000-0000-000000261204\n")
	}))
	t.Cleanup(srv.Close)
	a, d := small(t)
	drv, err := New(Config{Targets: []string{srv.URL}, Dumps: testDumps(t), Rate: 50, AnnotationSizes: a, DumpSizes: d,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- drv.Run(ctx) }()
	waitFor(t, "the 503", func() bool { return drv.Stats().Busy == 1 })
	// From the 503 on, the driver starts no post for the Retry-After (1s): watch half of it.
	// (One report that passed its pause check just before the 503 came back may still start.)
	paused := drv.Stats().Started
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if s := drv.Stats(); s.Started > paused+1 {
			t.Fatalf("a new post started %d during the pause after the 503", s.Started-paused)
		}
	}
	waitFor(t, "the refused report accepted on its second attempt", func() bool { return drv.Stats().Accepted >= 2 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	var resent bool
	for _, b := range bodies[1:] {
		resent = resent || bytes.Equal(b, bodies[0])
	}
	if !resent {
		t.Error("the refused report was not sent again")
	}
	if s := drv.Stats(); s.Busy != 1 || s.Failed != 0 {
		t.Errorf("stats %+v, want Busy 1 and no failure", s)
	}
}
