package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// -mode procs: the parent starts one child process of its own binary per member and talks to each
// over its stdin and stdout, one line per message. Protocol lines on a child's stdout start with
// protoPrefix; anything else a child prints there is passed on to the parent's stderr.
//
//	child 0 -> parent   "gossip <host:port>"    before it starts its member (the others' seed)
//	child   -> parent   "started"               member started and serving the benchmark map
//	parent  -> child    "preload"               put every key i with i % members == child
//	child   -> parent   "preloaded"
//	parent  -> child    "run <unix-nanos>"      run the workload from that wall-clock time
//	child   -> parent   "done <childDone JSON>" latencies are in the -samples file
//	child   -> parent   "error <message>"       the child gives up
//
// A child closes its member and exits when its stdin reaches EOF (the parent closed it or died) or
// on SIGINT/SIGTERM. The parent closes the stdins when it is done, kills children that do not exit
// within closeTimeout, and on Linux every child also gets SIGKILL when the parent dies.
const protoPrefix = "gridmap-bench> "

// childEnv is set to "1" in the environment of every child. The binary itself ignores it; the
// tests' TestMain uses it to run the test binary as a child.
const childEnv = "GRIDMAP_BENCH_CHILD"

// childDone is the summary a child sends with "done".
type childDone struct {
	Ops        int64  `json:"ops"`
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	Samples    int    `json:"samples"` // latencies written to the -samples file
}

// formatProto returns the protocol line (with newline) for kind and arg.
func formatProto(kind, arg string) string {
	if arg == "" {
		return protoPrefix + kind + "\n"
	}
	return protoPrefix + kind + " " + arg + "\n"
}

// parseProto splits a child's stdout line into kind and argument; ok is false for other output.
func parseProto(line string) (kind, arg string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), protoPrefix)
	if !ok || rest == "" {
		return "", "", false
	}
	kind, arg, _ = strings.Cut(rest, " ")
	return kind, arg, true
}

// writeSamples writes latencies as little-endian int64 nanoseconds.
func writeSamples(path string, samples []time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	var b [8]byte
	for _, s := range samples {
		binary.LittleEndian.PutUint64(b[:], uint64(s))
		w.Write(b[:]) // a write error sticks and is returned by Flush
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readSamples reads what writeSamples wrote.
func readSamples(path string) ([]time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("gridmap-bench: %s: %d bytes is not a whole number of samples", path, len(b))
	}
	s := make([]time.Duration, len(b)/8)
	for i := range s {
		s[i] = time.Duration(binary.LittleEndian.Uint64(b[i*8:]))
	}
	return s, nil
}

// childEvent is a protocol line (or "exit" when the child's stdout closed) from child Child.
type childEvent struct {
	Child     int
	Kind, Arg string
}

// procCluster is the parent's view of its children. Its methods are called from one goroutine.
type procCluster struct {
	exe    string
	stderr io.Writer
	events chan childEvent // buffered for every event the protocol can produce, so readers never block
	kids   []*exec.Cmd
	stdins []io.WriteCloser
	exited []bool
}

func newProcCluster(exe string, members int, stderr io.Writer) *procCluster {
	return &procCluster{exe: exe, stderr: stderr, events: make(chan childEvent, 16*members)}
}

// start starts child i with args. Its stdout is read by a goroutine that ends, after cmd.Wait,
// with an "exit" event.
func (pc *procCluster) start(i int, args []string) error {
	cmd := exec.Command(pc.exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = pc.stderr
	setChildAttr(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("gridmap-bench: start child %d: %w", i, err)
	}
	pc.kids = append(pc.kids, cmd)
	pc.stdins = append(pc.stdins, stdin)
	pc.exited = append(pc.exited, false)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			if kind, arg, ok := parseProto(sc.Text()); ok {
				pc.events <- childEvent{Child: i, Kind: kind, Arg: arg}
			} else {
				fmt.Fprintf(pc.stderr, "[member %d] %s\n", i, sc.Text())
			}
		}
		io.Copy(io.Discard, stdout) // after a scanner error, let the child finish writing
		status := "ok"
		if err := cmd.Wait(); err != nil {
			status = err.Error()
		}
		pc.events <- childEvent{Child: i, Kind: "exit", Arg: status}
	}()
	return nil
}

