package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/dmap"
	"github.com/gridmap/gridmap/examples/socorro/collector"
	"github.com/gridmap/gridmap/examples/socorro/generator"
	"github.com/gridmap/gridmap/examples/socorro/gridstore"
	"github.com/gridmap/gridmap/examples/socorro/processor"
	"github.com/gridmap/gridmap/mapstore/elasticsearch"
	"github.com/gridmap/gridmap/mapstore/hbase"
	"github.com/gridmap/gridmap/queue"
	"github.com/gridmap/gridmap/topic"
)

// ProcessedMap is the map of processed crashes, by crash ID.
const ProcessedMap = "processedCrashes"

// Config configures a Node. Zero fields take the documented defaults (WithDefaults).
type Config struct {
	// Name labels the node in logs and pages. Default: the member's ID.
	Name string
	// HTTPAddr is the address of the pages and /submit. Default "127.0.0.1:0".
	HTTPAddr string
	// Member configures the embedded gridmap member (addresses, seeds, ExpectMembers, timings).
	// Its Maps and MemoryBudget are set by the node from DataDir and MemoryBudget.
	Member gridmap.Config
	// DataDir is the node's data folder, the member's Config.DataDir: with it, every replica of
	// the maps without an external store (all of them but those Elasticsearch and HBase keep)
	// is persisted there, and the nodes started again on their folders find every crash
	// (docs/restart.md; start them with Member.ExpectMembers set to how many start together).
	// Empty: those maps live in memory only (with their backups).
	DataDir string
	// Elasticsearch, when not nil, keeps the processed crashes in Elasticsearch instead of the
	// embedded store, as Socorro does: one searchable document per crash in one index a week
	// (Index, default DefaultESIndex "socorro%Y%W"), written behind; the pages' recent crashes
	// and top signatures then come from searches of the whole store. The node sets KeyTime,
	// Document and Value (and Mappings when nil); Addresses, Client and the rest are the
	// adapter's.
	Elasticsearch *elasticsearch.Config
	// HBase, when not nil, keeps the raw crashes (annotations, metadata and dumps) in HBase
	// table HBaseTable instead of the embedded store, under Socorro's salted row keys, written
	// behind. The node creates the table when it is missing, so HBase must serve at start.
	HBase *hbase.Config
	// HBaseTable is the table of raw crashes. Default DefaultHBaseTable "crash_reports".
	HBaseTable string
	// WriteDelay is the write-behind delay. Default 1s.
	WriteDelay time.Duration
	// MemoryBudget bounds the member's entries in bytes; clean entries of stored maps beyond it
	// are evicted and read through from their store; writes beyond it are refused
	// (dmap.ErrMemoryLimit), and /submit answers them 503 with Retry-After. Used only with a
	// DataDir, Elasticsearch or HBase. Default 256 MiB.
	MemoryBudget int64
	// KeepRaw is how long a raw crash (its report with annotations and dumps, and its process
	// entry) stays after collection: the entries are written with this TTL, and with a DataDir
	// they leave the data folders when they expire, so the folders hold about the last KeepRaw
	// of dumps instead of growing for ever (Socorro too keeps raw crashes for a while and
	// processed ones for long). The processed crash stays, and its page with it. A crash not
	// processed within KeepRaw is dropped. With Elasticsearch or HBase the stores keep what they
	// got; the TTL bounds the grid. Default 0: raw crashes stay until deleted.
	KeepRaw time.Duration
	// SweepEvery is how often the sweeper walks this node's process entries. Default 10s.
	SweepEvery time.Duration
	// SweepAge is the age from which the sweeper processes a process entry the listener did
	// not. Default 30s.
	SweepAge time.Duration
	// PublishEvery is how often the node publishes its page figures (rates, recent crashes,
	// signatures by minute) to StatsMap, from which every node's pages show the cluster's.
	// Default 2s.
	PublishEvery time.Duration
	// SubmitBudget bounds the report bytes /submit holds at once (collector.Config's
	// MaxInFlightBytes): beyond it a submission is answered 503 with Retry-After, and the
	// clients (the generators too) send it again later. Default
	// collector.DefaultMaxInFlightBytes (64 MiB); negative: no limit.
	SubmitBudget int64
	// Dumps are real minidumps this node's generator builds reports from (nil: the node has no
	// generator). The generator posts to this node's /submit at the rate the command topic
	// (CommandTopic) sets; Generate is the rate it starts at, in reports a second (default 0:
	// it waits for a command such as "s2").
	Dumps    [][]byte
	Generate float64
	// DumpSizes is the generator's distribution of dump sizes. Default generator.DumpSizes
	// (the design's: 200 KB to 20 MB, mean about 4 MB).
	DumpSizes *generator.Sizes
	// Mode is how crashes reach processors: ModeListener (default) or ModeQueue.
	Mode string
	// Processors is the number of workers taking crash IDs from the work queue in ModeQueue.
	// Default 4.
	Processors int
	// Rules are the signature rules. Default processor.DefaultRules().
	Rules *processor.Rules
	// Logger receives the node's logs. Default slog.Default().
	Logger *slog.Logger

	// beforeProcess, when set (by this package's tests), runs before each crash is processed:
	// it can hold a crash pending.
	beforeProcess func(ctx context.Context, id string)
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:0"
	}
	if c.WriteDelay == 0 {
		c.WriteDelay = time.Second
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = 256 << 20
	}
	if c.SweepEvery == 0 {
		c.SweepEvery = 10 * time.Second
	}
	if c.SweepAge == 0 {
		c.SweepAge = 30 * time.Second
	}
	if c.PublishEvery == 0 {
		c.PublishEvery = 2 * time.Second
	}
	if c.Rules == nil {
		c.Rules = processor.DefaultRules()
	}
	if c.Mode == "" {
		c.Mode = ModeListener
	}
	if c.Processors == 0 {
		c.Processors = 4
	}
	if c.HBaseTable == "" {
		c.HBaseTable = DefaultHBaseTable
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{"WriteDelay": c.WriteDelay, "SweepEvery": c.SweepEvery, "SweepAge": c.SweepAge, "PublishEvery": c.PublishEvery, "KeepRaw": c.KeepRaw} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%w: %s %v is negative", ErrInvalidConfig, name, d))
		}
	}
	if c.Mode != "" {
		if err := checkMode(c.Mode); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Processors < 0 {
		errs = append(errs, fmt.Errorf("%w: Processors %d is negative", ErrInvalidConfig, c.Processors))
	}
	if c.Generate < 0 {
		errs = append(errs, fmt.Errorf("%w: Generate %v is negative", ErrInvalidConfig, c.Generate))
	}
	if c.MemoryBudget < 0 {
		errs = append(errs, fmt.Errorf("%w: MemoryBudget %d is negative", ErrInvalidConfig, c.MemoryBudget))
	}
	return errors.Join(errs...)
}

