// Command gridmap-bench is a load tool for gridmap: it starts a cluster of members (in this process,
// or one child process per member), runs put, get or mixed workers against one map for a fixed
// time, and reports throughput and latency percentiles, optionally as one JSON line whose fields
// match those of the Olric harness (bench/olric, a module of its own).
//
//	gridmap-bench -members 3 -op mixed -read-pct 80 -duration 10s
//	gridmap-bench -mode procs -op put -value-size 1048576 -json
//	gridmap-bench -op get -target-ops 10000    # paced: latency at a fixed load
//	gridmap-bench -op publish -value-size 4096  # a topic, delivered to a subscriber on each member
//
// Run with -h for every flag.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"syscall"
	"time"

	"github.com/gridmap/gridmap/internal/certgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, runOptions{}))
}

// runOptions are the dependencies of a run; the zero value is the real tool.
type runOptions struct {
	// StartMember starts one member; nil means startMember (a gridmap member). Tests of the
	// orchestration pass an in-memory fake.
	StartMember func(ctx context.Context, spec memberSpec) (member, error)
	// Logger receives member logs; nil discards them (run sets it from -v).
	Logger *slog.Logger
}

// run is the whole tool; it returns the exit code (0 ok, 1 failed, 2 bad flags).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, opts runOptions) int {
	stderr = &syncWriter{w: stderr} // children's stderr copiers, loggers and this goroutine share it
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if cfg.TLS && cfg.TLSDir == "" {
		dir, err := os.MkdirTemp("", "gridmap-bench-tls-")
		if err == nil {
			defer os.RemoveAll(dir)
			_, err = certgen.WriteDir(dir, cfg.Members, []string{"127.0.0.1", "localhost"}, 24*time.Hour)
		}
		if err != nil {
			fmt.Fprintln(stderr, "gridmap-bench: -tls:", err)
			return 1
		}
		cfg.TLSDir = dir
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.Trace != "" {
		f, err := os.Create(cfg.Trace)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer trace.Stop()
	}
	if opts.StartMember == nil {
		opts.StartMember = startMember
	}
	if cfg.Verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}

	if cfg.Child >= 0 {
		if err := runChild(ctx, cfg, stdin, stdout, opts); err != nil {
			fmt.Fprintf(stderr, "gridmap-bench: child %d: %v\n", cfg.Child, err)
			return 1
		}
		return 0
	}

	var res result
	if cfg.Mode == modeProcs {
		res, err = runProcs(ctx, cfg, stderr)
	} else {
		res, err = runInproc(ctx, cfg, opts)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if cfg.JSON {
		b, err := json.Marshal(res)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintln(stdout, string(b))
		printSummary(stderr, res)
	} else {
		printSummary(stdout, res)
	}
	return 0
}

// runInproc runs cfg with every member in this process.
func runInproc(ctx context.Context, cfg config, opts runOptions) (result, error) {
	t0 := time.Now()
	ms, err := startInproc(ctx, cfg, opts)
	if err != nil {
		return result{}, err
	}
	defer closeAll(ms)
	startup := time.Since(t0)
	if cfg.Op == opPublish {
		return runPublish(ctx, cfg, ms, startup)
	}

	slots := make([]slot, cfg.Concurrency)
	for w := range slots {
		slots[w] = slot{ID: w, Store: ms[w%len(ms)].Map()}
	}
	value := benchValue(cfg.ValueSize)
	var preloadTime time.Duration
	if preloads(cfg.Op) {
		t := time.Now()
		if err := preload(ctx, slots, cfg.Keys, 0, 1, value); err != nil {
			return result{}, err
		}
		preloadTime = time.Since(t)
	}
	gc, cpu := startGCWindow(), startCPUWindow()
	t := newWorkload(cfg, time.Now(), value).run(ctx, slots)
	if err := ctx.Err(); err != nil {
		return result{}, fmt.Errorf("gridmap-bench: interrupted: %w", err)
	}
	r := newResult(cfg, t, startup, preloadTime)
	r.GCCycles, r.GCPauseMaxUs = gc.end()
	r.CPUBusyPct, r.CPUStealPct, _ = cpu.end()
	if cfg.OpsOut != "" {
		if err := writeOpsFile(cfg.OpsOut, t.Records); err != nil {
			return result{}, err
		}
	}
	if cfg.MemProfile != "" {
		// Written while the members still hold their data: in-use space shows what they keep,
		// alloc_space what the run allocated.
		if err := writeHeapProfile(cfg.MemProfile); err != nil {
			return result{}, err
		}
	}
	return r, nil
}

// writeHeapProfile writes the heap profile as of a fresh GC to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncWriter serializes the writes of several goroutines to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
