package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/examples/socorro/collector"
	"github.com/gridmap/gridmap/examples/socorro/node"
)

// readyPrefix starts the line a node prints on stdout once it serves: the launcher waits for it.
const readyPrefix = "READY "

// runNode runs one node until SIGINT or SIGTERM, then closes it gracefully.
func runNode(args []string) error {
	fs := flag.NewFlagSet("socorro node", flag.ContinueOnError)
	name := fs.String("name", "", "node name")
	httpAddr := fs.String("http", "127.0.0.1:8080", "address of the pages and /submit")
	bind := fs.String("bind", "127.0.0.1:0", "member-to-member address")
	gossip := fs.String("gossip", "127.0.0.1:0", "gossip address")
	seeds := fs.String("seeds", "", "comma-separated gossip addresses of the members to join")
	expect := fs.Int("expect", 1, "members that must see each other before the cluster forms")
	data := fs.String("data", "", "data folder for the embedded store (empty: memory only)")
	budget := fs.Int64("memory", 256<<20, "memory budget of the member's entries, bytes")
	submitBudget := fs.Int64("submit-budget", collector.DefaultMaxInFlightBytes, "report bytes /submit holds at once; beyond it submissions are answered 503 with Retry-After (negative: no limit)")
	keep := fs.Duration("keep", 0, "how long each raw crash (report and dumps) stays after collection (0: until deleted); processed crashes stay")
	sweepEvery := fs.Duration("sweep-every", 10*time.Second, "how often the sweeper walks this node's waiting crashes")
	sweepAge := fs.Duration("sweep-age", 30*time.Second, "age from which the sweeper processes a waiting crash")
	mode := fs.String("mode", node.ModeListener, "how crashes reach processors: listener (each node processes what it owns) or queue (any node takes crash IDs from a distributed queue)")
	generate := fs.Float64("generate", 0, "reports per second this node's generator posts to it at start (the command topic changes it)")
	logLevel := fs.String("log", "info", "log level: debug (the member's routine work too), info, warn or error")
	var stores storeFlags
	stores.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	level, err := parseLevel(*logLevel)
	if err != nil {
		return err
	}
	log, memberLog := loggers(os.Stderr, level, *name)
	mc := gridmap.Config{
		Name:           *name,
		BindAddr:       *bind,
		GossipBindAddr: *gossip,
		ExpectMembers:  *expect,
		Logger:         memberLog,
	}
	if *seeds != "" {
		mc.Seeds = strings.Split(*seeds, ",")
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { // a signal during Start abandons it
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
		}
	}()
	dumps, err := loadDumps()
	if err != nil {
		cancel()
		return err
	}
	cfg := node.Config{
		Name: *name, HTTPAddr: *httpAddr, Member: mc, DataDir: *data, Dumps: dumps, Generate: *generate, Mode: *mode,
		MemoryBudget: *budget, SubmitBudget: *submitBudget, SweepAge: *sweepAge, KeepRaw: *keep, SweepEvery: *sweepEvery, Logger: log,
	}
	if err := stores.apply(&cfg); err != nil {
		cancel()
		return err
	}
	started := time.Now()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		cancel()
		return err
	}
	log.Info("node started", "pages", n.URL(), "members", len(n.Member().Cluster().Members()),
		"store", stores.store, "took", time.Since(started).Round(time.Millisecond))
	// From here the goroutine above owns the first signal: it cancels ctx.
	fmt.Printf("%s%s\n", readyPrefix, n.URL())
	<-ctx.Done()
	log.Info("stopping")
	closeCtx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	return n.Close(closeCtx)
}