// Node is a running Socorro node.
type Node struct {
	cfg       Config
	log       *slog.Logger
	member    *gridmap.Member
	store     *gridstore.Store
	reports   *dmap.Map[string, *collector.Crash]
	process   *dmap.Map[string, time.Time]
	processed *dmap.Map[string, *processor.Crash]
	stats     *dmap.Map[string, *NodeStats]
	listener  *dmap.ListenerHandle
	es        *elasticsearch.Store // nil unless processed crashes live in Elasticsearch
	closers   []func() error       // the stores and clients openStores opened
	http      *http.Server
	ln        net.Listener
	submit    *collector.Handler
	sched     schedLatency

	collected, processedRate rateWindow
	history                  history

	// commands is the command topic; the steering it set and the generator it steers
	// (steer.go; gen is nil without Config.Dumps).
	commands *topic.Topic[string]
	steerMu  sync.Mutex
	steering Steering
	gen      *generator.Driver
	// work is the work queue of ModeQueue (nil in ModeListener; queuemode.go).
	work *queue.Queue[string]

	sweepNow chan struct{}
	stop     context.CancelFunc
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

// Start starts the member, the processor and the HTTP server.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			for _, c := range n.closers {
				_ = c()
			}
		}
	}()
	started := time.Now() // process entries older than this were not seen arriving by this node
	mcfg := cfg.Member
	maps, err := n.openStores(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.DataDir != "" {
		mcfg.DataDir = cfg.DataDir
	}
	if len(maps) > 0 || mcfg.DataDir != "" {
		mcfg.MemoryBudget = cfg.MemoryBudget
		mcfg.Maps = maps
	}
	n.member, err = gridmap.Start(ctx, mcfg)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer func() {
		if err != nil {
			_ = n.member.Close(context.Background())
		}
	}()
	if n.cfg.Name == "" {
		n.cfg.Name = string(n.member.ID())
	}
	if n.store, err = gridstore.New(n.member, n.cfg.KeepRaw); err != nil {
		return nil, err
	}
	if n.reports, err = gridmap.GetMap[string, *collector.Crash](n.member, gridstore.ReportsMap); err != nil {
		return nil, err
	}
	if n.process, err = gridmap.GetMap[string, time.Time](n.member, gridstore.ProcessMap); err != nil {
		return nil, err
	}
	if n.processed, err = gridmap.GetMap[string, *processor.Crash](n.member, ProcessedMap); err != nil {
		return nil, err
	}
	if n.stats, err = gridmap.GetMap[string, *NodeStats](n.member, StatsMap); err != nil {
		return nil, err
	}
	h, err := n.handler()
	if err != nil {
		return nil, err
	}
	n.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.http = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}

	runCtx, stop := context.WithCancel(context.Background())
	n.stop = stop
	n.sweepNow = make(chan struct{}, 1)
	if cfg.Mode == ModeQueue {
		err = n.startQueueWorkers(runCtx)
	} else {
		n.listener, err = n.listen(ctx, runCtx)
	}
	if err != nil {
		stop()
		_ = n.ln.Close()
		n.wg.Wait()
		return nil, err
	}
	if err := n.startSteering(ctx, runCtx); err != nil {
		stop()
		if n.listener != nil {
			n.listener.Remove()
		}
		_ = n.ln.Close()
		n.wg.Wait()
		return nil, err
	}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		n.publishLoop(runCtx)
	}()
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(n.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.sweepLoop(runCtx, started)
	}()
	return n, nil
}

// URL is the base URL of the node's pages and /submit.
func (n *Node) URL() string { return "http://" + n.ln.Addr().String() }

// Member is the node's gridmap member.
func (n *Node) Member() *gridmap.Member { return n.member }

// Close stops the HTTP server (letting requests in flight finish until ctx ends), the processor
// and the sweeper, then leaves the cluster gracefully (write-behind drained) and closes the
// stores.
func (n *Node) Close(ctx context.Context) error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return n.closeErr
	}
	n.closed = true
	errs := []error{n.http.Shutdown(ctx)}
	if n.listener != nil {
		n.listener.Remove()
	}
	n.stop()
	n.wg.Wait()
	errs = append(errs, n.member.Close(ctx))
	for _, c := range n.closers {
		errs = append(errs, c())
	}
	n.closeErr = errors.Join(errs...)
	return n.closeErr
}
