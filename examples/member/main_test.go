package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gridmap/gridmap"
)

// env is an environment for config and run.
func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestTwoMembers starts two members the way two pods start them (the second finds the first
// through its seeds; in Kubernetes, through DNS), waits until each reports ready, checks they
// formed one cluster, and stops both as SIGTERM would: both return without error.
func TestTwoMembers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)

	start := func(vars map[string]string) (addr string, members string, stop func() error) {
		runCtx, stopRun := context.WithCancel(ctx)
		r, w := io.Pipe()
		done := make(chan error, 1)
		go func() { done <- run(runCtx, env(vars), logger, w); w.Close() }()
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil {
			stopRun()
			t.Fatalf("member %s: no ready line: %v (run: %v)", vars["GRIDMAP_NAME"], err, <-done)
		}
		go io.Copy(io.Discard, r)
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "ready" {
			t.Fatalf("member %s printed %q", vars["GRIDMAP_NAME"], line)
		}
		return f[1], f[2], func() error { stopRun(); return <-done }
	}
	first, _, stopFirst := start(map[string]string{
		"GRIDMAP_NAME": "m-0", "GRIDMAP_BIND": "127.0.0.1:0", "GRIDMAP_GOSSIP_BIND": "127.0.0.1:0",
		"GRIDMAP_TIMINGS": "local",
	})
	_, members, stopSecond := start(map[string]string{
		"GRIDMAP_NAME": "m-1", "GRIDMAP_BIND": "127.0.0.1:0", "GRIDMAP_GOSSIP_BIND": "127.0.0.1:0",
		"GRIDMAP_TIMINGS": "local", "GRIDMAP_SEEDS": first, "GRIDMAP_HEALTH_ADDR": "127.0.0.1:0",
	})
	if members != "2" {
		t.Errorf("the second member is ready in a cluster of %s members, want 2", members)
	}
	if err := stopSecond(); err != nil {
		t.Fatalf("second member: %v", err)
	}
	if err := stopFirst(); err != nil {
		t.Fatalf("first member: %v", err)
	}
}

// TestConfig: the environment maps onto the Config a StatefulSet pod needs, and mistakes are
// reported before anything starts.
func TestConfig(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	cfg, err := config(env(map[string]string{
		"GRIDMAP_NAME": "gridmap-2", "GRIDMAP_ADVERTISE_HOST": "10.1.2.3",
		"GRIDMAP_DNS": "gridmap.default.svc.cluster.local", "GRIDMAP_EXPECT": "3",
	}), logger)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdvertiseAddr != "10.1.2.3:7000" || cfg.GossipAdvertiseAddr != "10.1.2.3:7946" ||
		cfg.ExpectMembers != 3 || cfg.Discovery == nil || cfg.Timings != gridmap.LANTimings() {
		t.Fatalf("config: %+v", cfg)
	}
	for _, bad := range []map[string]string{
		{"GRIDMAP_TIMINGS": "fast"},
		{"GRIDMAP_EXPECT": "three"},
		{"GRIDMAP_BIND": "no-port", "GRIDMAP_ADVERTISE_HOST": "10.1.2.3"},
	} {
		if _, err := config(env(bad), logger); err == nil {
			t.Errorf("config(%v) accepted", bad)
		}
	}
}

// TestHealth: /readyz follows the cluster's safety, /livez does not.
func TestHealth(t *testing.T) {
	var safe bool
	h := healthHandler(func() bool { return safe })
	code := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	if c := code("/readyz"); c != http.StatusServiceUnavailable {
		t.Errorf("/readyz while not safe: %d", c)
	}
	if c := code("/livez"); c != http.StatusOK {
		t.Errorf("/livez: %d", c)
	}
	safe = true
	if c := code("/readyz"); c != http.StatusOK {
		t.Errorf("/readyz while safe: %d", c)
	}
}
