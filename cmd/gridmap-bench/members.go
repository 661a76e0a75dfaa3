package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gridmap/gridmap/internal/freeport"
)

// memberSpec is how to start one member of the benchmark cluster.
type memberSpec struct {
	Index        int      // 0..Members-1, for logs
	Members      int      // ExpectMembers: the cluster forms once this many members see each other
	GossipBind   string   // memberlist host:port; "127.0.0.1:0" picks a free port
	Seeds        []string // gossip addresses of members already started (none for member 0)
	Backups      int
	AsyncBackups bool
	Logger       *slog.Logger // nil: discard
	TLSDir       string       // "" plain TCP; else the folder of member-<Index+1>.pem and its key
}

// member is one started gridmap member with the benchmark map open on it.
type member interface {
	Map() store
	GossipAddr() string
	Close(ctx context.Context) error // graceful
}

// Timeouts of the orchestration (not of the measured ops).
const (
	startTimeout = 2 * time.Minute  // until every member started and serves the benchmark map
	closeTimeout = 10 * time.Second // until a child process exits after its stdin closed
	probeTimeout = 2 * time.Second  // one readiness probe op
	benchMapName = "bench"
)

// errNotReady is returned when a member does not serve the benchmark map within startTimeout.
var errNotReady = errors.New("gridmap-bench: member not ready")

// freeGossipAddr returns a loopback host:port that is free for both TCP and UDP (memberlist uses
// both on one port) at the time of the call.
func freeGossipAddr() (string, error) { return freeport.Addr("127.0.0.1") }

// waitListening polls until addr accepts TCP connections or ctx ends.
func waitListening(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gridmap-bench: %s not listening: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitReady puts and gets a probe key through s until both succeed, or fails after ctx ends.
func waitReady(ctx context.Context, s store, index int) error {
	k := "gridmap-bench-probe-" + strconv.Itoa(index)
	v := []byte("ok")
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		last = s.Put(pctx, k, v)
		if last == nil {
			var got []byte
			got, last = s.Get(pctx, k)
			if last == nil && string(got) != "ok" {
				last = fmt.Errorf("probe read back %q", got)
			}
		}
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: member %d: %w", errNotReady, index, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startInproc starts cfg.Members members in this process and waits until each serves the benchmark
// map. Member 0 starts first (on a gossip port picked beforehand, so the others can use it as seed
// even if Start blocks until the cluster has formed); the others start concurrently once member 0
// listens. On error every started member is closed.
func startInproc(ctx context.Context, cfg config, opts runOptions) ([]member, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	seed, err := freeGossipAddr()
	if err != nil {
		return nil, err
	}
	ms := make([]member, cfg.Members)
	errs := make([]error, cfg.Members)
	var wg sync.WaitGroup
	start := func(i int) {
		defer wg.Done()
		spec := memberSpec{Index: i, Members: cfg.Members, GossipBind: "127.0.0.1:0", Seeds: []string{seed},
			Backups: cfg.Backups, AsyncBackups: cfg.AsyncBackups, Logger: memberLogger(opts.Logger, i), TLSDir: cfg.TLSDir}
		if i == 0 {
			spec.GossipBind, spec.Seeds = seed, nil
		}
		m, err := opts.StartMember(ctx, spec)
		if err == nil {
			err = waitReady(ctx, m.Map(), i)
			ms[i] = m
		}
		errs[i] = err
	}
	wg.Add(1)
	go start(0)
	listenErr := waitListening(ctx, seed)
	if listenErr == nil {
		for i := 1; i < cfg.Members; i++ {
			wg.Add(1)
			go start(i)
		}
	} else {
		cancel()
	}
	wg.Wait()
	if err := errors.Join(append(errs, listenErr)...); err != nil {
		closeAll(ms)
		return nil, err
	}
	return ms, nil
}

// closeAll stops the non-nil members concurrently and returns their errors. The benchmark's data
// is thrown away, so there is no graceful hand-off: each Close gets an ended context, which makes
// the member stop at once (a graceful leave of every member at the same time would only wait for
// partitions that have nowhere to go).
func closeAll(ms []member) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		if m == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// memberLogger returns logger tagged with the member index, or nil.
func memberLogger(logger *slog.Logger, i int) *slog.Logger {
	if logger == nil {
		return nil
	}
	return logger.With("member", i)
}
