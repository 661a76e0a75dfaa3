package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/generator"
	"github.com/gridmap/gridmap/examples/socorro/node"
)

var (
	loadFor  = flag.Duration("socorro.load", 0, "run TestThroughput for this long (the target is 10m): 3 node processes, the generator posting the design's size mix (or GRIDMAP_SOCORRO_LOAD=10m)")
	loadRate = flag.Float64("socorro.rate", 5000, "TestThroughput's offered load, reports per minute")
	loadConc = flag.Int("socorro.concurrency", 64, "TestThroughput's requests in flight at most")
	loadMode = flag.String("socorro.mode", "listener", "TestThroughput's processing mode: listener or queue (the launcher's -mode)")
	loadMix  = flag.String("socorro.mix", "design", "TestThroughput's dump sizes: design (200 KB-20 MB, mean about 4 MB) or small (20-120 KB, to measure the per-report cost apart from the bytes)")
)

// TestThroughput is the throughput run of issue 16, opt-in (-socorro.load=10m, or
// GRIDMAP_SOCORRO_LOAD=10m): the demo's launcher starts 3 node processes writing behind to the
// embedded store (1 backup), the generator posts reports built from the real dumps with the
// design's size mix (dumps 200 KB to 20 MB, mean about 4 MB) over HTTP at -socorro.rate a
// minute, and every 10 s the test logs the accepted and processed rates, the backlog (crashes
// waiting to be processed), the entries not yet in the store, and the nodes' memory. At the end
// it states the sustained processed rate over the run after the first minute. It is a
// measurement: it fails only if the pipeline loses or refuses reports, or never drains.
func TestThroughput(t *testing.T) {
	d := *loadFor
	if env := os.Getenv("GRIDMAP_SOCORRO_LOAD"); d == 0 && env != "" {
		var err error
		if d, err = time.ParseDuration(env); err != nil {
			t.Fatalf("GRIDMAP_SOCORRO_LOAD=%q: %v", env, err)
		}
	}
	if d == 0 {
		t.Skip("the throughput run is opt-in: go test ./examples/socorro -run TestThroughput -v -timeout 30m -socorro.load=10m (or GRIDMAP_SOCORRO_LOAD=10m)")
	}
	bin := filepath.Join(t.TempDir(), "socorro")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-port", "0", "-rate", "0", "-data", t.TempDir(), "-memory", fmt.Sprint(512<<20), "-mode", *loadMode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(t.TempDir(), "nodes.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		for range lines {
		}
		_ = cmd.Wait()
	}()
	nodeLine := regexp.MustCompile(`^node\d: (http://\S+)/$`)
	var urls []string
	for len(urls) < 3 {
		l, ok := <-lines
		if !ok {
			t.Fatalf("launcher exited before its nodes served (see %s)", stderr.Name())
		}
		if m := nodeLine.FindStringSubmatch(l); m != nil {
			urls = append(urls, m[1])
		}
	}
	go func() { // the launcher's later lines
		for l := range lines {
			t.Log("launcher: ", l)
		}
	}()

	var dumps [][]byte
	if err := fs.WalkDir(dumpFS, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := dumpFS.ReadFile(path)
		dumps = append(dumps, b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The generator logs only its failed posts, at debug level: show them.
	genLog := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gc := generator.Config{Targets: urls, Dumps: dumps, Rate: *loadRate / 60, Concurrency: *loadConc, Logger: genLog}
	switch *loadMix {
	case "design":
	case "small":
		small, err := generator.NewSizes(generator.Point{P: 0, Size: 20 << 10}, generator.Point{P: 1, Size: 120 << 10})
		if err != nil {
			t.Fatal(err)
		}
		gc.DumpSizes = &small
	default:
		t.Fatalf("-socorro.mix %q: want design or small", *loadMix)
	}
	gen, err := generator.New(gc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	genDone := make(chan error, 1)
	go func() { genDone <- gen.Run(ctx) }()

	type sample struct {
		at                  time.Duration
		accepted, processed uint64
		backlog, unstored   int
		refused             uint64
		schedP99            time.Duration // the worst node's goroutine scheduling latency p99
		heapMB, sysMB       uint64
	}
	read := func() (sample, error) {
		var s sample
		for _, u := range urls {
			res, err := http.Get(u + "/api/stats")
			if err != nil {
				return s, err
			}
			var st node.Stats
			err = json.NewDecoder(res.Body).Decode(&st)
			res.Body.Close()
			if err != nil {
				return s, err
			}
			s.processed += st.Rates.ProcessedTotal
			s.backlog += st.Rates.Backlog
			s.unstored += st.Rates.Unstored
			s.refused += st.Rates.Refused
			s.schedP99 = max(s.schedP99, st.SchedLatencyP99)
			s.heapMB += st.HeapInuse >> 20
			s.sysMB += st.Sys >> 20
		}
		s.accepted = gen.Stats().Accepted
		return s, nil
	}
	start := time.Now()
	var samples []sample
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	t.Logf("mode %s, offered %.0f reports/min (%s dump sizes), %d in flight at most, for %v; columns: time, accepted/min and processed/min over the last 10 s, backlog, not yet stored, submissions refused (503) so far, heap and Go memory of the 3 nodes (MB), the worst node's goroutine scheduling latency p99 over the last 10 s", *loadMode, *loadRate, *loadMix, *loadConc, d)
	for running := true; running; {
		select {
		case err := <-genDone:
			if err != nil && ctx.Err() == nil {
				t.Fatalf("generator: %v", err)
			}
			running = false
		case <-tick.C:
		}
		s, err := read()
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		s.at = time.Since(start)
		prev := sample{}
		if len(samples) > 0 {
			prev = samples[len(samples)-1]
		}
		span := (s.at - prev.at).Minutes()
		t.Logf("%6v  accepted %6.0f/min  processed %6.0f/min  backlog %5d  unstored %6d  refused %5d  heap %5d MB  sys %5d MB  sched p99 %v",
			s.at.Round(time.Second), float64(s.accepted-prev.accepted)/span, float64(s.processed-prev.processed)/span, s.backlog, s.unstored, s.refused, s.heapMB, s.sysMB, s.schedP99.Round(time.Millisecond))
		samples = append(samples, s)
	}
	gs := gen.Stats()
	t.Logf("generator: %d sent, %d accepted, %d discarded, %d failed, %d answered 503 and sent again, %.1f GB", gs.Sent, gs.Accepted, gs.Discarded, gs.Failed, gs.Busy, float64(gs.Bytes)/1e9)

	// Drain: every accepted crash processed.
	drainStart := time.Now()
	deadline := time.Now().Add(5 * time.Minute)
	var last sample
	for {
		if last, err = read(); err != nil {
			t.Fatalf("stats: %v", err)
		}
		if last.processed >= gs.Accepted && last.backlog == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained 5 minutes after the load: %d of %d accepted crashes processed, backlog %d", last.processed, gs.Accepted, last.backlog)
		}
		time.Sleep(time.Second)
	}
	t.Logf("drained %v after the load: %d crashes processed", time.Since(drainStart).Round(time.Second), last.processed)

	// Sustained rate: from the first sample after one minute to the end of the load.
	var first *sample
	for i := range samples {
		if samples[i].at >= time.Minute {
			first = &samples[i]
			break
		}
	}
	end := samples[len(samples)-1]
	if first == nil || end.at-first.at < 30*time.Second {
		first = &samples[0]
	}
	rate := float64(end.processed-first.processed) / (end.at - first.at).Minutes()
	var maxBacklog, maxUnstored int
	var maxSys uint64
	for _, s := range samples {
		maxBacklog, maxUnstored, maxSys = max(maxBacklog, s.backlog), max(maxUnstored, s.unstored), max(maxSys, s.sysMB)
	}
	t.Logf("SUSTAINED (mode %s): %.0f processed reports/min from %v to %v (offered %.0f/min; target 5000/min for 10 min); backlog at most %d, not yet stored at most %d, Go memory of the 3 nodes at most %d MB",
		*loadMode, rate, first.at.Round(time.Second), end.at.Round(time.Second), *loadRate, maxBacklog, maxUnstored, maxSys)
	if gs.Failed > 0 {
		t.Errorf("%d posts failed", gs.Failed)
	}
}