// send writes cmd as one line to every child.
func (pc *procCluster) send(cmd string) error {
	for i, w := range pc.stdins {
		if _, err := io.WriteString(w, cmd+"\n"); err != nil {
			return fmt.Errorf("gridmap-bench: child %d: send %q: %w", i, cmd, err)
		}
	}
	return nil
}

// wait waits for an event of kind from each of the children in who and returns their arguments by
// child. An "error" or "exit" event, the timeout or the end of ctx fail it.
func (pc *procCluster) wait(ctx context.Context, kind string, who []int, timeout time.Duration) (map[int]string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	want := map[int]bool{}
	for _, i := range who {
		want[i] = true
	}
	got := map[int]string{}
	for len(got) < len(want) {
		select {
		case ev := <-pc.events:
			switch {
			case ev.Kind == "exit":
				pc.exited[ev.Child] = true
				return nil, fmt.Errorf("gridmap-bench: child %d exited while waiting for %q: %s", ev.Child, kind, ev.Arg)
			case ev.Kind == "error":
				return nil, fmt.Errorf("gridmap-bench: child %d: %s", ev.Child, ev.Arg)
			case ev.Kind == kind && want[ev.Child]:
				got[ev.Child] = ev.Arg
			default:
				return nil, fmt.Errorf("gridmap-bench: child %d: unexpected %q while waiting for %q", ev.Child, ev.Kind, kind)
			}
		case <-timer.C:
			return nil, fmt.Errorf("gridmap-bench: no %q from every child within %v", kind, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return got, nil
}

// shutdown closes every child's stdin (the child then closes its member and exits), waits up to
// closeTimeout+5s for them to exit, then kills the rest and waits for them.
func (pc *procCluster) shutdown() {
	for _, w := range pc.stdins {
		w.Close()
	}
	deadline := time.NewTimer(closeTimeout + 5*time.Second)
	defer deadline.Stop()
	killed := false
	for {
		running := 0
		for _, e := range pc.exited {
			if !e {
				running++
			}
		}
		if running == 0 {
			return
		}
		select {
		case ev := <-pc.events:
			if ev.Kind == "exit" {
				pc.exited[ev.Child] = true
			}
		case <-deadline.C:
			if killed {
				fmt.Fprintln(pc.stderr, "gridmap-bench: children did not exit after SIGKILL")
				return
			}
			for i, cmd := range pc.kids {
				if !pc.exited[i] {
					cmd.Process.Kill()
				}
			}
			killed = true
			deadline.Reset(5 * time.Second)
		}
	}
}

// runProcs runs cfg with one child process per member and aggregates the children's measurements.
func runProcs(ctx context.Context, cfg config, stderr io.Writer) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	dir, err := os.MkdirTemp("", "gridmap-bench-*")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	samplesPath := func(i int) string { return filepath.Join(dir, "samples-"+strconv.Itoa(i)) }

	pc := newProcCluster(exe, cfg.Members, stderr)
	defer pc.shutdown()
	t0 := time.Now()
	if err := pc.start(0, cfg.childArgs(0, "", samplesPath(0))); err != nil {
		return result{}, err
	}
	g, err := pc.wait(ctx, "gossip", []int{0}, startTimeout)
	if err != nil {
		return result{}, err
	}
	seed := g[0]
	lctx, cancel := context.WithTimeout(ctx, startTimeout)
	err = waitListening(lctx, seed)
	cancel()
	if err != nil {
		return result{}, err
	}
	all := []int{0}
	for i := 1; i < cfg.Members; i++ {
		if err := pc.start(i, cfg.childArgs(i, seed, samplesPath(i))); err != nil {
			return result{}, err
		}
		all = append(all, i)
	}
	if _, err := pc.wait(ctx, "started", all, startTimeout); err != nil {
		return result{}, err
	}
	startup := time.Since(t0)

	var preloadTime time.Duration
	if preloads(cfg.Op) {
		t := time.Now()
		if err := pc.send("preload"); err != nil {
			return result{}, err
		}
		if _, err := pc.wait(ctx, "preloaded", all, 30*time.Minute); err != nil {
			return result{}, err
		}
		preloadTime = time.Since(t)
	}

	begin := time.Now().Add(200 * time.Millisecond) // every child starts at the same time
	if err := pc.send("run " + strconv.FormatInt(begin.UnixNano(), 10)); err != nil {
		return result{}, err
	}
	cpu := startCPUWindow()
	dones, err := pc.wait(ctx, "done", all, time.Until(begin)+cfg.Warmup+cfg.Duration+startTimeout)
	if err != nil {
		return result{}, err
	}
	busy, steal, _ := cpu.end()
	var t tally
	for _, i := range all {
		var d childDone
		if err := json.Unmarshal([]byte(dones[i]), &d); err != nil {
			return result{}, fmt.Errorf("gridmap-bench: child %d: bad done line %q: %w", i, dones[i], err)
		}
		s, err := readSamples(samplesPath(i))
		if err != nil {
			return result{}, err
		}
		if len(s) != d.Samples {
			return result{}, fmt.Errorf("gridmap-bench: child %d: %d samples in file, %d reported", i, len(s), d.Samples)
		}
		t.add(tally{Samples: s, Ops: d.Ops, Errors: d.Errors, FirstError: d.FirstError})
	}
	r := newResult(cfg, t, startup, preloadTime)
	r.CPUBusyPct, r.CPUStealPct = busy, steal
	return r, nil
}

// runChild is the body of child cfg.Child: it starts a member, then obeys the parent's commands on
// stdin until EOF or until ctx ends, then closes the member.
func runChild(ctx context.Context, cfg config, stdin io.Reader, stdout io.Writer, opts runOptions) error {
	emit := func(kind, arg string) { io.WriteString(stdout, formatProto(kind, arg)) }
	fail := func(err error) error {
		emit("error", strings.ReplaceAll(err.Error(), "\n", "; "))
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	cmds := make(chan string, 16)
	go func() { // ends at EOF; the process exits soon after
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case cmds <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		close(cmds)
		cancel() // stdin closed: the parent is done (or gone)
	}()

	spec := memberSpec{Index: cfg.Child, Members: cfg.Members, GossipBind: "127.0.0.1:0",
		Backups: cfg.Backups, AsyncBackups: cfg.AsyncBackups, Logger: memberLogger(opts.Logger, cfg.Child), TLSDir: cfg.TLSDir}
	if cfg.Child == 0 {
		addr, err := freeGossipAddr()
		if err != nil {
			return fail(err)
		}
		spec.GossipBind = addr
		emit("gossip", addr)
	} else {
		spec.Seeds = []string{cfg.Seed}
	}
	sctx, scancel := context.WithTimeout(ctx, startTimeout)
	m, err := opts.StartMember(sctx, spec)
	if err == nil {
		if err = waitReady(sctx, m.Map(), cfg.Child); err != nil {
			closeAll([]member{m})
		}
	}
	scancel()
	if err != nil {
		return fail(err)
	}
	defer closeAll([]member{m})
	emit("started", "")

	var slots []slot
	for _, w := range cfg.workerIDs(cfg.Child) {
		slots = append(slots, slot{ID: w, Store: m.Map()})
	}
	value := benchValue(cfg.ValueSize)
	for {
		var line string
		select {
		case l, ok := <-cmds:
			if !ok {
				return nil
			}
			line = l
		case <-ctx.Done():
			return nil
		}
		cmd, arg, _ := strings.Cut(line, " ")
		switch cmd {
		case "preload":
			ps := slots
			if len(ps) == 0 { // fewer workers than members: preload this member's share anyway
				ps = []slot{{ID: -1, Store: m.Map()}}
			}
			if err := preload(ctx, ps, cfg.Keys, cfg.Child, cfg.Members, value); err != nil {
				return fail(err)
			}
			emit("preloaded", "")
		case "run":
			ns, err := strconv.ParseInt(arg, 10, 64)
			if err != nil {
				return fail(fmt.Errorf("gridmap-bench: bad run command %q", line))
			}
			begin := time.Unix(0, ns)
			select {
			case <-time.After(time.Until(begin)):
			case <-ctx.Done():
				return nil
			}
			t := newWorkload(cfg, begin, value).run(ctx, slots)
			if err := writeSamples(cfg.Samples, t.Samples); err != nil {
				return fail(err)
			}
			b, _ := json.Marshal(childDone{Ops: t.Ops, Errors: t.Errors, FirstError: t.FirstError, Samples: len(t.Samples)})
			emit("done", string(b))
		default:
			return fail(fmt.Errorf("gridmap-bench: unknown command %q", line))
		}
	}
}
